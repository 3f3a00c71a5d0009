"""The seed flow in one namespace, and the ledger that proves no change was lost or doubled.

Fault tests push a run of config changes to a private repository, break
something, repair it, and then check what a user would check: the cluster
carries the latest commit, nothing is left failing, and the Deployment rolled
once per distinct Secret content it was given, never for nothing. Rolls are
counted from the Deployment's revision counter and the restarter's digest in
each ReplicaSet's pod template, read independently of fluxd.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer, _GitHTTPServer, _GitRequestHandler
from tests.support import restarter as r
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    request_reconcile,
    secret,
)

USER, TOKEN = "k3s", "gitea-pat-faults-0123456789"
SOURCE = "k3s-private-repo"
KUSTOMIZATION = "realm-ix"
SECRET = "realm-config-ix"
WORKLOAD = "realm"
CONFIG_FILE = "realm_ix.toml"
DIGEST_VARIABLE = "STAKATER_REALM_CONFIG_IX_SECRET"
SELECTOR_LABEL = "fluxd-faults"
REVISION = "deployment.kubernetes.io/revision"
KUSTOMIZE_FILE = (
    "apiVersion: kustomize.config.k8s.io/v1beta1\n"
    "kind: Kustomization\n"
    "secretGenerator:\n"
    f"  - name: {SECRET}\n"
    "    files:\n"
    f"      - {CONFIG_FILE}\n"
    "generatorOptions:\n"
    "  disableNameSuffixHash: true\n"
)


def realm_config(version: int) -> str:
    """A distinct config file per version, so every push is a real content change."""
    return (
        f'[log]\nlevel = "warn"\n\n[[endpoints]]\nlisten = "0.0.0.0:5000"\n'
        f'remote = "203.0.113.{10 + version}:443"\n'
    )


def reloader_digest(content: str) -> str:
    """Reloader's digest of the one-key Secret, computed without fluxd: sha1 of ``key=value``."""
    return hashlib.sha1(f"{CONFIG_FILE}=".encode() + content.encode()).hexdigest()


class _PinnedHTTPServer(_GitHTTPServer):
    def __init__(self, owner: GitServer, port: int) -> None:
        self.owner = owner
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), _GitRequestHandler)


class RestartableGitServer(GitServer):
    """A plain-HTTP git server that comes back on the same port and root after ``stop()``.

    A Git host going down and up again keeps its address; so must this one, or
    the GitRepository's URL would point at nothing after the "outage".
    """

    def __init__(self, *, root: Path, **kwargs: Any) -> None:
        super().__init__(root=root, **kwargs)
        self.pinned_port = 0

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        httpd = _PinnedHTTPServer(self, self.pinned_port)
        self.pinned_port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="fluxd-test-gitserver", daemon=True
        )
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._httpd is not None


def labelled_namespace(cluster: Cluster) -> str:
    """A fresh namespace carrying its own selector value, so only this test's daemons act on it."""
    name = f"f-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    cluster.api.merge_patch(
        f"/api/v1/namespaces/{name}", {"metadata": {"labels": {SELECTOR_LABEL: name}}}
    )
    return name


def daemon_args(namespace: str, *, lease: str) -> list[str]:
    return [
        f"--lease-name={lease}",
        f"--namespace-selector={SELECTOR_LABEL}={namespace}",
        f"--watch-namespaces={namespace}",
        "--max-retry-delay=5s",
        "--restart-coalesce-window=1s",
    ]


def start_fluxd(
    cluster: Cluster, workdir: Path, namespace: str, *, name: str, extra: list[str] | None = None
) -> Fluxd:
    """A daemon acting on ``namespace`` only; flags in ``extra`` replace the defaults they name."""
    overridden = {flag.split("=", 1)[0] for flag in extra or []}
    defaults = [
        flag
        for flag in daemon_args(namespace, lease=f"faults-{namespace}")
        if flag.split("=", 1)[0] not in overridden
    ]
    return Fluxd(cluster, workdir, name=name, extra_args=[*defaults, *(extra or [])]).start()


@dataclass
class Realm:
    """The seed flow in ``namespace``: repo → GitRepository → Kustomization → Secret → rollout.

    ``contents``/``shas`` record every pushed version in order; the Deployment
    is created directly (as in the seed) and mounts the generated Secret.
    """

    api: Api
    git: GitServer
    namespace: str
    repo: str = "k3s/k3s-private.git"
    contents: list[str] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)

    @property
    def source_path(self) -> str:
        return git_repository_path(self.namespace, SOURCE)

    @property
    def kustomization_path(self) -> str:
        return kustomization_path(self.namespace, KUSTOMIZATION)

    @property
    def secret_path(self) -> str:
        return r.path("Secret", self.namespace, SECRET)

    @property
    def deployment_path(self) -> str:
        return r.path("Deployment", self.namespace, WORKLOAD)

    def create(self) -> None:
        self.git.create_repo(self.repo)
        self.contents.append(realm_config(0))
        self.shas.append(
            self.git.commit(
                self.repo,
                {
                    "realm/ix/kustomization.yaml": KUSTOMIZE_FILE,
                    f"realm/ix/{CONFIG_FILE}": self.contents[0],
                },
                message="realm: first config",
            )
        )
        secret(self.api, self.namespace, "gitea-auth", {"username": USER, "password": TOKEN})
        git_repository(
            self.api,
            self.namespace,
            SOURCE,
            {
                # Polling is far off: every recovery below must come from the fault handling.
                "interval": "1h",
                "url": self.git.url(self.repo),
                "ref": {"branch": "master"},
                "secretRef": {"name": "gitea-auth"},
            },
        )
        kustomization(
            self.api,
            self.namespace,
            KUSTOMIZATION,
            {
                "interval": "1h",
                "path": "realm/ix",
                "prune": True,
                "targetNamespace": self.namespace,
                "sourceRef": {"kind": "GitRepository", "name": SOURCE},
            },
        )
        r.create(
            self.api,
            self.namespace,
            r.workload(
                WORKLOAD,
                annotations={r.AUTO: "true"},
                containers=[r.app_container("realm", mounts=["config"])],
                volumes=[r.secret_volume("config", SECRET)],
            ),
        )

    def commit(self, *, message: str = "realm: config change") -> str:
        """Commit the next distinct config version (no reconcile request); returns its sha."""
        content = realm_config(len(self.contents))
        sha = self.git.commit(self.repo, {f"realm/ix/{CONFIG_FILE}": content}, message=message)
        self.contents.append(content)
        self.shas.append(sha)
        return sha

    def push(self) -> str:
        """Commit the next version and ask for a fetch now, as the Gitea webhook would."""
        sha = self.commit()
        request_reconcile(self.api, self.source_path)
        return sha

    # -- what the user sees ---------------------------------------------------

    def secret_content(self) -> str | None:
        obj = self.api.get_or_none(self.secret_path)
        if obj is None or CONFIG_FILE not in (obj.get("data") or {}):
            return None
        return base64.b64decode(obj["data"][CONFIG_FILE]).decode()

    def revision(self) -> int:
        """How many rollouts the Deployment has had (its revision counter, reused RSs included)."""
        deployment = self.api.get(self.deployment_path)
        return int(deployment["metadata"].get("annotations", {}).get(REVISION, "0"))

    def template_digest(self) -> str | None:
        return r.env_value(
            r.pod_template(self.api, self.namespace, "Deployment", WORKLOAD), DIGEST_VARIABLE
        )

    def converged(self) -> bool:
        """The latest commit is applied, in the Secret, and run by every replica."""
        applied = f"master@sha1:{self.shas[-1]}"
        ks = self.api.get(self.kustomization_path)
        ready = condition(ks)
        if ready is None or ready["status"] != "True":
            return False
        if ks.get("status", {}).get("lastAppliedRevision") != applied:
            return False
        if self.secret_content() != self.contents[-1]:
            return False
        if self.template_digest() != reloader_digest(self.contents[-1]):
            return False
        deployment = self.api.get(self.deployment_path)
        status = deployment.get("status", {})
        return bool(
            status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas") == 1
            and status.get("availableReplicas") == 1
            and status.get("replicas") == 1
        )

    def wait_converged(self, *, timeout: float = 120, what: str = "") -> None:
        wait_for(
            self.converged,
            timeout=timeout,
            what=what or f"{self.namespace} to run commit {self.shas[-1][:8]} everywhere",
        )

    def wait_baseline(self, *, timeout: float = 120) -> int:
        """Reach a stamped Deployment (one pushed change rolled), return its revision counter.

        The first content is never rolled for (Reloader does not restart on
        create), so one change is pushed and rolled before any fault: the digest
        it leaves on the workload is what a restarted daemon compares against.
        """
        wait_for(
            lambda: self.secret_content() == self.contents[0],
            timeout=timeout,
            what="the first config applied",
        )
        r.wait_rolled_out(self.api, self.namespace, WORKLOAD, timeout=timeout)
        self.push()
        self.wait_converged(timeout=timeout, what="the baseline change rolled")
        return self.revision()

    def assert_settled(self) -> None:
        """Both Flux objects Ready on the latest commit, nothing stalled or still retrying."""
        applied = f"master@sha1:{self.shas[-1]}"
        source = self.api.get(self.source_path)
        assert source["status"]["artifact"]["revision"] == applied
        for obj in (source, self.api.get(self.kustomization_path)):
            ready = condition(obj)
            assert ready is not None and ready["status"] == "True", obj.get("status")
            stalled = condition(obj, "Stalled")
            assert stalled is None or stalled["status"] != "True", obj["status"]
            assert obj["status"].get("observedGeneration") == obj["metadata"]["generation"]

    def rolls_since(self, baseline: int) -> list[str | None]:
        """Restarter digests of the ReplicaSets rolled out after revision ``baseline``, in order."""
        rolled = []
        for replica_set in r.replica_sets(self.api, self.namespace, WORKLOAD):
            revision = int(replica_set["metadata"].get("annotations", {}).get(REVISION, "0"))
            if revision > baseline:
                digest = r.env_value(replica_set["spec"]["template"], DIGEST_VARIABLE)
                rolled.append((revision, digest))
        return [digest for _, digest in sorted(rolled, key=lambda item: item[0])]

    def assert_rolled_once_per_change(
        self, baseline: int, *, pushed_since: int
    ) -> list[str | None]:
        """Each rollout after ``baseline`` is for a distinct pushed content, the last the latest.

        ``pushed_since`` is how many versions were pushed after the baseline.
        A doubled roll shows as two rollouts with the same template (a reused
        ReplicaSet bumps the revision counter); a roll without a change shows
        as a digest of no pushed content.
        """
        rollouts = self.revision() - baseline
        digests = self.rolls_since(baseline)
        legit = {reloader_digest(content) for content in self.contents[-pushed_since:]}
        assert 1 <= rollouts <= pushed_since, (rollouts, pushed_since)
        assert len(digests) == rollouts, f"a template was rolled out twice: {digests}"
        assert len(set(digests)) == len(digests), f"one change rolled twice: {digests}"
        assert set(digests) <= legit, f"a roll for no pushed change: {digests}"
        assert digests[-1] == reloader_digest(self.contents[-1])
        return digests


def reconciles(daemon: Fluxd, kind: str, namespace: str, name: str) -> float:
    """How many reconciles of one object ``daemon`` has finished (its duration count)."""
    # Fluxd.metric takes labels as keywords, and this series has a label called "name".
    wanted = f'kind="{kind}",name="{name}",namespace="{namespace}"'
    for line in daemon.get("/metrics")[1].splitlines():
        series, _, value = line.rpartition(" ")
        if series == f"gotk_reconcile_duration_seconds_count{{{wanted}}}":
            return float(value)
    return 0.0


def log_count(daemon: Fluxd, event: str) -> int:
    return sum(1 for record in daemon.log_records() if record.get("msg") == event)

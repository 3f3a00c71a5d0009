"""SOPS decryption: what 100 encrypted files cost a Kustomization, and their share of a reconcile.

The path holds one ``secretGenerator`` with ``--files`` files (a few hundred
bytes of TOML each), once in plain text and once encrypted with age, as a user
encrypts them (``sops encrypt --age``). Two measurements:

* **build alone**, in this process: ``fluxd.build.build`` of the plain path and
  of the encrypted path with its key, no cache (a build that decrypted anything
  is never cached, so every reconcile pays it); the difference is the cost of
  decryption;
* **reconciles on the real control plane**: a daemon reconciles a Kustomization
  of the encrypted path (``spec.decryption`` with the key Secret) ``--runs``
  times on request; ``fluxd_kustomization_phase_duration_seconds`` says where
  each reconcile's time went, the first one (which creates the Secret) left out.

Run: ``.venv/bin/python -m bench.sops [--files 100] [--runs 5]`` (under the e2e lock).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import bench_namespace, machine, median, write_section
from bench.kustomizations import PHASES, histogram
from fluxd.build import BuildOptions, DecryptionKeys, build
from testenv.api import Api, wait_for
from testenv.cluster import running
from testenv.gitserver import GitServer
from tests.support.crds import install_crds
from tests.support.daemon import Fluxd
from tests.support.sops import AgeKey, age_key, encrypt

USER, TOKEN = "bench", "bench-token"
KUSTOMIZATION = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/bench/kustomizations/secrets"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def config_file(index: int) -> bytes:
    return (
        f'[[endpoints]]\nlisten = "0.0.0.0:{5000 + index}"\n'
        f'remote = "203.0.113.{index % 250}:443"\npassword = "bench-password-{index:04d}"\n'
    ).encode()


def tree(key: AgeKey, files: int) -> dict[str, bytes]:
    names = [f"endpoint-{index:04d}.toml" for index in range(files)]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "secretGenerator": [{"name": "endpoints", "files": names}],
        "generatorOptions": {"disableNameSuffixHash": True},
    }
    content: dict[str, bytes] = {}
    for directory in ("plain", "sops"):
        content[f"{directory}/kustomization.yaml"] = yaml.safe_dump(kustomization).encode()
    for index, name in enumerate(names):
        content[f"plain/{name}"] = config_file(index)
        content[f"sops/{name}"] = encrypt(config_file(index), age=key.recipient)
    return content


async def build_seconds(root: Path, path: str, keys: DecryptionKeys | None) -> float:
    options = BuildOptions.from_spec({"decryption": {"provider": "sops"}} if keys else {})
    started = time.monotonic()
    objects = await build(artifact_root=root, path=path, options=options, decryption_keys=keys)
    elapsed = time.monotonic() - started
    (secret,) = objects
    assert base64.b64decode(secret["data"]["endpoint-0000.toml"]) == config_file(0)
    return elapsed


def handled(api: Api, token: str) -> bool:
    status = api.get(KUSTOMIZATION).get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return bool(ready and status.get("lastHandledReconcileAt") == token)


def reconciles(key: AgeKey, content: dict[str, bytes], runs: int) -> dict[str, float]:
    """Phase means of ``runs`` requested reconciles of the encrypted path, after the first."""
    with (
        running() as cluster,
        GitServer(username=USER, password=TOKEN, default_branch="master") as git,
    ):
        api = cluster.api
        install_crds(api)
        bench_namespace(cluster, username=USER, password=TOKEN)
        git.create_repo("bench/sops.git")
        git.commit("bench/sops.git", {name: data.decode() for name, data in content.items()})
        api.create(
            "/api/v1/namespaces/bench/secrets",
            {"metadata": {"name": "sops-keys"}, "stringData": {"bench.agekey": key.identity}},
        )
        daemon = Fluxd(
            cluster,
            Path(tempfile.mkdtemp(prefix="fluxd-bench-sops-")),
            extra_args=["--log-level=warning", "--lease-name=bench-sops"],
        ).start()
        try:
            api.create(
                "/apis/source.toolkit.fluxcd.io/v1/namespaces/bench/gitrepositories",
                {
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "GitRepository",
                    "metadata": {"name": "sops"},
                    "spec": {
                        "interval": "10m",
                        "url": git.url("bench/sops.git"),
                        "ref": {"branch": "master"},
                        "secretRef": {"name": "auth"},
                    },
                },
            )
            spec: dict[str, Any] = {
                "interval": "1h",
                "path": "./sops",
                "targetNamespace": "bench",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "sops"},
                "decryption": {"provider": "sops", "secretRef": {"name": "sops-keys"}},
            }
            api.create(
                KUSTOMIZATION.rsplit("/", 1)[0],
                {
                    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                    "kind": "Kustomization",
                    "metadata": {"name": "secrets", "annotations": {REQUESTED_AT: "first"}},
                    "spec": spec,
                },
            )
            wait_for(lambda: handled(api, "first"), timeout=180, what="the first reconcile")
            before = {
                phase: histogram(daemon, "fluxd_kustomization_phase_duration_seconds", phase=phase)
                for phase in PHASES
            }
            for run in range(runs):
                token = f"run-{run}"
                api.merge_patch(KUSTOMIZATION, {"metadata": {"annotations": {REQUESTED_AT: token}}})
                wait_for(
                    functools.partial(handled, api, token),
                    timeout=180,
                    what=f"reconcile {token}",
                )
            result: dict[str, float] = {}
            for phase in PHASES:
                total, count = histogram(
                    daemon, "fluxd_kustomization_phase_duration_seconds", phase=phase
                )
                spent, n = total - before[phase][0], count - before[phase][1]
                result[phase] = spent / n if n else 0.0
            return result
        finally:
            daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    key = age_key()
    content = tree(key, args.files)
    keys = DecryptionKeys.from_secret_data(
        {"bench.agekey": key.identity.encode()}, origin="Secret 'bench/sops-keys'"
    )
    with tempfile.TemporaryDirectory(prefix="fluxd-bench-sops-") as scratch:
        root = Path(scratch)
        for name, data in content.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        plain = [asyncio.run(build_seconds(root, "plain", None)) for _ in range(args.runs)]
        decrypting = [asyncio.run(build_seconds(root, "sops", keys)) for _ in range(args.runs)]
    load = "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    phases = reconciles(key, content, args.runs)
    print(f"plain builds {plain}\ndecrypting builds {decrypting}\nphases {phases}", flush=True)

    cost = median(decrypting) - median(plain)
    reconcile = sum(phases.values())
    # In a reconcile, decryption is what its build takes beyond a plain build of the same path.
    in_reconcile = phases["build"] - median(plain)
    share = in_reconcile / reconcile * 100
    rows = "\n".join(f"| {phase} | {phases[phase] * 1000:.0f} ms |" for phase in PHASES)
    body = f"""## SOPS: decrypting a Kustomization of {args.files} encrypted files

Command: `.venv/bin/python -m bench.sops --files {args.files} --runs {args.runs}`
Machine: {machine()}
(load average when the in-process builds ended: {load})
Date: {time.strftime("%Y-%m-%d")}. Medians of {args.runs} runs. One secretGenerator of
{args.files} TOML files (about 100 bytes each), encrypted with age by `sops encrypt`.

- build of the plain path (kustomize only): {median(plain) * 1000:.0f} ms
- build of the encrypted path with its key: {median(decrypting) * 1000:.0f} ms
- decryption: {cost * 1000:.0f} ms per Kustomization, {cost / args.files * 1000:.1f} ms per file
  (one `sops decrypt` process per file, at most 4 at once)

Requested reconciles of the encrypted Kustomization by `fluxd run` on the real control
plane (after the first, which created the Secret; decrypted builds are never cached,
so each one decrypts again):

| phase | mean per reconcile |
| --- | --- |
{rows}

Decryption (the build's time beyond the plain build's {median(plain) * 1000:.0f} ms) is
{in_reconcile * 1000:.0f} ms, {share:.0f}% of a {reconcile * 1000:.0f} ms reconcile.
Reading: nearly all of it is starting sops (a 50 MB Go binary) once per file, on
2 shared cores. A plain path's unchanged build comes from the cache, so its reconcile
is the source and apply rows only; an encrypted one pays the decryption at every
interval, the price of never keeping plaintext past the reconcile.
"""
    write_section("sops", body)
    print(body)


if __name__ == "__main__":
    main()

"""The GitRepository reconciler: poll a Git ref, publish new commits as artifacts.

Each reconcile lists the remote's refs (cheap); only when the resolved commit,
the ignore rules, the submodule setting or an included artifact differ from
what is published does it check out, pack and store a new artifact. Newly
published revisions are announced (Event ``NewArtifact``, after-reconcile
hooks) so that Kustomizations using this source reconcile at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog

from fluxd.api import meta
from fluxd.api.source import GIT_REPOSITORY, git_timeout_seconds
from fluxd.controllers.manager import Components
from fluxd.controllers.outcomes import (
    ConditionUpdate,
    EventNote,
    Reconciled,
    Stalled,
    Transient,
)
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import TRACE, EventRecorder
from fluxd.kube.informer import Key
from fluxd.kube.resources import Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.kube.secrets import InvalidSecretData, secret_bytes
from fluxd.settings import Settings, split_addr
from fluxd.source import (
    ArtifactPathRefused,
    AuthenticationFailed,
    GitAuth,
    GitOperationFailed,
    GitRef,
    GitWorkers,
    InvalidSource,
    ProxySettings,
    SourceError,
    Storage,
    VerificationFailed,
    VerificationKeys,
    apply_include,
    check_sparse_checkout,
    checkout,
    needs_verification,
    resolve,
    verification_mode,
    verify_checkout,
)

log = structlog.get_logger("fluxd.controllers.gitrepository")

ARTIFACT_IN_STORAGE = meta.ConditionType.ARTIFACT_IN_STORAGE
FETCH_FAILED = meta.ConditionType.FETCH_FAILED
STORAGE_FAILED = meta.ConditionType.STORAGE_OPERATION_FAILED
INCLUDE_UNAVAILABLE = meta.ConditionType.INCLUDE_UNAVAILABLE
SOURCE_VERIFIED = meta.ConditionType.SOURCE_VERIFIED


class GitRepositoryReconciler(Reconciler):
    resource = Resource.of(GIT_REPOSITORY)
    owned_conditions = (
        ARTIFACT_IN_STORAGE,
        FETCH_FAILED,
        STORAGE_FAILED,
        INCLUDE_UNAVAILABLE,
        SOURCE_VERIFIED,
    )

    def __init__(
        self,
        *,
        kube: Kube,
        storage: Storage,
        settings: Settings,
        secrets: SecretCache | None = None,
    ) -> None:
        self.kube = kube
        self.secrets = secrets if secrets is not None else SecretCache(kube)
        self.storage = storage
        self.settings = settings
        self.workers = GitWorkers(settings.git_concurrency)
        self.workdir = storage.root / ".work"
        # (namespace, included name) -> repositories that include it
        self.includers: dict[Key, set[Key]] = {}

    # -- helpers ----------------------------------------------------------

    async def _secret_data(self, namespace: str, name: str, *, purpose: str) -> dict[str, bytes]:
        return await source_secret_data(self.secrets, namespace, name, purpose=purpose)

    def _index_includes(self, key: Key, spec: Mapping[str, Any]) -> None:
        for includers in self.includers.values():
            includers.discard(key)
        for include in spec.get("include") or []:
            name = (include.get("repository") or {}).get("name")
            if name:
                self.includers.setdefault((key[0], name), set()).add(key)

    def forget(self, key: Key) -> None:
        for includers in self.includers.values():
            includers.discard(key)

    async def _included_artifacts(
        self, namespace: str, spec: Mapping[str, Any]
    ) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
        found: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
        for include in spec.get("include") or []:
            name = (include.get("repository") or {}).get("name", "")
            other = await self.kube.get_or_none(self.resource, name, namespace=namespace)
            artifact = (other or {}).get("status", {}).get("artifact")
            if not artifact or not self.storage.exists(artifact):
                message = f"could not get resource for include '{name}': artifact not available"
                if other is None:
                    message = f"could not get resource for include '{name}': not found"
                raise Transient(
                    meta.Reason.ARTIFACT_FAILED,
                    message,
                    conditions=[
                        ConditionUpdate(INCLUDE_UNAVAILABLE, "True", "IncludeUnavailable", message)
                    ],
                )
            found.append((include, artifact))
        return found

    # -- reconcile ----------------------------------------------------------------

    async def finalize(self, obj: Object) -> None:
        metadata = obj["metadata"]
        await self.storage.remove_all(namespace=metadata["namespace"], name=metadata["name"])

    async def reconcile(self, obj: Object) -> Reconciled:
        metadata = obj["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = obj.get("spec", {})
        status = obj.get("status", {})
        url = str(spec.get("url", ""))
        self._index_includes((namespace, name), spec)
        timeout = git_timeout_seconds(spec)
        try:
            auth = GitAuth.anonymous()
            secret_ref = (spec.get("secretRef") or {}).get("name")
            if secret_ref:
                data = await self._secret_data(namespace, secret_ref, purpose="authentication")
                auth = GitAuth.from_secret(data, url=url, secret_name=secret_ref)
            proxy = None
            proxy_ref = (spec.get("proxySecretRef") or {}).get("name")
            if proxy_ref:
                data = await self._secret_data(namespace, proxy_ref, purpose="proxy")
                proxy = ProxySettings.from_secret(data, secret_name=proxy_ref)
            ref = GitRef.from_spec(spec.get("ref"))
            resolved = await resolve(
                url,
                ref,
                auth,
                timeout=timeout,
                workers=self.workers,
                key=f"{namespace}/{name}",
                proxy=proxy,
            )
            includes = await self._included_artifacts(namespace, spec)
            included: list[dict[str, Any]] = [dict(artifact) for _, artifact in includes]
            ignore = spec.get("ignore")
            submodules = bool(spec.get("recurseSubmodules"))
            sparse = list(spec.get("sparseCheckout") or [])
            current = status.get("artifact")
            unchanged = (
                current is not None
                and current.get("revision") == resolved.revision
                and self.storage.exists(current)
                and status.get("observedIgnore") == ignore
                and bool(status.get("observedRecurseSubmodules")) == submodules
                and _digests(status.get("includedArtifacts") or []) == _digests(included)
                and (status.get("observedInclude") or []) == (spec.get("include") or [])
                and (status.get("observedSparseCheckout") or []) == sparse
                and not needs_verification(spec.get("verify"), status.get("sourceVerificationMode"))
            )
            if unchanged:
                assert current is not None
                done = self._ready(
                    current, spec, included, previous=status, verified=_kept(status, spec)
                )
                # source-controller's word for a poll that found nothing new: an Event in
                # the cluster, never a notification.
                observed = resolved.commit if (spec.get("ref") or {}).get("commit") else None
                done.events.append(
                    EventNote(
                        TRACE,
                        meta.Reason.GIT_OPERATION_SUCCEEDED,
                        "no changes since last reconciliation: observed revision "
                        f"'{observed or resolved.revision}'",
                    )
                )
                return done
            fetched = await self._fetch_and_store(
                url=url,
                namespace=namespace,
                name=name,
                resolved=resolved,
                auth=auth,
                proxy=proxy,
                timeout=timeout,
                submodules=submodules,
                includes=includes,
                ignore=ignore,
                sparse=sparse,
                verify=spec.get("verify"),
            )
        except VerificationFailed as error:
            # SourceVerified=False on Ready too; the published artifact stays as it was.
            kind = Stalled if error.stalled else Transient
            raise kind(
                error.reason,
                error.message,
                conditions=[
                    ConditionUpdate(SOURCE_VERIFIED, "False", error.reason, error.message),
                    ConditionUpdate(FETCH_FAILED, None),
                ],
            ) from error
        except InvalidSource as error:
            stalled = error.reason != meta.Reason.AUTHENTICATION_FAILED
            raise self._failure(error, stalled=stalled) from error
        except SourceError as error:
            raise self._failure(error, stalled=False) from error
        done = self._ready(
            fetched.artifact,
            spec,
            included,
            previous=status,
            verified=fetched.verified,
            commit_message=fetched.commit_message,
        )
        if fetched.collected:
            done.events.append(
                EventNote(
                    TRACE,
                    "GarbageCollectionSucceeded",
                    f"garbage collected {fetched.collected} artifacts",
                )
            )
        return done

    async def _verification_keys(self, namespace: str, name: str) -> VerificationKeys:
        try:
            secret = await self.secrets.get(namespace, name)
            return VerificationKeys.from_secret(secret_bytes(secret))
        except kube_errors.NotFound:
            detail = f'secrets "{name}" not found'
        except InvalidSecretData as error:
            detail = f"invalid secret '{namespace}/{name}': {error}"
        raise VerificationFailed(
            meta.Reason.VERIFICATION_ERROR, f"public keys secret error: {detail}"
        )

    async def _fetch_and_store(
        self,
        *,
        url: str,
        namespace: str,
        name: str,
        resolved: Any,
        auth: GitAuth,
        proxy: ProxySettings | None,
        timeout: float,
        submodules: bool,
        includes: list[tuple[Mapping[str, Any], dict[str, Any]]],
        ignore: str | None,
        sparse: list[str],
        verify: Mapping[str, Any] | None,
    ) -> _Fetched:
        """Check out, verify and pack the revision."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{namespace}-{name}-", dir=self.workdir))
        try:
            checkout_dir = scratch / "checkout"
            resolved = await checkout(
                url,
                resolved,
                auth,
                checkout_dir,
                timeout=timeout,
                workers=self.workers,
                key=f"{namespace}/{name}",
                recurse_submodules=submodules,
                proxy=proxy,
                sparse_checkout=sparse,
            )
            check_sparse_checkout(checkout_dir, sparse, url=url)
            verified = None
            if verify is not None:
                keys = await self._verification_keys(namespace, verify["secretRef"]["name"])
                verified = await self.workers.run(
                    functools.partial(
                        verify_checkout,
                        checkout_dir,
                        commit=resolved.commit,
                        ref_name=resolved.ref_name,
                        pinned=resolved.pinned,
                        mode=verification_mode(verify),
                        keys=keys,
                    ),
                    key=f"{namespace}/{name}",
                )
            for include, artifact in includes:
                await anyio.to_thread.run_sync(
                    functools.partial(
                        apply_include,
                        artifact_file=self.storage.local_path(artifact["path"]),
                        from_path=str(include.get("fromPath") or "."),
                        checkout_dir=checkout_dir,
                        to_path=str(include.get("toPath") or include["repository"]["name"]),
                    )
                )
            collected: list[Path] = []
            stored = await self.storage.store(
                namespace=namespace,
                name=name,
                revision=resolved.revision,
                commit=resolved.commit,
                source_dir=checkout_dir,
                ignore=ignore,
                collected=collected,
            )
            return _Fetched(dict(stored), resolved.message, verified, len(collected))
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))

    def _ready(
        self,
        artifact: Mapping[str, Any],
        spec: Mapping[str, Any],
        included: list[dict[str, Any]],
        *,
        previous: Mapping[str, Any],
        verified: str | None,
        commit_message: str | None = None,
    ) -> Reconciled:
        """Ready with ``artifact``; ``commit_message`` is set when it was just fetched."""
        revision = str(artifact.get("revision", ""))
        digest = str(artifact.get("digest", ""))
        message = f"stored artifact for revision '{revision}'"
        status: dict[str, Any] = {
            "artifact": dict(artifact),
            "observedIgnore": spec.get("ignore"),
            "observedRecurseSubmodules": bool(spec.get("recurseSubmodules")) or None,
            "observedInclude": spec.get("include") or None,
            "includedArtifacts": included or None,
            "observedSparseCheckout": spec.get("sparseCheckout") or None,
        }
        verify = spec.get("verify")
        if verify is None:
            status["sourceVerificationMode"] = None
        elif commit_message is not None and verified is not None:
            status["sourceVerificationMode"] = verification_mode(verify)
        events = []
        notified = {"revision": revision, "digest": digest}
        before = (previous.get("artifact") or {}).get("digest")
        if commit_message is not None and digest != before:
            # source-controller names a new artifact's commit by its subject.
            events.append(
                EventNote(
                    "Normal",
                    meta.Reason.NEW_ARTIFACT,
                    f"stored artifact for commit '{short_message(commit_message)}'",
                    metadata=notified,
                )
            )
        elif failed_before(previous):
            # Recovery with the artifact it had: named by revision, as for a no-op clone.
            events.append(
                EventNote(
                    "Normal",
                    meta.Reason.SUCCEEDED,
                    f"stored artifact for commit '{revision}'",
                    metadata=notified,
                )
            )
        return Reconciled(
            reason=meta.Reason.SUCCEEDED,
            message=message,
            status=status,
            conditions=[
                ConditionUpdate(ARTIFACT_IN_STORAGE, "True", meta.Reason.SUCCEEDED, message),
                ConditionUpdate(FETCH_FAILED, None),
                ConditionUpdate(STORAGE_FAILED, None),
                ConditionUpdate(INCLUDE_UNAVAILABLE, None),
                _source_verified(verified),
            ],
            events=events,
        )

    @staticmethod
    def _failure(error: SourceError, *, stalled: bool) -> Transient | Stalled:
        condition = STORAGE_FAILED if error.reason == "StorageOperationFailed" else FETCH_FAILED
        message = error.message
        if isinstance(error, GitOperationFailed | AuthenticationFailed):
            # source-controller's words for a clone that failed, whatever the cause.
            message = f"failed to checkout and determine revision: {message}"
        conditions = [ConditionUpdate(condition, "True", error.reason, message)]
        kind = Stalled if stalled else Transient
        return kind(error.reason, message, conditions=conditions)


def _kept(status: Mapping[str, Any], spec: Mapping[str, Any]) -> str | None:
    """The SourceVerified message that still holds for an unchanged artifact, if any."""
    if spec.get("verify") is None:
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == SOURCE_VERIFIED and condition.get("status") == "True":
            return str(condition.get("message", ""))
    return None


def _source_verified(message: str | None) -> ConditionUpdate:
    if message is None:
        return ConditionUpdate(SOURCE_VERIFIED, None)
    return ConditionUpdate(SOURCE_VERIFIED, "True", meta.Reason.SUCCEEDED, message)


@dataclass(frozen=True)
class _Fetched:
    """A revision checked out, verified and stored."""

    artifact: dict[str, Any]
    commit_message: str
    #: The SourceVerified message; None when spec.verify is not set.
    verified: str | None
    #: How many older artifacts the store deleted.
    collected: int


def _digests(artifacts: list[dict[str, Any]]) -> list[str]:
    return [str(artifact.get("digest", "")) for artifact in artifacts]


async def source_secret_data(
    secrets: SecretCache, namespace: str, name: str, *, purpose: str
) -> dict[str, bytes]:
    """A source's Secret, decoded; a missing or undecodable one is a transient FetchFailed.

    Shared by every source kind: Flux reports both as AuthenticationFailed.
    """
    try:
        secret = await secrets.get(namespace, name)
    except kube_errors.NotFound as error:
        message = f"failed to get {purpose} secret '{namespace}/{name}': not found"
        raise Transient(
            meta.Reason.AUTHENTICATION_FAILED,
            message,
            conditions=[
                ConditionUpdate(FETCH_FAILED, "True", meta.Reason.AUTHENTICATION_FAILED, message)
            ],
        ) from error
    try:
        return secret_bytes(secret)
    except InvalidSecretData as error:
        message = f"invalid {purpose} secret '{namespace}/{name}': {error}"
        raise Transient(
            meta.Reason.AUTHENTICATION_FAILED,
            message,
            conditions=[
                ConditionUpdate(FETCH_FAILED, "True", meta.Reason.AUTHENTICATION_FAILED, message)
            ],
        ) from None


def source_storage(settings: Settings) -> Storage:
    """The artifact storage; every source kind writes under the same root and URL."""
    return Storage(
        Path(settings.storage_path),
        base_url=storage_base_url(settings),
        retention=settings.artifact_retention_records,
    )


def storage_base_url(settings: Settings) -> str:
    if settings.storage_adv_addr:
        address = settings.storage_adv_addr
    else:
        host, port = split_addr(settings.storage_addr)
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = os.environ.get("POD_IP") or socket.gethostname()
        address = f"{host}:{port}"
    return address if "://" in address else f"http://{address}"


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    storage = source_storage(settings)
    reconciler = GitRepositoryReconciler(
        kube=kube,
        storage=storage,
        settings=settings,
        secrets=components.secret_cache(kube, settings),
    )
    controller = Controller(kube=kube, reconciler=reconciler, recorder=recorder, settings=settings)

    def announce(old: Object, new: Object) -> None:
        # A new artifact here is new input for the repositories that include this one.
        before = (old.get("status", {}).get("artifact") or {}).get("digest")
        after = (new.get("status", {}).get("artifact") or {}).get("digest")
        if after and after != before:
            metadata = new["metadata"]
            for includer in reconciler.includers.get((metadata["namespace"], metadata["name"]), ()):
                controller.request(*includer)

    controller.after_reconcile.append(announce)
    components.controllers.append(controller)

    def resolve_artifact(relpath: str) -> Path | None:
        with contextlib.suppress(ArtifactPathRefused):
            return storage.local_path(relpath)
        return None

    components.artifacts = resolve_artifact


def short_message(message: str) -> str:
    """A commit's subject line, cut at 50 characters as Flux's ``Commit.ShortMessage`` does."""
    subject = message.split("\n", 1)[0]
    return f"{subject[:50]}..." if len(subject) > 50 else subject


def failed_before(status: Mapping[str, Any]) -> bool:
    """Whether the last reconcile left a failure condition that this success clears."""
    failures = {FETCH_FAILED, STORAGE_FAILED, INCLUDE_UNAVAILABLE}
    return any(
        entry.get("type") in failures and entry.get("status") == "True"
        for entry in status.get("conditions") or []
    )

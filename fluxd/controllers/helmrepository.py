"""The HelmRepository reconciler: fetch a Helm repository's index, publish it as an artifact.

Type ``default``: each reconcile downloads ``index.yaml``; when its digest
differs from the published revision the index is stored as
``helmrepository/<ns>/<name>/index-<hex>.yaml`` and announced (Event
``NewArtifact``, after-reconcile hooks), so the HelmCharts using it reconcile
at once. Type ``oci``: like Flux, the object is static, with no artifact:
an OCI registry has no index, and charts are pulled by the HelmChart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import structlog

from fluxd.api import meta
from fluxd.api.helm import (
    DEFAULT_HELM_REPOSITORY_INTERVAL,
    HELM_REPOSITORY,
    HELM_REPOSITORY_TYPE_OCI,
    helm_timeout_seconds,
)
from fluxd.controllers.gitrepository import source_secret_data, storage_base_url
from fluxd.controllers.manager import Components
from fluxd.controllers.outcomes import ConditionUpdate, EventNote, Reconciled, Stalled, Transient
from fluxd.controllers.runtime import Controller, Reconciler, spec_interval
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import TRACE, EventRecorder
from fluxd.kube.resources import Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.settings import Settings
from fluxd.source import InvalidSource, SourceError, Storage
from fluxd.source.helm import MAX_INDEX_SIZE, index_artifact
from fluxd.source.helm_http import HelmCredentials, download

log = structlog.get_logger("fluxd.controllers.helmrepository")

ARTIFACT_IN_STORAGE = meta.ConditionType.ARTIFACT_IN_STORAGE
FETCH_FAILED = meta.ConditionType.FETCH_FAILED
STORAGE_FAILED = meta.ConditionType.STORAGE_OPERATION_FAILED
# What flux prints for an OCI HelmRepository, which has no status of its own.
OCI_READY_MESSAGE = "Helm repository is Ready"


class HelmRepositoryReconciler(Reconciler):
    resource = Resource.of(HELM_REPOSITORY)
    owned_conditions = (ARTIFACT_IN_STORAGE, FETCH_FAILED, STORAGE_FAILED)

    def __init__(self, *, kube: Kube, storage: Storage, secrets: SecretCache | None = None) -> None:
        self.kube = kube
        self.secrets = secrets if secrets is not None else SecretCache(kube)
        self.storage = storage

    def interval(self, obj: Object) -> float:
        return spec_interval(obj, default=DEFAULT_HELM_REPOSITORY_INTERVAL)

    async def finalize(self, obj: Object) -> None:
        metadata = obj["metadata"]
        await self.storage.remove_all(
            kind=HELM_REPOSITORY.kind, namespace=metadata["namespace"], name=metadata["name"]
        )

    async def reconcile(self, obj: Object) -> Reconciled:
        metadata = obj["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = obj.get("spec", {})
        status = obj.get("status", {})
        url = str(spec.get("url", ""))
        if spec.get("type") == HELM_REPOSITORY_TYPE_OCI:
            return await self._static(namespace, name, status)
        try:
            if url.startswith("oci://"):
                raise InvalidSource(
                    "invalid Helm repository URL: 'oci' URL scheme cannot be used with "
                    "'default' HelmRepository type"
                )
            credentials = await repository_credentials(self.secrets, namespace, spec)
            index_url = url.rstrip("/") + "/index.yaml"
            try:
                served = await download(
                    index_url,
                    repository_url=url,
                    credentials=credentials,
                    timeout=helm_timeout_seconds(spec),
                    max_size=MAX_INDEX_SIZE,
                )
            except SourceError as error:
                message = f"failed to fetch Helm repository index: {error.message}"
                raise Transient(
                    meta.Reason.FAILED,
                    message,
                    conditions=[ConditionUpdate(FETCH_FAILED, "True", meta.Reason.FAILED, message)],
                ) from None
            revision, filename, content = index_artifact(served)
            current = status.get("artifact")
            if (
                current is not None
                and current.get("revision") == revision
                and self.storage.exists(current)
            ):
                done = self._ready(dict(current), status, new=False)
                await link_latest(self.storage, done, "index.yaml")
                done.events.append(
                    EventNote(
                        TRACE,
                        meta.Reason.ARTIFACT_UP_TO_DATE,
                        f"artifact up-to-date with remote revision: '{revision}'",
                    )
                )
                return done
            collected: list[Path] = []
            artifact = await anyio.to_thread.run_sync(
                lambda: self.storage.store_file_sync(
                    kind=HELM_REPOSITORY.kind,
                    namespace=namespace,
                    name=name,
                    filename=filename,
                    revision=revision,
                    content=content,
                    collected=collected,
                )
            )
        except InvalidSource as error:
            raise _failure(error, stalled=True) from error
        except SourceError as error:
            raise _failure(error, stalled=False) from error
        done = self._ready(dict(artifact), status, new=True, url=url)
        await link_latest(self.storage, done, "index.yaml")
        if collected:
            done.events.append(
                EventNote(
                    TRACE,
                    "GarbageCollectionSucceeded",
                    f"garbage collected {len(collected)} artifacts",
                )
            )
        return done

    async def _static(self, namespace: str, name: str, status: dict[str, Any]) -> Reconciled:
        """An OCI HelmRepository: no artifact (one left from type 'default' is removed)."""
        if status.get("artifact"):
            await self.storage.remove_all(kind=HELM_REPOSITORY.kind, namespace=namespace, name=name)
        return Reconciled(
            reason=meta.Reason.SUCCEEDED,
            message=OCI_READY_MESSAGE,
            status={"artifact": None, "url": None},
            conditions=[
                ConditionUpdate(ARTIFACT_IN_STORAGE, None),
                ConditionUpdate(FETCH_FAILED, None),
                ConditionUpdate(STORAGE_FAILED, None),
            ],
        )

    def _ready(
        self, artifact: dict[str, Any], previous: dict[str, Any], *, new: bool, url: str = ""
    ) -> Reconciled:
        revision = str(artifact.get("revision", ""))
        message = f"stored artifact: revision '{revision}'"
        events = []
        before = (previous.get("artifact") or {}).get("digest")
        if new and artifact.get("digest") != before:
            size = int(artifact.get("size") or 0)
            events.append(
                EventNote(
                    "Normal",
                    meta.Reason.NEW_ARTIFACT,
                    f"stored fetched index of size {_human_size(size)} from '{url}'",
                    metadata={"revision": revision, "digest": str(artifact.get("digest", ""))},
                )
            )
        return Reconciled(
            reason=meta.Reason.SUCCEEDED,
            message=message,
            status={"artifact": artifact},
            conditions=[
                ConditionUpdate(ARTIFACT_IN_STORAGE, "True", meta.Reason.SUCCEEDED, message),
                ConditionUpdate(FETCH_FAILED, None),
                ConditionUpdate(STORAGE_FAILED, None),
            ],
            events=events,
        )


async def link_latest(storage: Storage, done: Reconciled, link_name: str) -> None:
    """Point ``link_name`` at the artifact of ``done`` and make it status.url, as Flux does.

    Best effort, as in Flux: a link that cannot be made is a Trace event, not a failure.
    """
    relpath = str(done.status["artifact"]["path"])
    current = storage.latest_link_url(relpath=relpath, link_name=link_name)
    if current is not None:
        done.status["url"] = current
        return
    try:
        done.status["url"] = await anyio.to_thread.run_sync(
            lambda: storage.link_latest_sync(relpath=relpath, link_name=link_name)
        )
    except SourceError as error:
        done.events.append(EventNote(TRACE, meta.Reason.SYMLINK_UPDATE_FAILED, error.message))


async def repository_credentials(
    secrets: SecretCache, namespace: str, spec: Mapping[str, Any]
) -> HelmCredentials:
    """How to connect to a HelmRepository: its secretRef, certSecretRef and passCredentials."""
    auth_name = (spec.get("secretRef") or {}).get("name")
    tls_name = (spec.get("certSecretRef") or {}).get("name")
    auth = (
        await source_secret_data(secrets, namespace, auth_name, purpose="authentication")
        if auth_name
        else None
    )
    tls = (
        await source_secret_data(secrets, namespace, tls_name, purpose="TLS") if tls_name else None
    )
    return HelmCredentials.from_secrets(
        auth=auth,
        tls=tls,
        auth_name=f"{namespace}/{auth_name}",
        pass_credentials=bool(spec.get("passCredentials")),
    )


def _failure(error: SourceError, *, stalled: bool) -> Transient | Stalled:
    condition = STORAGE_FAILED if error.reason == "StorageOperationFailed" else FETCH_FAILED
    kind = Stalled if stalled else Transient
    return kind(
        error.reason,
        error.message,
        conditions=[ConditionUpdate(condition, "True", error.reason, error.message)],
    )


def _human_size(size: int) -> str:
    """Docker's units.HumanSize, as Flux words the size of an index: '12.3kB'."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.4g}{unit}"
        value /= 1000
    return f"{value:.4g}TB"


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    storage = Storage(
        Path(settings.storage_path),
        base_url=storage_base_url(settings),
        retention=settings.artifact_retention_records,
    )
    reconciler = HelmRepositoryReconciler(
        kube=kube, storage=storage, secrets=components.secret_cache(kube, settings)
    )
    components.controllers.append(
        Controller(kube=kube, reconciler=reconciler, recorder=recorder, settings=settings)
    )

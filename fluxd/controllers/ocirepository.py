"""The OCIRepository reconciler: poll a registry tag, publish new digests as artifacts.

Each reconcile resolves the reference to a manifest digest (one ``HEAD``);
only when the revision (``<tag>@sha256:<digest>``), ``spec.ignore`` or
``spec.layerSelector`` differ from what is published does it pull the
manifest and the selected layer and store a new artifact, under
``ocirepository/<ns>/<name>/<digest>.tar.gz`` in the storage GitRepository
uses. Conditions, Events and messages are source-controller's, so
Kustomizations, alerts and the flux CLI read an OCIRepository as they read
Flux's.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from fluxd.api import meta
from fluxd.api.oci import (
    DEFAULT_TAG,
    LAYER_COPY,
    LAYER_EXTRACT,
    OCI_REPOSITORY,
    layer_operation,
    oci_timeout_seconds,
)
from fluxd.controllers.gitrepository import failed_before, source_secret_data, source_storage
from fluxd.controllers.helmrepository import link_latest
from fluxd.controllers.manager import Components
from fluxd.controllers.outcomes import ConditionUpdate, EventNote, Reconciled, Stalled, Transient
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import TRACE, EventRecorder
from fluxd.kube.resources import Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.settings import Settings
from fluxd.source import InvalidSource, SourceError, Storage, StorageOperationFailed, unpack
from fluxd.source.oci import (
    OCIAddress,
    OCILayerOperationFailed,
    OCIPullFailed,
    RegistryClient,
    RegistryConnections,
    RegistryCredentials,
    TagSelectionFailed,
    oci_revision,
    select_layer,
    tag_by_semver,
)

log = structlog.get_logger("fluxd.controllers.ocirepository")

ARTIFACT_IN_STORAGE = meta.ConditionType.ARTIFACT_IN_STORAGE
FETCH_FAILED = meta.ConditionType.FETCH_FAILED
STORAGE_FAILED = meta.ConditionType.STORAGE_OPERATION_FAILED
# The annotations `flux push artifact` sets, which source-controller names in its Events.
SOURCE_ANNOTATION = "org.opencontainers.image.source"
REVISION_ANNOTATION = "org.opencontainers.image.revision"
# Flux's name for the link to the latest artifact, which status.url points at.
LATEST_LINK = "latest.tar.gz"


class OCIRepositoryReconciler(Reconciler):
    resource = Resource.of(OCI_REPOSITORY)
    owned_conditions = (ARTIFACT_IN_STORAGE, FETCH_FAILED, STORAGE_FAILED)

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
        self.workdir = storage.root / ".work"
        self.registries = RegistryConnections()

    async def finalize(self, obj: Object) -> None:
        metadata = obj["metadata"]
        await self.storage.remove_all(
            kind=OCI_REPOSITORY.kind, namespace=metadata["namespace"], name=metadata["name"]
        )

    async def reconcile(self, obj: Object) -> Reconciled:
        metadata = obj["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = obj.get("spec", {})
        status = obj.get("status", {})
        url = str(spec.get("url", ""))
        try:
            with anyio.fail_after(oci_timeout_seconds(spec)):
                return await self._sync(namespace, name, url, spec, status)
        except TimeoutError:
            message = f"failed to pull artifact from '{url}': context deadline exceeded"
            raise _failure(OCIPullFailed(message)) from None
        except InvalidSource as error:
            raise _failure(
                error, message=f"URL validation failed for '{url}': {error.message}"
            ) from error
        except TagSelectionFailed as error:
            message = f"failed to determine the artifact tag for '{url}': {error.message}"
            raise _failure(error, message=message) from error
        except SourceError as error:
            raise _failure(error) from error

    async def _sync(
        self,
        namespace: str,
        name: str,
        url: str,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
    ) -> Reconciled:
        address = OCIAddress.parse(url)
        credentials = RegistryCredentials()
        secret_ref = (spec.get("secretRef") or {}).get("name")
        if secret_ref:
            data = await source_secret_data(self.secrets, namespace, secret_ref, purpose="pull")
            credentials = RegistryCredentials.from_docker_config(
                data, registry=address.registry, secret_name=secret_ref
            )
        cert_data = None
        cert_ref = (spec.get("certSecretRef") or {}).get("name")
        if cert_ref:
            cert_data = await source_secret_data(self.secrets, namespace, cert_ref, purpose="TLS")
        client = self.registries.client(
            address,
            credentials=credentials,
            tls_data=cert_data,
            tls_secret_name=cert_ref or "",
            insecure=bool(spec.get("insecure")),
        )
        ref = spec.get("ref") or {}
        layer_selector = spec.get("layerSelector") or None
        tag: str | None = None
        if ref.get("digest"):
            digest = str(ref["digest"])
        else:
            if ref.get("semver"):
                tags = await client.list_tags()
                tag = tag_by_semver(
                    tags,
                    str(ref["semver"]),
                    str(ref.get("semverFilter") or ""),
                    media_type=str((layer_selector or {}).get("mediaType") or ""),
                )
            else:
                tag = str(ref.get("tag") or DEFAULT_TAG)
            try:
                digest = await client.resolve(tag)
            except OCIPullFailed as error:
                raise OCIPullFailed(f"failed to determine artifact digest: {error}") from None
        revision = oci_revision(tag, digest)
        current = status.get("artifact")
        unchanged = (
            current is not None
            and current.get("revision") == revision
            and status.get("observedIgnore") == spec.get("ignore")
            and (status.get("observedLayerSelector") or None) == layer_selector
            and self.storage.exists(current)
        )
        if unchanged:
            assert current is not None
            done = self._ready(current, spec, previous=status, new=False)
            done.events.append(
                EventNote(
                    TRACE,
                    meta.Reason.ARTIFACT_UP_TO_DATE,
                    f"artifact up-to-date with remote revision: '{revision}'",
                )
            )
            await link_latest(self.storage, done, LATEST_LINK)
            return done
        artifact, collected = await self._pull_and_store(
            client, namespace=namespace, name=name, url=url, spec=spec, revision=revision
        )
        done = self._ready(artifact, spec, previous=status, new=True)
        await link_latest(self.storage, done, LATEST_LINK)
        if collected:
            done.events.append(
                EventNote(
                    TRACE, "GarbageCollectionSucceeded", f"garbage collected {collected} artifacts"
                )
            )
        return done

    async def _pull_and_store(
        self,
        client: RegistryClient,
        *,
        namespace: str,
        name: str,
        url: str,
        spec: Mapping[str, Any],
        revision: str,
    ) -> tuple[dict[str, Any], int]:
        digest = revision.rsplit("@", 1)[-1]
        try:
            manifest = await client.manifest(digest)
        except OCIPullFailed as error:
            raise OCIPullFailed(f"failed to pull artifact from '{url}': {error}") from None
        annotations = {
            str(key): str(value) for key, value in (manifest.get("annotations") or {}).items()
        }
        selector = spec.get("layerSelector") or {}
        layer = select_layer(manifest, str(selector.get("mediaType") or ""))
        operation = layer_operation(spec)
        if operation not in (LAYER_EXTRACT, LAYER_COPY):
            raise OCILayerOperationFailed(f"unsupported layer operation: {operation}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"oci-{namespace}-{name}-", dir=self.workdir))
        try:
            blob = scratch / "layer.tgz"
            try:
                await client.blob(str(layer.get("digest", "")), blob)
            except OCIPullFailed as error:
                raise OCIPullFailed(f"failed to pull artifact from '{url}': {error}") from None
            collected: list[Path] = []
            if operation == LAYER_COPY:
                stored = await self.storage.store_file(
                    kind=OCI_REPOSITORY.kind,
                    namespace=namespace,
                    name=name,
                    revision=revision,
                    commit=digest,
                    source_file=blob,
                    collected=collected,
                )
            else:
                contents = scratch / "contents"
                try:
                    await anyio.to_thread.run_sync(unpack, blob, contents)
                except StorageOperationFailed as error:
                    raise OCILayerOperationFailed(
                        f"failed to extract layer contents from artifact: {error.message}"
                    ) from None
                stored = await self.storage.store(
                    kind=OCI_REPOSITORY.kind,
                    namespace=namespace,
                    name=name,
                    revision=revision,
                    commit=digest,
                    source_dir=contents,
                    ignore=spec.get("ignore"),
                    collected=collected,
                )
            artifact = dict(stored)
            if annotations:
                artifact["metadata"] = annotations
            return artifact, len(collected)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))

    def _ready(
        self,
        artifact: Mapping[str, Any],
        spec: Mapping[str, Any],
        *,
        previous: Mapping[str, Any],
        new: bool,
    ) -> Reconciled:
        revision = str(artifact.get("revision", ""))
        digest = str(artifact.get("digest", ""))
        message = f"stored artifact for digest '{revision}'"
        status: dict[str, Any] = {
            "artifact": dict(artifact),
            "observedIgnore": spec.get("ignore"),
            "observedLayerSelector": spec.get("layerSelector") or None,
        }
        events = []
        notice = f"stored artifact with revision '{revision}' from '{spec.get('url', '')}'"
        origin = artifact.get("metadata") or {}
        if origin.get(SOURCE_ANNOTATION) and origin.get(REVISION_ANNOTATION):
            notice += (
                f", origin source '{origin[SOURCE_ANNOTATION]}', "
                f"origin revision '{origin[REVISION_ANNOTATION]}'"
            )
        notified = {"revision": revision, "digest": digest}
        before = (previous.get("artifact") or {}).get("digest")
        if new and digest != before:
            events.append(EventNote("Normal", meta.Reason.NEW_ARTIFACT, notice, metadata=notified))
        elif failed_before(previous):
            events.append(EventNote("Normal", meta.Reason.SUCCEEDED, notice, metadata=notified))
        return Reconciled(
            reason=meta.Reason.SUCCEEDED,
            message=message,
            status=status,
            conditions=[
                ConditionUpdate(ARTIFACT_IN_STORAGE, "True", meta.Reason.SUCCEEDED, message),
                ConditionUpdate(FETCH_FAILED, None),
                ConditionUpdate(STORAGE_FAILED, None),
            ],
            events=events,
        )


def _failure(error: SourceError, *, message: str | None = None) -> Transient | Stalled:
    """Ready=False with Flux's reason, and the failure condition that goes with it."""
    text = message or error.message
    condition = STORAGE_FAILED if isinstance(error, StorageOperationFailed) else FETCH_FAILED
    kind = Stalled if error.stalled else Transient
    return kind(
        error.reason, text, conditions=[ConditionUpdate(condition, "True", error.reason, text)]
    )


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    reconciler = OCIRepositoryReconciler(
        kube=kube,
        storage=source_storage(settings),
        settings=settings,
        secrets=components.secret_cache(kube, settings),
    )
    controller = Controller(kube=kube, reconciler=reconciler, recorder=recorder, settings=settings)
    components.controllers.append(controller)
    components.services["oci-registry-sessions"] = reconciler.registries.run


__all__ = ["OCIRepositoryReconciler", "wire"]

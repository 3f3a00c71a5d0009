"""The HelmChart reconciler: publish one packaged chart from a HelmRepository or a GitRepository.

From a HelmRepository, the chart version is picked in the repository's
index artifact by ``spec.version`` and downloaded with the repository's
credentials; from an OCI HelmRepository, among the tags of
``<url>/<chart>`` in the registry, and pulled from there; from a
GitRepository, the directory ``spec.chart`` of its artifact is packaged,
with the dependencies it does not vendor fetched as Flux's dependency
manager fetches them. ``spec.valuesFiles`` are merged into the chart's
values.yaml (the generation then goes into the version's build metadata,
as Flux does, so consumers notice). The artifact is
``helmchart/<ns>/<name>/<chart>-<version>.tgz``, its revision the version.
A new artifact of a source requeues the HelmCharts that use it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import structlog

from fluxd.api import meta
from fluxd.api.helm import (
    HELM_CHART,
    HELM_REPOSITORY,
    HELM_REPOSITORY_TYPE_OCI,
    RECONCILE_STRATEGY_REVISION,
    helm_timeout_seconds,
)
from fluxd.api.source import GIT_REPOSITORY
from fluxd.controllers.gitrepository import source_secret_data, storage_base_url
from fluxd.controllers.helmrepository import link_latest, repository_credentials
from fluxd.controllers.manager import Components
from fluxd.controllers.outcomes import ConditionUpdate, EventNote, Reconciled, Stalled, Transient
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Key
from fluxd.kube.resources import Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.settings import Settings
from fluxd.source import InvalidSource, SourceError, Storage, unpack
from fluxd.source.helm import (
    CHART_PACKAGE_SUCCEEDED,
    CHART_PULL_SUCCEEDED,
    MAX_CHART_SIZE,
    MAX_INDEX_SIZE,
    ChartBuildFailed,
    ChartDependency,
    ChartPackage,
    chart_download_url,
    chart_identity,
    dependency_repository_url,
    load_index,
    local_chart_dir,
    local_dependency_dir,
    missing_dependencies,
    normalize_repository_url,
    package_chart,
    pulled_chart,
    repackage_chart,
    select_chart_version,
    unpack_chart,
)
from fluxd.source.helm_http import HelmCredentials, download
from fluxd.source.helm_oci import (
    oci_chart_address,
    oci_chart_credentials,
    pull_oci_chart,
    resolve_oci_chart_version,
)
from fluxd.source.oci import OCIAddress, RegistryClient, RegistryConnections

log = structlog.get_logger("fluxd.controllers.helmchart")

ARTIFACT_IN_STORAGE = meta.ConditionType.ARTIFACT_IN_STORAGE
FETCH_FAILED = meta.ConditionType.FETCH_FAILED
BUILD_FAILED = meta.ConditionType.BUILD_FAILED
STORAGE_FAILED = meta.ConditionType.STORAGE_OPERATION_FAILED
FAILURE_CONDITIONS = (FETCH_FAILED, BUILD_FAILED, STORAGE_FAILED)

# Flux's name for the link to a chart's latest artifact (status.url), .tgz or not.
LATEST_LINK = "latest.tar.gz"

SourceKey = tuple[str, str, str]  # namespace, kind, name


class HelmChartReconciler(Reconciler):
    resource = Resource.of(HELM_CHART)
    owned_conditions = (ARTIFACT_IN_STORAGE, FETCH_FAILED, BUILD_FAILED, STORAGE_FAILED)

    def __init__(self, *, kube: Kube, storage: Storage, secrets: SecretCache | None = None) -> None:
        self.kube = kube
        self.secrets = secrets if secrets is not None else SecretCache(kube)
        self.storage = storage
        self.workdir = storage.root / ".work"
        self.registries = RegistryConnections()
        #: (namespace, source kind, source name) -> the HelmCharts built from it.
        self.dependents: dict[SourceKey, set[Key]] = {}

    def _index_source(self, key: Key, source: SourceKey) -> None:
        self.forget(key)
        self.dependents.setdefault(source, set()).add(key)

    def forget(self, key: Key) -> None:
        for charts in self.dependents.values():
            charts.discard(key)

    async def finalize(self, obj: Object) -> None:
        metadata = obj["metadata"]
        await self.storage.remove_all(
            kind=HELM_CHART.kind, namespace=metadata["namespace"], name=metadata["name"]
        )

    async def reconcile(self, obj: Object) -> Reconciled:
        metadata = obj["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = obj.get("spec", {})
        source_ref = spec.get("sourceRef") or {}
        kind, source_name = str(source_ref.get("kind", "")), str(source_ref.get("name", ""))
        self._index_source((namespace, name), (namespace, kind, source_name))
        source = await self._source(namespace, kind, source_name)
        source_spec = source.get("spec", {})
        from_oci = (
            kind == HELM_REPOSITORY.kind and source_spec.get("type") == HELM_REPOSITORY_TYPE_OCI
        )
        # An OCI HelmRepository has no artifact: the registry is asked directly.
        artifact = (source.get("status") or {}).get("artifact")
        if from_oci:
            artifact = {}
        elif not artifact or not self.storage.exists(artifact):
            message = f"no artifact available for {kind} source '{source_name}'"
            raise Transient(
                "NoSourceArtifact",
                message,
                conditions=[ConditionUpdate(FETCH_FAILED, "True", "NoSourceArtifact", message)],
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"chart-{namespace}-{name}-", dir=self.workdir))
        try:
            if from_oci:
                chart = await self._pull_oci(obj, source, scratch)
            elif kind == HELM_REPOSITORY.kind:
                chart = await self._pull(obj, source, artifact, scratch)
            else:
                chart = await self._package(obj, artifact, scratch)
            if chart is None:
                done = self._ready(obj, artifact, new=False)
                await link_latest(self.storage, done, LATEST_LINK)
                return done
            stored = await anyio.to_thread.run_sync(
                lambda: self.storage.store_file_sync(
                    kind=HELM_CHART.kind,
                    namespace=namespace,
                    name=name,
                    filename=chart.filename,
                    revision=chart.version,
                    content=chart.content,
                )
            )
        except ChartBuildFailed as error:
            raise _build_failure(error, from_repository=kind == HELM_REPOSITORY.kind) from error
        except SourceError as error:
            condition = STORAGE_FAILED if error.reason == "StorageOperationFailed" else FETCH_FAILED
            failure = Stalled if isinstance(error, InvalidSource) else Transient
            raise failure(
                error.reason,
                error.message,
                conditions=[ConditionUpdate(condition, "True", error.reason, error.message)],
            ) from error
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))
        done = self._ready(obj, artifact, new=True, chart=chart, stored=dict(stored))
        await link_latest(self.storage, done, LATEST_LINK)
        return done

    async def _source(self, namespace: str, kind: str, name: str) -> Object:
        resources = {HELM_REPOSITORY.kind: HELM_REPOSITORY, GIT_REPOSITORY.kind: GIT_REPOSITORY}
        if kind not in resources:
            # A Bucket never has an artifact in fluxd (the kind is refused).
            message = f"no artifact available for {kind} source '{name}'"
            raise Transient(
                "NoSourceArtifact",
                message,
                conditions=[ConditionUpdate(FETCH_FAILED, "True", "NoSourceArtifact", message)],
            )
        source = await self.kube.get_or_none(
            Resource.of(resources[kind]), name, namespace=namespace
        )
        if source is None:
            message = (
                f"failed to get source: {resources[kind].plural}.{resources[kind].group} "
                f'"{name}" not found'
            )
            raise Transient(
                "SourceUnavailable",
                message,
                conditions=[ConditionUpdate(FETCH_FAILED, "True", "SourceUnavailable", message)],
            )
        return source

    def _up_to_date(self, obj: Object, version: str, chart_name: str) -> bool:
        """Whether the published chart is this version, built for this generation's spec."""
        status = obj.get("status", {})
        current = status.get("artifact")
        # Any spec change (valuesFiles too) is a new generation, built anew as in Flux.
        return (
            current is not None
            and current.get("revision") == version
            and self.storage.exists(current)
            and status.get("observedChartName") == chart_name
            and obj["metadata"].get("generation") == status.get("observedGeneration")
        )

    async def _pull(
        self,
        obj: Object,
        repository: Object,
        index_artifact: Mapping[str, Any],
        scratch: Path,
    ) -> ChartPackage | None:
        """The chart version the index names, downloaded (None: the published one is it)."""
        spec = obj.get("spec", {})
        chart_name = str(spec.get("chart", ""))
        index_file = self.storage.local_path(str(index_artifact["path"]))
        index = json.loads(await anyio.to_thread.run_sync(index_file.read_bytes))
        entry = select_chart_version(index, chart_name, str(spec.get("version") or "*"))
        if self._up_to_date(obj, self._expected(obj, entry.version), chart_name):
            return None
        repository_spec = repository.get("spec", {})
        repository_url = str(repository_spec.get("url", ""))
        credentials = await repository_credentials(
            self.secrets, repository["metadata"]["namespace"], repository_spec
        )
        url = chart_download_url(repository_url, entry)
        try:
            content = await download(
                url,
                repository_url=repository_url,
                credentials=credentials,
                timeout=helm_timeout_seconds(repository_spec),
                max_size=MAX_CHART_SIZE,
            )
        except SourceError as error:
            raise ChartBuildFailed(
                ChartBuildFailed.PULL,
                f"failed to download chart for remote reference: {error.message}",
            ) from None
        return await self._pulled(obj, content, entry.name, entry.version, scratch)

    async def _pull_oci(
        self, obj: Object, repository: Object, scratch: Path
    ) -> ChartPackage | None:
        """The chart version the OCI registry's tags offer, pulled (None: the published one)."""
        spec = obj.get("spec", {})
        chart_name = str(spec.get("chart", ""))
        repository_spec = repository.get("spec", {})
        address = oci_chart_address(str(repository_spec.get("url", "")), chart_name)
        client = await self._registry_client(address, repository)
        try:
            with anyio.fail_after(helm_timeout_seconds(repository_spec)):
                version = await resolve_oci_chart_version(
                    client, chart_name, str(spec.get("version") or "*")
                )
                if self._up_to_date(obj, self._expected(obj, version), chart_name):
                    return None
                target = scratch / "chart.tgz"
                await pull_oci_chart(client, version, target)
        except TimeoutError:
            raise ChartBuildFailed(
                ChartBuildFailed.PULL,
                f"failed to download chart for remote reference: {address.reference(chart_name)}"
                ": context deadline exceeded",
            ) from None
        content = await anyio.to_thread.run_sync(target.read_bytes)
        return await self._pulled(obj, content, chart_name, version, scratch)

    async def _registry_client(self, address: OCIAddress, repository: Object) -> RegistryClient:
        """A client for ``address`` with the credentials of an OCI HelmRepository's Secrets."""
        repository_spec = repository.get("spec", {})
        namespace = repository["metadata"].get("namespace", "")
        auth_name = (repository_spec.get("secretRef") or {}).get("name")
        tls_name = (repository_spec.get("certSecretRef") or {}).get("name")
        auth = (
            await source_secret_data(self.secrets, namespace, auth_name, purpose="authentication")
            if auth_name
            else None
        )
        tls = (
            await source_secret_data(self.secrets, namespace, tls_name, purpose="TLS")
            if tls_name
            else None
        )
        return self.registries.client(
            address,
            credentials=oci_chart_credentials(
                auth, registry=address.registry, secret_name=f"{namespace}/{auth_name}"
            ),
            tls_data=tls,
            tls_secret_name=f"{namespace}/{tls_name}",
            insecure=bool(repository_spec.get("insecure")),
        )

    async def _dependencies(
        self,
        namespace: str,
        chart_dir: Path,
        source_dir: Path,
        chart_path: str,
        scratch: Path,
    ) -> dict[str, Path]:
        """The dependencies missing from ``charts/``, resolved as Flux's dependency manager does.

        ``file://`` ones (or none named) come from the source; http(s) and oci ones
        from the HelmRepository of that URL in the namespace, with its credentials,
        or, when there is none, from the URL itself without credentials.
        """
        missing = await anyio.to_thread.run_sync(missing_dependencies, chart_dir)
        subcharts: dict[str, Path] = {}
        for number, dependency in enumerate(missing):
            if dependency.local:
                subcharts[dependency.chart_name] = await anyio.to_thread.run_sync(
                    local_dependency_dir, source_dir, chart_path, dependency
                )
                continue
            url = dependency_repository_url(dependency)
            try:
                content = await self._remote_dependency(namespace, url, dependency, scratch)
            except (ChartBuildFailed, SourceError) as error:
                detail = error.message
                if isinstance(error, ChartBuildFailed):
                    detail = detail.split(": ", 1)[-1]
                raise ChartBuildFailed(
                    ChartBuildFailed.DEPENDENCY,
                    f"failed to add remote dependency '{dependency.chart_name}': {detail}",
                ) from None
            target = scratch / f"dependency-{number}"
            target.mkdir()
            subcharts[dependency.chart_name] = await anyio.to_thread.run_sync(
                unpack_chart, content, target
            )
        return subcharts

    async def _remote_dependency(
        self, namespace: str, url: str, dependency: ChartDependency, scratch: Path
    ) -> bytes:
        repository = await self._repository_for_url(namespace, url)
        repository_spec = repository.get("spec", {})
        version = dependency.version or "*"
        with anyio.fail_after(helm_timeout_seconds(repository_spec)):
            if url.startswith("oci://"):
                address = oci_chart_address(url, dependency.name)
                client = await self._registry_client(address, repository)
                chosen = await resolve_oci_chart_version(client, dependency.name, version)
                target = scratch / f"{dependency.chart_name}.tgz"
                await pull_oci_chart(client, chosen, target)
                return await anyio.to_thread.run_sync(target.read_bytes)
            credentials = HelmCredentials()
            if repository["metadata"].get("name"):
                credentials = await repository_credentials(self.secrets, namespace, repository_spec)
            index_artifact = (repository.get("status") or {}).get("artifact")
            if index_artifact and self.storage.exists(index_artifact):
                index_file = self.storage.local_path(str(index_artifact["path"]))
                index = json.loads(await anyio.to_thread.run_sync(index_file.read_bytes))
            else:
                served = await download(
                    f"{url}index.yaml",
                    repository_url=url,
                    credentials=credentials,
                    timeout=helm_timeout_seconds(repository_spec),
                    max_size=MAX_INDEX_SIZE,
                )
                index = load_index(served)
            entry = select_chart_version(index, dependency.name, version)
            return await download(
                chart_download_url(url, entry),
                repository_url=url,
                credentials=credentials,
                timeout=helm_timeout_seconds(repository_spec),
                max_size=MAX_CHART_SIZE,
            )

    async def _repository_for_url(self, namespace: str, url: str) -> Object:
        """The HelmRepository of ``url`` in ``namespace``, or an anonymous one (as Flux)."""
        helm_repositories = Resource.of(HELM_REPOSITORY)
        repositories, _ = await self.kube.list_all(helm_repositories, namespace=namespace)
        for repository in repositories:
            spec_url = str(repository.get("spec", {}).get("url", ""))
            if spec_url and normalize_repository_url(spec_url) == url:
                return repository
        return {"metadata": {"namespace": namespace}, "spec": {"url": url}}

    @staticmethod
    def _expected(obj: Object, version: str) -> str:
        """The published version for a pulled ``version``: the generation added for valuesFiles."""
        if not (obj.get("spec", {}).get("valuesFiles") or []):
            return version
        return f"{version.split('+', 1)[0]}+{obj['metadata'].get('generation', 0)}"

    async def _pulled(
        self, obj: Object, content: bytes, name: str, version: str, scratch: Path
    ) -> ChartPackage:
        """A downloaded chart as published: as is, or with its values files merged in."""
        spec = obj.get("spec", {})
        values_files = list(spec.get("valuesFiles") or [])
        if not values_files:
            return pulled_chart(content, expected_name=name, expected_version=version)
        metadata = str(obj["metadata"].get("generation", 0))
        return await anyio.to_thread.run_sync(
            lambda: repackage_chart(
                content,
                scratch,
                version_metadata=metadata,
                values_files=values_files,
                ignore_missing_values_files=bool(spec.get("ignoreMissingValuesFiles")),
            )
        )

    async def _package(
        self, obj: Object, source_artifact: Mapping[str, Any], scratch: Path
    ) -> ChartPackage | None:
        """The chart directory of a GitRepository artifact, packaged (None: already published)."""
        spec = obj.get("spec", {})
        chart_path = str(spec.get("chart", ""))
        source_dir = scratch / "source"
        await anyio.to_thread.run_sync(
            lambda: unpack(self.storage.local_path(str(source_artifact["path"])), source_dir)
        )
        values_files = list(spec.get("valuesFiles") or [])
        metadata = ""
        if spec.get("reconcileStrategy") == RECONCILE_STRATEGY_REVISION:
            # Flux: the commit's first 12 hex digits, short enough for label values.
            metadata = str(source_artifact.get("revision", "")).rsplit(":", 1)[-1][:12]
        if values_files:
            metadata = ".".join(
                part for part in (metadata, str(obj["metadata"].get("generation", 0))) if part
            )
        chart_dir = local_chart_dir(source_dir, chart_path)
        name, version = await anyio.to_thread.run_sync(chart_identity, chart_dir, metadata)
        # As Flux: an unchanged version is not built again (nor its dependencies fetched).
        if self._up_to_date(obj, version, name):
            return None
        namespace = obj["metadata"]["namespace"]
        subcharts = await self._dependencies(namespace, chart_dir, source_dir, chart_path, scratch)
        return await anyio.to_thread.run_sync(
            lambda: package_chart(
                chart_dir,
                version_metadata=metadata,
                values_files=values_files,
                values_root=source_dir,
                ignore_missing_values_files=bool(spec.get("ignoreMissingValuesFiles")),
                subcharts=subcharts,
            )
        )

    def _ready(
        self,
        obj: Object,
        source_artifact: Mapping[str, Any],
        *,
        new: bool,
        chart: ChartPackage | None = None,
        stored: dict[str, Any] | None = None,
    ) -> Reconciled:
        status = obj.get("status", {})
        spec = obj.get("spec", {})
        from_git = (spec.get("sourceRef") or {}).get("kind") == GIT_REPOSITORY.kind
        artifact = stored if stored is not None else dict(status.get("artifact") or {})
        if chart is not None:
            reason = CHART_PULL_SUCCEEDED if not chart.packaged else CHART_PACKAGE_SUCCEEDED
            message = chart.summary()
            values_files = list(chart.values_files)
        else:
            # Unchanged: the message and reason it was published with still hold.
            ready: Mapping[str, Any] = meta.condition_of(obj, meta.ConditionType.READY) or {}
            packaged = from_git
            reason = CHART_PACKAGE_SUCCEEDED if packaged else CHART_PULL_SUCCEEDED
            message = str(ready.get("message") or "") if ready.get("status") == "True" else ""
            values_files = list(status.get("observedValuesFiles") or spec.get("valuesFiles") or [])
            if not message:
                message = _summary(packaged, status, artifact)
        events = []
        before = (status.get("artifact") or {}).get("digest")
        recovered = any(
            entry.get("type") in FAILURE_CONDITIONS and entry.get("status") == "True"
            for entry in status.get("conditions") or []
        )
        if (new and artifact.get("digest") != before) or recovered:
            events.append(
                EventNote(
                    "Normal",
                    reason,
                    message,
                    metadata={
                        "revision": str(artifact.get("revision", "")),
                        "digest": str(artifact.get("digest", "")),
                    },
                )
            )
        return Reconciled(
            reason=reason,
            message=message,
            status={
                "artifact": artifact,
                "observedSourceArtifactRevision": source_artifact.get("revision"),
                "observedChartName": chart.name if chart else status.get("observedChartName"),
                # As Flux: recorded only when missing files may have been skipped.
                "observedValuesFiles": (
                    (values_files or None) if spec.get("ignoreMissingValuesFiles") else None
                ),
            },
            conditions=[
                ConditionUpdate(ARTIFACT_IN_STORAGE, "True", reason, message),
                ConditionUpdate(FETCH_FAILED, None),
                ConditionUpdate(BUILD_FAILED, None),
                ConditionUpdate(STORAGE_FAILED, None),
            ],
            events=events,
        )


def _summary(packaged: bool, status: Mapping[str, Any], artifact: Mapping[str, Any]) -> str:
    chart = ChartPackage(
        str(status.get("observedChartName", "")),
        str(artifact.get("revision", "")),
        b"",
        tuple(status.get("observedValuesFiles") or ()),
        packaged,
    )
    return chart.summary()


# What source-controller looks for in a chart repository's build error to call it an
# authentication failure (basic auth, then TLS).
AUTH_ERROR_WORDS = (
    "401",
    "unauthorized",
    "authentication required",
    "tls",
    "unknown certificate authority",
)


def _build_failure(error: ChartBuildFailed, *, from_repository: bool) -> Transient | Stalled:
    if from_repository and any(word in error.message for word in AUTH_ERROR_WORDS):
        reason = meta.Reason.AUTHENTICATION_FAILED
        message = f"failed to authenticate with the Helm repository: {error.message}"
        return Transient(
            reason, message, conditions=[ConditionUpdate(FETCH_FAILED, "True", reason, message)]
        )
    failure = Stalled if error.persistent else Transient
    condition = FETCH_FAILED if error.reason == ChartBuildFailed.PULL[0] else BUILD_FAILED
    return failure(
        error.reason,
        error.message,
        conditions=[ConditionUpdate(condition, "True", error.reason, error.message)],
    )


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    storage = Storage(
        Path(settings.storage_path),
        base_url=storage_base_url(settings),
        retention=settings.artifact_retention_records,
    )
    reconciler = HelmChartReconciler(
        kube=kube, storage=storage, secrets=components.secret_cache(kube, settings)
    )
    controller = Controller(kube=kube, reconciler=reconciler, recorder=recorder, settings=settings)
    components.controllers.append(controller)
    components.services["helm-registry-sessions"] = reconciler.registries.run

    for kind in (HELM_REPOSITORY.kind, GIT_REPOSITORY.kind):
        source_controller = components.controller(kind)
        if source_controller is None:
            continue

        def announce(old: Object, new: Object, kind: str = kind) -> None:
            # A new artifact of a source is new input for the charts built from it.
            before = (old.get("status", {}).get("artifact") or {}).get("revision")
            after = (new.get("status", {}).get("artifact") or {}).get("revision")
            if after and after != before:
                metadata = new["metadata"]
                key = (metadata["namespace"], kind, metadata["name"])
                for chart in sorted(reconciler.dependents.get(key, ())):
                    controller.request(*chart)

        source_controller.after_reconcile.append(announce)

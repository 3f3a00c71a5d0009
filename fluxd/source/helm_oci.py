"""Helm charts stored in an OCI registry, for a HelmRepository of ``type: oci``.

Such a repository has no index: the chart ``<name>`` of ``oci://<host>/<path>``
is the OCI repository ``<host>/<path>/<name>``, its versions are its tags.
The version is picked as source-controller's OCI chart repository picks it:
a ``spec.version`` that is a full version is used as is (no tag listing);
otherwise the tags that are versions (Helm writes a version's ``+`` as
``_``) are searched, an exact match first, else the highest in the range.
The chart is the manifest's layer of Helm's chart media type, pulled with
the registry client OCIRepository uses (:mod:`fluxd.source.oci`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from fluxd.source.errors import AuthenticationFailed, SourceError
from fluxd.source.helm import MAX_CHART_SIZE, ChartBuildFailed
from fluxd.source.oci import (
    HELM_CHART_LAYER,
    OCIAddress,
    OCIPullFailed,
    RegistryClient,
    RegistryCredentials,
    select_layer,
)
from fluxd.source.semver_range import SemverRange, highest_match, parse_tag_version

__all__ = [
    "is_full_version",
    "oci_chart_address",
    "oci_chart_credentials",
    "pull_oci_chart",
    "resolve_oci_chart_version",
    "select_oci_chart_version",
]

# Masterminds' StrictNewVersion, which Helm's registry client applies to tags.
_STRICT = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def is_full_version(version: str) -> bool:
    """Whether ``spec.version`` names one version (three parts), not a range."""
    return len(version.split(".", 2)) == 3 and parse_tag_version(version) is not None


def oci_chart_address(repository_url: str, chart: str) -> OCIAddress:
    """The OCI repository holding ``chart`` of the HelmRepository at ``repository_url``."""
    return OCIAddress.parse(f"{repository_url.rstrip('/')}/{chart}")


def oci_chart_credentials(
    data: Mapping[str, bytes] | None, *, registry: str, secret_name: str
) -> RegistryCredentials:
    """``secretRef`` of an OCI HelmRepository: a dockerconfigjson or username/password."""
    if data is None:
        return RegistryCredentials()
    if ".dockerconfigjson" in data:
        return RegistryCredentials.from_docker_config(
            data, registry=registry, secret_name=secret_name
        )
    username, password = data.get("username"), data.get("password")
    if username is None or password is None:
        raise AuthenticationFailed(
            f"secret '{secret_name}': required fields 'username' and 'password' "
            "(or '.dockerconfigjson')"
        )
    return RegistryCredentials(username.decode(), password.decode())


def select_oci_chart_version(tags: Iterable[str], name: str, version: str) -> str:
    """The chart version (``+`` form) to pull among an OCI repository's tags."""
    versions = [tag.replace("_", "+") for tag in tags]
    versions = [found for found in versions if _STRICT.match(found)]
    if not versions:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL,
            "failed to get chart version for remote reference: could not get tags for "
            f'"{name}": unable to locate any tags in provided repository: {name}',
        )
    if version and version in versions:
        return version
    wanted = "*" if version in ("", "*") else version
    try:
        rng = SemverRange.parse(wanted)
    except ValueError as error:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL, f"failed to get chart version for remote reference: {error}"
        ) from None
    found = highest_match(rng, versions)
    if found is None:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL,
            "failed to get chart version for remote reference: "
            f"could not locate a version matching provided version string {version}",
        )
    return found


async def resolve_oci_chart_version(client: RegistryClient, name: str, version: str) -> str:
    """The version of chart ``name`` to pull for ``spec.version``: listed only for a range."""
    if is_full_version(version):
        return version
    try:
        tags = await client.list_tags()
    except SourceError as error:
        where = f"oci://{client.address.registry}/{client.address.repository}"
        raise ChartBuildFailed(
            ChartBuildFailed.PULL,
            f'failed to get chart version for remote reference: could not get tags for "{name}": '
            f'could not fetch tags for "{where}": {error.message}',
        ) from None
    return select_oci_chart_version(tags, name, version)


async def pull_oci_chart(client: RegistryClient, version: str, target: Path) -> None:
    """Download the chart package of ``version`` into ``target``."""
    tag = version.replace("+", "_")
    reference = client.address.reference(tag)
    try:
        digest = await client.resolve(tag)
        manifest = await client.manifest(digest)
        layer = select_layer(manifest, HELM_CHART_LAYER)
        size = int(layer.get("size") or 0)
        if size > MAX_CHART_SIZE:
            raise OCIPullFailed(f"chart exceeds the maximum size of {MAX_CHART_SIZE} bytes")
        await client.blob(str(layer.get("digest", "")), target)
    except SourceError as error:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL,
            f"failed to download chart for remote reference: failed to get "
            f"'oci://{reference}': {error.message}",
        ) from None

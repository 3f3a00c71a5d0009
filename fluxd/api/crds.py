"""CustomResourceDefinitions for the kinds fluxd serves, generated from the API types.

The TypedDicts in ``fluxd.api`` are the single source of truth; this module
turns them into deterministic CRD manifests.  ``manifests/crds/`` holds the
rendered output and a test fails when it is stale.  Regenerate with::

    python -m fluxd.api.crds --write manifests/crds
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from fluxd.api.bucket import BUCKET_RESOURCE
from fluxd.api.errors import UnknownKind
from fluxd.api.helm import HELM_CHART_RESOURCE, HELM_REPOSITORY_RESOURCE
from fluxd.api.kustomize import KUSTOMIZATION_RESOURCE
from fluxd.api.meta import DISABLED_VALUE, SUBSTITUTE_ANNOTATION, ResourceKind
from fluxd.api.notification import ALERT_RESOURCE, PROVIDER_RESOURCE, RECEIVER_RESOURCE
from fluxd.api.oci import OCI_REPOSITORY_RESOURCE
from fluxd.api.schema import CustomResource
from fluxd.api.source import GIT_REPOSITORY_RESOURCE

REGENERATE_COMMAND = "python -m fluxd.api.crds --write manifests/crds"
KUSTOMIZATION_FILENAME = "kustomization.yaml"
_HEADER = f"# Generated from fluxd.api; do not edit. Regenerate: {REGENERATE_COMMAND}\n"
# The labels Flux's install puts on its CRDs: `flux check` lists CRDs by part-of, and
# `flux version` reads part-of and version from the GitRepository CRD ("distribution").
# manifests/kustomization.yaml puts the same on every installed object.
INSTALL_LABELS = {
    "app.kubernetes.io/instance": "flux-system",
    "app.kubernetes.io/part-of": "flux",
    "app.kubernetes.io/version": "v0.1.0",
}

_RESOURCES: tuple[CustomResource, ...] = (
    GIT_REPOSITORY_RESOURCE,
    KUSTOMIZATION_RESOURCE,
    RECEIVER_RESOURCE,
    PROVIDER_RESOURCE,
    ALERT_RESOURCE,
    OCI_REPOSITORY_RESOURCE,
    HELM_REPOSITORY_RESOURCE,
    HELM_CHART_RESOURCE,
    BUCKET_RESOURCE,
)


def custom_resources() -> list[CustomResource]:
    """Every kind fluxd serves with its schema, in a stable order."""
    return list(_RESOURCES)


def all_kinds() -> list[ResourceKind]:
    """Every kind fluxd serves, in a stable order."""
    return [resource.kind for resource in _RESOURCES]


def custom_resource(*, api_version: str, kind: str) -> CustomResource:
    """The served kind matching an object's apiVersion and kind, or UnknownKind."""
    for resource in _RESOURCES:
        if resource.kind.api_version == api_version and resource.kind.kind == kind:
            return resource
    raise UnknownKind(api_version=api_version, kind=kind)


def _resource_of(kind: ResourceKind) -> CustomResource:
    return custom_resource(api_version=kind.api_version, kind=kind.kind)


def crd_manifest(kind: ResourceKind) -> dict[str, Any]:
    """The CustomResourceDefinition of a served kind, as a plain dict."""
    resource = _resource_of(kind)
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": kind.list_kind,
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    if kind.categories:
        names["categories"] = list(kind.categories)
    version: dict[str, Any] = {
        "name": kind.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": resource.openapi_schema()},
        "additionalPrinterColumns": [column.manifest() for column in resource.printer_columns],
    }
    if resource.has_status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            # Patterns such as '...)+$' must survive being applied through a Kustomization.
            "annotations": {SUBSTITUTE_ANNOTATION: DISABLED_VALUE},
            "labels": dict(INSTALL_LABELS),
        },
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [version],
        },
    }


class _ManifestDumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases, so every file reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(
        document,
        Dumper=_ManifestDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def crd_filename(kind: ResourceKind) -> str:
    """File name under manifests/crds, as Flux names its CRD files."""
    return f"{kind.group}_{kind.plural}.yaml"


def render_crd(kind: ResourceKind) -> str:
    return _HEADER + "---\n" + _dump(crd_manifest(kind))


def render_crds() -> str:
    """All CRDs as one multi-document YAML stream, in a stable order."""
    return _HEADER + "".join("---\n" + _dump(crd_manifest(kind)) for kind in all_kinds())


def render_kustomization() -> str:
    """The kustomization.yaml that lists every CRD file."""
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [crd_filename(kind) for kind in all_kinds()],
    }
    return _HEADER + _dump(document)


def rendered_files() -> dict[str, str]:
    """File name to content for everything that belongs in manifests/crds."""
    files = {crd_filename(kind): render_crd(kind) for kind in all_kinds()}
    files[KUSTOMIZATION_FILENAME] = render_kustomization()
    return files


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD file and the kustomization.yaml into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in rendered_files().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path) -> list[str]:
    """Names of files in ``directory`` that are missing, differ or should not be there."""
    expected = rendered_files()
    present = {path.name for path in directory.glob("*.yaml")} if directory.is_dir() else set()
    stale = []
    for name in sorted(expected.keys() | present):
        path = directory / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != expected.get(name):
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fluxd.api.crds",
        description="Print, write or check fluxd's CustomResourceDefinitions.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="DIR", type=Path, help="write the CRD files to DIR")
    action.add_argument("--check", metavar="DIR", type=Path, help="fail if DIR is out of date")
    args = parser.parse_args(argv)
    if args.write is not None:
        for path in write_crds(args.write):
            print(path)
        return 0
    if args.check is not None:
        stale = stale_files(args.check)
        if stale:
            print(f"stale: {', '.join(stale)}; run {REGENERATE_COMMAND}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(render_crds())
    return 0


if __name__ == "__main__":
    sys.exit(main())

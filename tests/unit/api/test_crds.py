"""The CRDs fluxd installs: generated from the types, committed, and shaped like Flux's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxd.api.crds import (
    REGENERATE_COMMAND,
    all_kinds,
    crd_manifest,
    main,
    render_crds,
    stale_files,
    write_crds,
)
from fluxd.api.kustomize import KUSTOMIZATION
from fluxd.api.meta import ResourceKind
from fluxd.api.notification import ALERT, PROVIDER, RECEIVER
from fluxd.api.source import GIT_REPOSITORY

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
COMMITTED_CRDS = REPOSITORY_ROOT / "manifests" / "crds"


def test_committed_crds_match_the_types() -> None:
    stale = stale_files(COMMITTED_CRDS)
    assert not stale, f"manifests/crds is stale ({', '.join(stale)}): run {REGENERATE_COMMAND}"


def test_regenerate_command_is_the_documented_one() -> None:
    assert REGENERATE_COMMAND == "python -m fluxd.api.crds --write manifests/crds"


def test_check_flags_edited_missing_and_extra_files(tmp_path: Path) -> None:
    write_crds(tmp_path)
    assert stale_files(tmp_path) == []
    assert main(["--check", str(tmp_path)]) == 0
    edited = tmp_path / "source.toolkit.fluxcd.io_gitrepositories.yaml"
    edited.write_text(edited.read_text() + "# local edit\n")
    (tmp_path / "kustomization.yaml").unlink()
    (tmp_path / "leftover.yaml").write_text("{}\n")
    assert stale_files(tmp_path) == [
        "kustomization.yaml",
        "leftover.yaml",
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
    ]
    assert main(["--check", str(tmp_path)]) == 1


def test_kustomization_lists_every_crd_file() -> None:
    listing = yaml.safe_load((COMMITTED_CRDS / "kustomization.yaml").read_text())
    assert listing["kind"] == "Kustomization"
    assert sorted(listing["resources"]) == sorted(
        path.name for path in COMMITTED_CRDS.glob("*_*.yaml")
    )


def test_render_is_deterministic_multi_document_yaml() -> None:
    text = render_crds()
    assert text == render_crds()
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    assert [doc["metadata"]["name"] for doc in documents] == [
        "gitrepositories.source.toolkit.fluxcd.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "receivers.notification.toolkit.fluxcd.io",
        "providers.notification.toolkit.fluxcd.io",
        "alerts.notification.toolkit.fluxcd.io",
        "ocirepositories.source.toolkit.fluxcd.io",
        "helmrepositories.source.toolkit.fluxcd.io",
        "helmcharts.source.toolkit.fluxcd.io",
        "buckets.source.toolkit.fluxcd.io",
    ]
    assert "&id" not in text and "*id" not in text  # no YAML anchors/aliases


def version_of(kind: ResourceKind) -> dict[str, Any]:
    (version,) = crd_manifest(kind)["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def spec_schema(kind: ResourceKind) -> dict[str, Any]:
    schema: dict[str, Any] = version_of(kind)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


@pytest.mark.parametrize(
    ("kind", "api_version", "short_names", "columns", "has_status"),
    [
        pytest.param(
            GIT_REPOSITORY,
            "source.toolkit.fluxcd.io/v1",
            ["gitrepo"],
            ["URL", "Age", "Ready", "Status"],
            True,
            id="GitRepository",
        ),
        pytest.param(
            KUSTOMIZATION,
            "kustomize.toolkit.fluxcd.io/v1",
            ["ks"],
            ["Age", "Ready", "Status"],
            True,
            id="Kustomization",
        ),
        pytest.param(
            RECEIVER,
            "notification.toolkit.fluxcd.io/v1",
            None,
            ["Age", "Ready", "Status"],
            True,
            id="Receiver",
        ),
        pytest.param(
            PROVIDER, "notification.toolkit.fluxcd.io/v1beta3", None, ["Age"], False, id="Provider"
        ),
        pytest.param(
            ALERT, "notification.toolkit.fluxcd.io/v1beta3", None, ["Age"], False, id="Alert"
        ),
    ],
)
def test_kind_identity_columns_and_status(
    kind: ResourceKind,
    api_version: str,
    short_names: list[str] | None,
    columns: list[str],
    has_status: bool,
) -> None:
    manifest = crd_manifest(kind)
    assert kind in all_kinds()
    assert kind.api_version == api_version
    assert manifest["spec"]["scope"] == "Namespaced"
    assert manifest["spec"]["names"].get("shortNames") == short_names
    assert "fluxcd" in manifest["spec"]["names"]["categories"]
    version = version_of(kind)
    assert version["served"] and version["storage"]
    assert [column["name"] for column in version["additionalPrinterColumns"]] == columns
    assert ("subresources" in version) is has_status


def test_ready_column_reads_the_ready_condition() -> None:
    columns = {c["name"]: c for c in version_of(KUSTOMIZATION)["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Status"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].message'
    assert columns["Age"]["type"] == "date"


@pytest.mark.parametrize(
    ("kind", "required"),
    [
        pytest.param(GIT_REPOSITORY, ["interval", "url"], id="GitRepository"),
        pytest.param(KUSTOMIZATION, ["interval", "prune", "sourceRef"], id="Kustomization"),
        pytest.param(RECEIVER, ["resources", "type"], id="Receiver"),
        pytest.param(PROVIDER, ["type"], id="Provider"),
        pytest.param(ALERT, ["eventSources", "providerRef"], id="Alert"),
    ],
)
def test_required_spec_fields_match_flux(kind: ResourceKind, required: list[str]) -> None:
    assert spec_schema(kind)["required"] == required


def test_flux_defaults_are_in_the_schema() -> None:
    git = spec_schema(GIT_REPOSITORY)["properties"]
    assert git["timeout"]["default"] == "60s"
    assert spec_schema(RECEIVER)["properties"]["interval"]["default"] == "10m"
    assert spec_schema(ALERT)["properties"]["eventSeverity"]["default"] == "info"
    status = version_of(KUSTOMIZATION)["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == {"observedGeneration": -1}


def test_fluxd_extra_types_are_served() -> None:
    receiver_types = spec_schema(RECEIVER)["properties"]["type"]["enum"]
    provider_types = spec_schema(PROVIDER)["properties"]["type"]["enum"]
    assert "gitea" in receiver_types and "generic-hmac" in receiver_types
    assert {"dingtalk", "wecom", "feishu", "lark", "gitea", "slack"} <= set(provider_types)


def test_postbuild_substitute_is_a_map_of_strings() -> None:
    post_build = spec_schema(KUSTOMIZATION)["properties"]["postBuild"]["properties"]
    assert post_build["substitute"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Variables substituted for ${name} in the manifests.",
    }


def test_conditions_use_the_metav1_condition_schema() -> None:
    status = version_of(GIT_REPOSITORY)["schema"]["openAPIV3Schema"]["properties"]["status"]
    condition = status["properties"]["conditions"]["items"]
    assert condition["required"] == [
        "lastTransitionTime",
        "message",
        "reason",
        "status",
        "type",
    ]
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert condition["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_crds_survive_flux_variable_substitution() -> None:
    # Patterns end in '$'; Flux skips substitution for objects carrying this annotation.
    for kind in all_kinds():
        annotations = crd_manifest(kind)["metadata"]["annotations"]
        assert annotations["kustomize.toolkit.fluxcd.io/substitute"] == "disabled"


def test_every_schema_node_is_structural() -> None:
    """Each node has a type unless it preserves unknown fields, as the apiserver demands."""

    def walk(node: dict[str, Any], where: str) -> None:
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), where
        assert not ("properties" in node and "additionalProperties" in node), where
        for name, child in node.get("properties", {}).items():
            walk(child, f"{where}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}{{*}}")
        if "items" in node:
            walk(node["items"], f"{where}[]")

    for kind in all_kinds():
        walk(version_of(kind)["schema"]["openAPIV3Schema"], kind.kind)

"""The command line speaks of HelmRepositories, HelmCharts and Buckets as flux does."""

from __future__ import annotations

import pytest

from fluxd.cli import kinds, parser
from fluxd.cli.listing import row

DIGEST = "sha256:" + "ab" * 32


def test_an_oci_helm_repository_reads_ready_as_in_flux() -> None:
    oci = {"metadata": {"name": "podinfo"}, "spec": {"type": "oci"}, "status": {}}
    assert row(kinds.HELM_REPOSITORIES, oci, all_namespaces=False, wide=False) == [
        "podinfo",
        "",
        "False",
        "True",
        "Helm repository is Ready",
    ]


def test_a_helm_repository_row_shows_its_index_revision() -> None:
    obj = {
        "metadata": {"name": "charts"},
        "spec": {},
        "status": {
            "artifact": {"revision": DIGEST},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "message": f"stored artifact: revision '{DIGEST}'",
                }
            ],
        },
    }
    cells = row(kinds.HELM_REPOSITORIES, obj, all_namespaces=False, wide=False)
    assert cells == [
        "charts",
        "sha256:abababab",
        "False",
        "True",
        "stored artifact: revision 'sha256:abababab'",
    ]
    assert kinds.HELM_REPOSITORIES.success(obj) == f"fetched revision {DIGEST}"


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        pytest.param(["get", "sources", "helm"], kinds.HELM_REPOSITORIES, id="get-helm"),
        pytest.param(["get", "sources", "chart"], kinds.HELM_CHARTS, id="get-chart"),
        pytest.param(["get", "sources", "bucket"], kinds.BUCKETS, id="get-bucket"),
    ],
)
def test_get_sources_names_each_kind(argv: list[str], kind: kinds.CliKind) -> None:
    assert parser().parse_args(argv).kinds == (kind,)


@pytest.mark.parametrize(
    ("word", "kind"),
    [
        pytest.param("helm", kinds.HELM_REPOSITORIES, id="helm"),
        pytest.param("chart", kinds.HELM_CHARTS, id="chart"),
    ],
)
def test_reconcile_source_names_helm_kinds(word: str, kind: kinds.CliKind) -> None:
    parsed = parser().parse_args(["reconcile", "source", word, "podinfo"])
    assert parsed.kind is kind and parsed.name == "podinfo"


@pytest.mark.parametrize("verb", ["suspend", "resume"])
@pytest.mark.parametrize(
    ("word", "kind"),
    [
        pytest.param("helm", kinds.HELM_REPOSITORIES, id="helm"),
        pytest.param("chart", kinds.HELM_CHARTS, id="chart"),
        pytest.param("bucket", kinds.BUCKETS, id="bucket"),
    ],
)
def test_suspend_and_resume_name_the_source_kinds(
    verb: str, word: str, kind: kinds.CliKind
) -> None:
    parsed = parser().parse_args([verb, "source", word, "podinfo"])
    assert parsed.kind is kind and parsed.name == "podinfo"


def test_short_names_find_the_kinds() -> None:
    assert kinds.by_kind_name("helmrepo") is kinds.HELM_REPOSITORIES
    assert kinds.by_kind_name("hc") is kinds.HELM_CHARTS
    assert kinds.by_kind_name("buckets") is kinds.BUCKETS

"""build/diff without a cluster, check's verdicts, and the command line's flags."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fluxd.cli import main, parser
from fluxd.cli.building import (
    build_offline,
    kustomization_from_file,
    mask_secret_data,
    source_root,
    unified_diff,
)
from fluxd.cli.checks import PERMISSIONS, contains, lease_finding, parse_version
from fluxd.cli.failures import UsageError, connection_problem
from fluxd.cli.kinds import GIT_REPOSITORIES, KUSTOMIZATIONS, OCI_REPOSITORIES, SOURCES
from fluxd.cli.terminal import Terminal


def _ks_file(tmp_path: Path, **spec: object) -> Path:
    path = tmp_path / "ks.yaml"
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"path": "./", "sourceRef": {"kind": "GitRepository", "name": "r"}, **spec},
        },
    ]
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_kustomization_file_is_searched_by_name(tmp_path: Path) -> None:
    found = kustomization_from_file(_ks_file(tmp_path), name="apps")
    assert found["metadata"]["namespace"] == "flux-system"
    with pytest.raises(UsageError, match="no Kustomization named 'other' \\(found 'apps'\\)"):
        kustomization_from_file(_ks_file(tmp_path), name="other")
    with pytest.raises(UsageError, match="cannot read"):
        kustomization_from_file(tmp_path / "absent.yaml", name="apps")


def test_source_root_is_the_enclosing_work_tree(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    app = tmp_path / "apps" / "prod"
    app.mkdir(parents=True)
    assert source_root(app) == (tmp_path.resolve(), "apps/prod")
    outside = tmp_path.parent / f"{tmp_path.name}-plain"
    outside.mkdir()
    assert source_root(outside) == (outside.resolve(), ".")
    with pytest.raises(UsageError, match="not a directory"):
        source_root(tmp_path / "missing")


async def test_offline_build_renders_substitutes_and_labels(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: ${VALUE}\n"
    )
    ks = _ks_file(tmp_path, targetNamespace="prod", postBuild={"substitute": {"VALUE": "v"}})
    parsed = parser().parse_args(
        ["build", "ks", "apps", "--path", str(app), "--dry-run", "--kustomization-file", str(ks)]
    )
    out, err = io.StringIO(), io.StringIO()
    assert await build_offline(parsed, Terminal(out=out, err=err)) == 0
    (config,) = list(yaml.safe_load_all(out.getvalue()))
    assert config["data"] == {"k": "v"}
    assert config["metadata"]["namespace"] == "prod"
    assert config["metadata"]["labels"] == {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    assert err.getvalue() == ""


def test_build_dry_run_without_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["build", "kustomization", "apps", "--path", str(tmp_path), "--dry-run"])
    assert code == 2
    assert capsys.readouterr().err == (
        "✗ --dry-run needs --kustomization-file: the spec cannot come from the cluster\n"
    )


def test_secret_values_are_masked_like_flux() -> None:
    live = {"data": {"same": "YQ==", "changed": "Yg==", "removed": "Yw=="}}
    merged = {"data": {"same": "YQ==", "changed": "ZA==", "added": "ZQ=="}}
    mask_secret_data(live, merged)
    assert live["data"] == {"same": "***", "changed": "*** (before)", "removed": "***"}
    assert merged["data"] == {"same": "***", "changed": "*** (after)", "added": "***"}


def test_unified_diff_ignores_server_fields_and_hides_secrets() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "resourceVersion": "1", "managedFields": [{}]},
        "data": {"token": "b2xk"},
    }
    merged = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "resourceVersion": "2"},
        "data": {"token": "bmV3"},
    }
    text = unified_diff(live, merged, subject="Secret/ns/s")
    assert "-  token: '*** (before)'\n+  token: '*** (after)'\n" in text
    assert "resourceVersion" not in text and "b2xk" not in text and "bmV3" not in text


@pytest.mark.parametrize(
    ("expected", "live", "result"),
    [
        pytest.param({"a": 1}, {"a": 1, "defaulted": True}, True, id="server-defaults"),
        pytest.param({"a": 1}, {"a": 2}, False, id="changed-value"),
        pytest.param({"a": {"b": [1, 2]}}, {"a": {"b": [1]}}, False, id="shorter-list"),
        pytest.param({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, True, id="list-of-objects"),
        pytest.param({"new": 1}, {}, False, id="missing-field"),
    ],
)
def test_crd_is_current_when_the_cluster_holds_everything_generated(
    expected: object, live: object, result: bool
) -> None:
    assert contains(expected, live) is result


def test_lease_verdicts() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def lease(holder: str, renewed: str) -> dict[str, object]:
        return {
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 35, "renewTime": renewed}
        }

    fresh = lease_finding(lease("pod-1", "2024-05-01T11:59:57.000000Z"), label="ns/l", now=now)
    assert fresh == (True, "leader lease ns/l held by 'pod-1', renewed 3s ago")
    stale = lease_finding(lease("pod-1", "2024-05-01T11:50:00.000000Z"), label="ns/l", now=now)
    assert stale[0] is False
    assert "expired: last renewed 10m ago by 'pod-1'" in stale[1]
    released = lease_finding(lease("", "2024-05-01T11:59:57.000000Z"), label="ns/l", now=now)
    assert released == (False, "leader lease ns/l is not held by anyone: is fluxd running?")
    assert lease_finding(None, label="ns/l", now=now)[0] is False


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("v1.31.2", (1, 31, 2), id="release"),
        pytest.param("v1.30.0+k3s1", (1, 30, 0), id="k3s"),
        pytest.param("1.29", (1, 29, 0), id="no-patch"),
        pytest.param("garbage", None, id="garbage"),
    ],
)
def test_server_version(text: str, parsed: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == parsed


def test_connection_problem_names_the_root_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except OSError as inner:
            raise RuntimeError("GET /version: cannot reach the API server") from inner
    except RuntimeError as outer:
        assert connection_problem(outer) == "connection refused"


@pytest.mark.parametrize(
    ("argv", "kind", "namespace"),
    [
        pytest.param(
            ["reconcile", "source", "git", "r"], GIT_REPOSITORIES, "flux-system", id="git"
        ),
        pytest.param(
            ["reconcile", "source", "oci", "r"], OCI_REPOSITORIES, "flux-system", id="oci"
        ),
        pytest.param(["reconcile", "ks", "apps", "-n", "apps"], KUSTOMIZATIONS, "apps", id="ks"),
        pytest.param(
            ["suspend", "kustomization", "apps"], KUSTOMIZATIONS, "flux-system", id="suspend"
        ),
    ],
)
def test_flags_after_the_command_words(argv: list[str], kind: object, namespace: str) -> None:
    parsed = parser().parse_args(argv)
    assert parsed.kind is kind
    assert parsed.namespace == namespace
    assert parsed.timeout == 300.0


def test_get_sources_alone_lists_every_source_kind() -> None:
    parsed = parser().parse_args(["get", "sources", "-n", "x", "-A"])
    assert parsed.kinds == SOURCES
    assert parsed.with_kind and parsed.all_namespaces and parsed.namespace == "x"
    nested = parser().parse_args(["get", "sources", "git", "-A", "--timeout", "30s"])
    assert nested.all_namespaces and nested.timeout == 30.0 and not nested.with_kind


def test_bad_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["get", "ks", "--timeout", "soon"])
    assert stopped.value.code == 2
    assert "invalid duration 'soon'" in capsys.readouterr().err


def test_permissions_are_named_as_kubectl_names_resources() -> None:
    labels = {permission.label() for permission in PERMISSIONS}
    assert "gitrepositories.source.toolkit.fluxcd.io/status" in labels
    assert "leases.coordination.k8s.io" in labels
    assert "secrets" in labels
    assert "every resource" in labels

"""Reloader's container args work on `fluxd run` verbatim, or stop it with a line naming the flag.

The flag list is stakater Reloader v1.4's (internal/pkg/util/util.go,
ConfigureReloaderFlags), copied here as data: a flag added to fluxd's parser
but missing from this table, or a Reloader flag fluxd neither maps nor
refuses, fails a test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from fluxd.cli import main, parser
from fluxd.controllers.restarter import annotation_names, config_filter
from fluxd.restarter import ConfigKind, RestarterAnnotations
from fluxd.settings import NOT_NEEDED_FLAGS, REFUSED_FLAGS, Settings, SettingsError, load

# Reloader's flag → (a value a user sets, the fluxd setting it lands in).
MAPPED: dict[str, tuple[str, str]] = {
    "auto-reload-all": ("true", "auto_reload_all"),
    "configmap-annotation": ("acme.io/configmaps", "restarter_annotation_configmap_reload"),
    "secret-annotation": ("acme.io/secrets", "restarter_annotation_secret_reload"),
    "auto-annotation": ("acme.io/auto", "restarter_annotation_auto"),
    "ignore-annotation": ("acme.io/ignore", "restarter_annotation_ignore"),
    "configmap-auto-annotation": ("acme.io/cm-auto", "restarter_annotation_configmap_auto"),
    "secret-auto-annotation": ("acme.io/secret-auto", "restarter_annotation_secret_auto"),
    "auto-search-annotation": ("acme.io/search", "restarter_annotation_search"),
    "search-match-annotation": ("acme.io/match", "restarter_annotation_match"),
    "pause-deployment-annotation": ("acme.io/pause", "restarter_annotation_pause_period"),
    "pause-deployment-time-annotation": ("acme.io/paused", "restarter_annotation_paused_at"),
    "log-format": ("", "log_format"),
    "log-level": ("trace", "log_level"),
    "resources-to-ignore": ("configmaps", "resources_to_ignore"),
    "namespaces": ("team-a,team-b", "restarter_scope"),
    "namespaces-to-ignore": ("kube-system", "namespaces_to_ignore"),
    "namespace-selector": ("reloader=enabled", "namespace_selector"),
    "resource-label-selector": ("reloader=enabled", "resource_label_selector"),
    "is-Argo-Rollouts": ("true", "restart_argo_rollouts"),
    "reload-strategy": ("annotations", "reload_strategy"),
    "reload-on-create": ("true", "reload_on_create"),
    "reload-on-delete": ("true", "reload_on_delete"),
    "enable-ha": ("false", "leader_election"),
    "enable-csi-integration": ("true", "enable_csi_integration"),
    "ignored-workload-types": ("jobs,cronjobs", "ignored_workload_types"),
}
# Reloader's flags fluxd refuses unless they hold Reloader's "off" value.
REFUSED = {
    "webhook-url": "https://hooks.example.com/reload",
    "enable-pprof": "true",
}
# Reloader's flags whose job fluxd does anyway (docs/reloader-migration.md says why).
NOT_NEEDED = {"sync-after-restart": "true", "pprof-addr": ":6060"}
RELOADER_FLAGS = set(MAPPED) | set(REFUSED) | set(NOT_NEEDED)


def _settings(args: list[str], environ: Mapping[str, str] | None = None) -> Settings:
    parsed = parser().parse_args(["run", *args])
    return load(flags=vars(parsed), environ=environ or {})


def test_the_table_is_reloaders_whole_flag_list() -> None:
    # 29 flags in Reloader v1.4's ConfigureReloaderFlags.
    assert len(RELOADER_FLAGS) == 29
    assert {f.name for f in REFUSED_FLAGS} == set(REFUSED)
    assert set(NOT_NEEDED_FLAGS) == set(NOT_NEEDED)


@pytest.mark.parametrize(("flag", "case"), list(MAPPED.items()), ids=list(MAPPED))
def test_a_reloader_flag_sets_its_fluxd_setting(flag: str, case: tuple[str, str]) -> None:
    value, attr = case
    default = getattr(Settings(), attr)
    settings = _settings([f"--{flag}={value}"])
    assert getattr(settings, attr) != default


def test_reloader_args_copied_verbatim_reach_the_decision() -> None:
    args = [
        "--configmap-annotation=acme.io/configmaps",
        "--secret-annotation=acme.io/secrets",
        "--auto-annotation=acme.io/auto",
        "--ignore-annotation=acme.io/ignore",
        "--configmap-auto-annotation=acme.io/cm-auto",
        "--secret-auto-annotation=acme.io/secret-auto",
        "--auto-search-annotation=acme.io/search",
        "--search-match-annotation=acme.io/match",
        "--pause-deployment-annotation=acme.io/pause",
        "--pause-deployment-time-annotation=acme.io/paused",
        "--reload-strategy=annotations",
        "--reload-on-create=true",
        "--reload-on-delete=true",
        "--log-format=json",
        "--log-level=trace",
        "--enable-ha",
        "--is-Argo-Rollouts=true",
        "--sync-after-restart=true",
        "--webhook-url=",
        "--resources-to-ignore=secrets",
        "--ignored-workload-types=jobs",
    ]
    settings = _settings(args)
    assert annotation_names(settings) == RestarterAnnotations(
        configmap_reload="acme.io/configmaps",
        secret_reload="acme.io/secrets",
        auto="acme.io/auto",
        ignore="acme.io/ignore",
        configmap_auto="acme.io/cm-auto",
        secret_auto="acme.io/secret-auto",
        search="acme.io/search",
        match="acme.io/match",
        pause_period="acme.io/pause",
        paused_at="acme.io/paused",
    )
    assert settings.reload_strategy == "annotations"
    assert settings.reload_on_create and settings.reload_on_delete
    assert settings.log_level == "debug"
    assert settings.leader_election and settings.restart_argo_rollouts
    assert config_filter(settings).ignored_kinds == {ConfigKind.SECRET}


@pytest.mark.parametrize("spelling", ["configmaps", "configMaps", "ConfigMaps"])
def test_resources_to_ignore_accepts_reloaders_spelling(spelling: str) -> None:
    settings = _settings([f"--resources-to-ignore={spelling}"])
    assert config_filter(settings).ignored_kinds == {ConfigKind.CONFIGMAP}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("trace", "debug"),
        ("debug", "debug"),
        ("warn", "warning"),
        ("Warning", "warning"),
        ("error", "error"),
        ("fatal", "critical"),
        ("panic", "critical"),
    ],
)
def test_reloaders_log_levels_are_read(level: str, expected: str) -> None:
    assert _settings([f"--log-level={level}"]).log_level == expected


def test_reloaders_default_log_format_is_text() -> None:
    # Reloader's chart passes --log-format= (empty) for logrus's text format.
    assert _settings(["--log-format="]).log_format == "console"


def test_reloaders_legacy_selectors_are_read() -> None:
    settings = _settings(
        ['--namespace-selector="team:a,reloader:*"', "--resource-label-selector=app=*"]
    )
    assert settings.namespace_selector == "team=a,reloader"
    assert settings.resource_label_selector == "app"


@pytest.mark.parametrize(("flag", "value"), list(REFUSED.items()), ids=list(REFUSED))
def test_a_refused_flag_stops_start_up_naming_it(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", f"--{flag}={value}"]) == 2
    error = capsys.readouterr().err
    assert f"--{flag}" in error
    assert "not supported by fluxd" in error


@pytest.mark.parametrize(
    "arg",
    [
        "--webhook-url=",
        "--enable-pprof=false",
    ],
)
def test_reloaders_off_values_of_refused_flags_pass(arg: str) -> None:
    assert _settings([arg]) == Settings()


@pytest.mark.parametrize(("flag", "value"), list(NOT_NEEDED.items()), ids=list(NOT_NEEDED))
def test_a_flag_fluxd_does_not_need_is_accepted(flag: str, value: str) -> None:
    assert _settings([f"--{flag}={value}"]) == Settings()


def test_kubernetes_namespace_confines_the_restarter_as_in_reloader() -> None:
    settings = _settings([], environ={"KUBERNETES_NAMESPACE": "apps"})
    assert settings.effective_restarter_namespaces == ("apps",)


def test_metrics_count_by_namespace_is_read_from_reloaders_variable() -> None:
    assert _settings(
        [], environ={"METRICS_COUNT_BY_NAMESPACE": "enabled"}
    ).metrics_count_by_namespace
    assert not _settings(
        [], environ={"METRICS_COUNT_BY_NAMESPACE": "no"}
    ).metrics_count_by_namespace


def test_alert_on_reload_is_refused() -> None:
    with pytest.raises(SettingsError, match="ALERT_ON_RELOAD"):
        _settings([], environ={"ALERT_ON_RELOAD": "true"})


# -- restarter-scope -------------------------------------------------------------------


def test_the_restarter_watches_the_cluster_or_watch_namespaces_by_default() -> None:
    assert _settings([]).effective_restarter_namespaces == ()
    assert _settings(["--watch-namespaces=a,b"]).effective_restarter_namespaces == ("a", "b")


def test_scope_namespace_is_the_pods_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "tenant-7")
    settings = _settings(["--restarter-scope=namespace"])
    assert settings.effective_restarter_namespaces == ("tenant-7",)
    assert config_filter(settings).namespaces == frozenset({"tenant-7"})


def test_scope_list_names_the_namespaces() -> None:
    settings = _settings(["--restarter-scope=a, b"])
    assert settings.effective_restarter_namespaces == ("a", "b")


@pytest.mark.parametrize(
    "args",
    [
        ["--restarter-scope=Not_A_Namespace"],
        ["--restarter-scope=,"],
        ["--restarter-scope=namespace", "--namespace-selector=a=b"],
    ],
)
def test_a_scope_that_cannot_work_is_refused(args: list[str]) -> None:
    with pytest.raises(SettingsError, match="restarter-scope"):
        _settings(args)


def test_the_migration_guide_has_a_row_for_every_reloader_flag() -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "reloader-migration.md").read_text()
    rows = set(re.findall(r"^\| `--([A-Za-z-]+)` \|", guide, flags=re.MULTILINE))
    assert rows == RELOADER_FLAGS

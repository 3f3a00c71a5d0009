"""Settings come from defaults, a file, FLUXD_* variables and flags, in that order."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from fluxd import settings as settings_module
from fluxd.settings import Settings, SettingsError, load, split_addr

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_match_flux() -> None:
    settings = load(environ={})
    assert settings == Settings()
    assert settings.webhook_addr == ":9292"
    assert settings.metrics_addr == ":8080"
    assert settings.effective_lease_name == "fluxd-leader-election"
    assert settings.artifact_retention_records == 2


def test_a_shard_campaigns_for_its_own_lease_as_flux_names_it() -> None:
    # Flux: GenerateID("<base>", selector) = base + "-" + sha256(selector)[:8].
    shard = load(environ={}, flags={"watch_label_selector": "sharding.fluxcd.io/key=shard1"})
    other = load(environ={}, flags={"watch_label_selector": "sharding.fluxcd.io/key=shard2"})
    digest = hashlib.sha256(b"sharding.fluxcd.io/key=shard1").hexdigest()[:8]
    assert shard.effective_lease_name == f"fluxd-leader-election-{digest}"
    assert other.effective_lease_name != shard.effective_lease_name
    named = load(environ={}, flags={"watch_label_selector": "a=b", "lease_name": "mine"})
    assert named.effective_lease_name == "mine"


def test_later_sources_win(tmp_path: Path) -> None:
    config = tmp_path / "fluxd.yaml"
    config.write_text("log-level: debug\nkustomization-concurrency: 7\nlease-duration: 1m\n")
    settings = load(
        config_file=str(config),
        environ={"FLUXD_KUSTOMIZATION_CONCURRENCY": "9", "FLUXD_WATCH_NAMESPACES": "a, b"},
        flags={"log_level": "error"},
    )
    assert settings.log_level == "error"
    assert settings.kustomization_concurrency == 9
    assert settings.lease_duration == 60.0
    assert settings.watch_namespaces == ("a", "b")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param({"log_level": "loud"}, "log-level", id="log-level"),
        pytest.param({"metrics_addr": "8080"}, "metrics-addr", id="addr-without-colon"),
        pytest.param({"lease_duration": "soon"}, "lease-duration", id="duration"),
        pytest.param({"git_concurrency": "0"}, "git-concurrency", id="zero-concurrency"),
        pytest.param({"git_concurrency": "-3"}, "git-concurrency", id="negative"),
        pytest.param({"renew_deadline": "40s"}, "renew-deadline", id="deadline-after-lease"),
        pytest.param({"resources_to_ignore": "pods"}, "resources-to-ignore", id="ignore"),
    ],
)
def test_invalid_values_are_named(flags: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load(environ={}, flags=flags)
    assert message in str(error.value)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "fluxd.yaml"
    config.write_text("metrics-adr: ':1'\n")
    with pytest.raises(SettingsError, match="unknown setting 'metrics-adr'"):
        load(config_file=str(config), environ={})


def test_invalid_setting_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fluxd.cli", "run", "--reload-strategy", "magic"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "reload-strategy" in result.stderr
    assert "Traceback" not in result.stderr


def test_documented_config_is_current() -> None:
    committed = (ROOT / "config" / "fluxd.yaml").read_text()
    assert committed == settings_module.render_example(), (
        "config/fluxd.yaml is stale: run `fluxd gen config > config/fluxd.yaml`"
    )


def test_documented_config_loads_to_the_defaults() -> None:
    assert load(config_file=str(ROOT / "config" / "fluxd.yaml"), environ={}) == Settings()


def test_every_setting_has_a_field() -> None:
    names = set(settings_module.field_names())
    assert {s.attr for s in settings_module.SETTINGS} == names


@pytest.mark.parametrize(
    ("addr", "expected"),
    [(":8080", ("0.0.0.0", 8080)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9", ("::1", 9))],
)
def test_split_addr(addr: str, expected: tuple[str, int]) -> None:
    assert split_addr(addr) == expected


def test_bare_boolean_flags_mean_true() -> None:
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    args = parser.parse_args(["--no-remote-bases", "--leader-election=false"])
    settings = load(flags=vars(args), environ={})
    assert settings.no_remote_bases is True
    assert settings.leader_election is False

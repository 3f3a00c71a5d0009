"""Every knob of the daemon, from defaults, a config file, the environment and flags.

One table (``SETTINGS``) describes each setting once: its name, type, default
and a line of help. From it come the ``fluxd run`` flags, the ``FLUXD_*``
environment variables, the keys of the YAML config file and the documented
example ``config/fluxd.yaml``. Later sources win: defaults < file < env < flags.
Invalid values raise ``SettingsError`` with one readable line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from fluxd.api.duration import format_duration, parse_duration


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "str" | "int" | "float" | "bool" | "list" | "duration" | "addr"
    default: Any
    help: str

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return "FLUXD_" + self.name.replace("-", "_").upper()


SETTINGS: tuple[Setting, ...] = (
    # cluster access
    Setting(
        "kubeconfig", "str", "", "kubeconfig path; empty means in-cluster, then ~/.kube/config"
    ),
    Setting("kube-context", "str", "", "kubeconfig context to use; empty means the current one"),
    Setting("watch-namespaces", "list", [], "namespaces to watch; empty means all"),
    Setting(
        "watch-label-selector",
        "str",
        "",
        "only reconcile Flux objects matching this selector (sharding, e.g. "
        "'sharding.fluxcd.io/key=shard1' or '!sharding.fluxcd.io/key')",
    ),
    # HTTP
    Setting("webhook-addr", "addr", ":9292", "address of the receivers (the only public port)"),
    Setting("metrics-addr", "addr", ":8080", "address of /metrics, /healthz and /readyz"),
    Setting("webhook-body-limit", "int", 1048576, "largest webhook body accepted, in bytes"),
    Setting(
        "receiver-coalesce-window",
        "duration",
        2.0,
        "webhook pushes to one object within this window cause one more reconcile, not one each",
    ),
    # work queues
    Setting("gitrepository-concurrency", "int", 4, "GitRepositories reconciled at once"),
    Setting("kustomization-concurrency", "int", 4, "Kustomizations reconciled at once"),
    Setting("notification-concurrency", "int", 4, "Receivers/Providers/Alerts reconciled at once"),
    Setting("restart-concurrency", "int", 4, "workloads restarted at once"),
    Setting("git-concurrency", "int", 4, "git network operations running at once"),
    Setting("min-retry-delay", "duration", 0.75, "first retry delay after a failure"),
    Setting("max-retry-delay", "duration", 900.0, "largest retry delay after repeated failures"),
    Setting("requeue-dependency", "duration", 30.0, "re-check interval for unready dependencies"),
    Setting("interval-jitter", "float", 0.1, "fraction of random jitter on periodic requeues"),
    # artifacts
    Setting("storage-path", "str", "/data", "where artifacts are stored"),
    Setting(
        "storage-addr",
        "addr",
        "127.0.0.1:9090",
        "address artifact downloads are served on; loopback by default, because fluxd reads "
        "its own artifacts from disk and they can hold secrets; ':9090' serves them to the "
        "cluster (for controllers running beside fluxd)",
    ),
    Setting(
        "storage-adv-addr",
        "str",
        "",
        "host[:port] put in artifact URLs; empty means this host and the storage-addr port",
    ),
    Setting("artifact-retention-records", "int", 2, "artifacts kept per source"),
    # builds
    Setting(
        "kustomize-binary", "str", "", "a kustomize binary to use instead of kubectl kustomize"
    ),
    Setting("no-remote-bases", "bool", False, "refuse kustomize remote bases (URLs in resources)"),
    Setting("no-cross-namespace-refs", "bool", False, "refuse references to other namespaces"),
    Setting("build-cache-size", "int", 256, "cached builds kept in memory"),
    # notifications
    Setting("notification-max-attempts", "int", 5, "sends of one alert before it is given up"),
    Setting(
        "notification-dedup-window",
        "duration",
        300.0,
        "identical alerts to one provider within this window are sent once",
    ),
    # restarter
    Setting(
        "restarter",
        "bool",
        True,
        "roll workloads when their Secrets/ConfigMaps change (with watch-label-selector set, "
        "only if restarter-in-shard is too)",
    ),
    Setting(
        "restarter-in-shard",
        "bool",
        False,
        "run the restarter although watch-label-selector is set; give it to one instance only "
        "(e.g. the '!sharding.fluxcd.io/key' one), the restarter is not sharded",
    ),
    Setting(
        "restarter-resync-interval",
        "duration",
        300.0,
        "how often every workload's recorded digest is compared with its config's and stale "
        "ones restarted (0 disables)",
    ),
    Setting(
        "reload-strategy", "str", "env-vars", "how restarts are recorded: env-vars|annotations"
    ),
    Setting("reload-on-create", "bool", False, "restart when a referenced object is created"),
    Setting("reload-on-delete", "bool", False, "restart when a referenced object is deleted"),
    Setting("auto-reload-all", "bool", False, "treat every workload as reloader.stakater.com/auto"),
    Setting("resources-to-ignore", "list", [], "configMaps and/or secrets to ignore entirely"),
    Setting("namespaces-to-ignore", "list", [], "namespaces the restarter leaves alone"),
    Setting("namespace-selector", "str", "", "only namespaces with these labels (restarter)"),
    Setting("resource-label-selector", "str", "", "only Secrets/ConfigMaps with these labels"),
    Setting("restart-coalesce-window", "duration", 2.0, "changes within this window roll once"),
    Setting("restart-argo-rollouts", "bool", False, "also restart Argo Rollouts"),
    Setting(
        "enable-csi-integration",
        "bool",
        False,
        "restart on SecretProviderClassPodStatus changes (Secrets Store CSI driver)",
    ),
    # leader election
    Setting("leader-election", "bool", True, "run reconcilers only on the lease holder"),
    Setting(
        "lease-name",
        "str",
        "",
        "name of the Lease; empty means fluxd-leader-election, suffixed with a short hash of "
        "watch-label-selector when that is set (as Flux names a shard's lease)",
    ),
    Setting("lease-namespace", "str", "", "namespace of the Lease; empty means the pod's"),
    Setting("lease-duration", "duration", 35.0, "how long a lease is valid without renewal"),
    Setting("renew-deadline", "duration", 30.0, "how long the leader tries to renew"),
    Setting("retry-period", "duration", 5.0, "how often candidates try and the leader renews"),
    # process
    Setting("log-level", "str", "info", "debug|info|warning|error"),
    Setting("log-format", "str", "json", "json|console"),
    Setting("shutdown-grace", "duration", 30.0, "how long in-flight work may finish on SIGTERM"),
    Setting(
        "debug-slow-callback",
        "duration",
        0.0,
        "log each event-loop callback running longer than this (asyncio debug mode); 0 is off",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}
DEFAULT_LEASE_NAME = "fluxd-leader-election"
_ADDR = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:\s]*):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Settings:
    kubeconfig: str = ""
    kube_context: str = ""
    watch_namespaces: tuple[str, ...] = ()
    watch_label_selector: str = ""
    webhook_addr: str = ":9292"
    metrics_addr: str = ":8080"
    webhook_body_limit: int = 1048576
    receiver_coalesce_window: float = 2.0
    gitrepository_concurrency: int = 4
    kustomization_concurrency: int = 4
    notification_concurrency: int = 4
    restart_concurrency: int = 4
    git_concurrency: int = 4
    min_retry_delay: float = 0.75
    max_retry_delay: float = 900.0
    requeue_dependency: float = 30.0
    interval_jitter: float = 0.1
    storage_path: str = "/data"
    storage_addr: str = "127.0.0.1:9090"
    storage_adv_addr: str = ""
    artifact_retention_records: int = 2
    kustomize_binary: str = ""
    no_remote_bases: bool = False
    no_cross_namespace_refs: bool = False
    build_cache_size: int = 256
    notification_max_attempts: int = 5
    notification_dedup_window: float = 300.0
    restarter: bool = True
    restarter_in_shard: bool = False
    restarter_resync_interval: float = 300.0
    reload_strategy: str = "env-vars"
    reload_on_create: bool = False
    reload_on_delete: bool = False
    auto_reload_all: bool = False
    resources_to_ignore: tuple[str, ...] = ()
    namespaces_to_ignore: tuple[str, ...] = ()
    namespace_selector: str = ""
    resource_label_selector: str = ""
    restart_coalesce_window: float = 2.0
    restart_argo_rollouts: bool = False
    enable_csi_integration: bool = False
    leader_election: bool = True
    lease_name: str = ""
    lease_namespace: str = ""
    lease_duration: float = 35.0
    renew_deadline: float = 30.0
    retry_period: float = 5.0
    log_level: str = "info"
    log_format: str = "json"
    shutdown_grace: float = 30.0
    debug_slow_callback: float = 0.0

    @property
    def effective_lease_name(self) -> str:
        """The Lease this replica campaigns for: shards never share one unless told to."""
        if self.lease_name:
            return self.lease_name
        if not self.watch_label_selector:
            return DEFAULT_LEASE_NAME
        suffix = hashlib.sha256(self.watch_label_selector.encode()).hexdigest()[:8]
        return f"{DEFAULT_LEASE_NAME}-{suffix}"

    @property
    def effective_lease_namespace(self) -> str:
        return self.lease_namespace or os.environ.get("POD_NAMESPACE") or "flux-system"


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    where = f"{setting.name} (from {source})"
    try:
        if setting.kind == "str":
            return "" if value is None else str(value)
        if setting.kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            number = int(value)
            if number < 0:
                raise ValueError(value)
            return number
        if setting.kind == "float":
            return float(value)
        if setting.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if setting.kind == "list":
            items = value if isinstance(value, list) else str(value).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if setting.kind == "duration":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return parse_duration(str(value))
        if setting.kind == "addr":
            text = str(value)
            match = _ADDR.match(text)
            if not match or not 0 <= int(match["port"]) <= 65535:
                raise ValueError(value)
            return text
    except (TypeError, ValueError) as error:
        raise SettingsError(
            f"invalid value {value!r} for {where}: expected {setting.kind}"
        ) from error
    raise AssertionError(setting.kind)


def _validate(settings: Settings) -> None:
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"invalid log-level {settings.log_level!r}: debug|info|warning|error")
    if settings.log_format not in ("json", "console"):
        raise SettingsError(f"invalid log-format {settings.log_format!r}: json|console")
    if settings.reload_strategy not in ("env-vars", "annotations"):
        raise SettingsError(
            f"invalid reload-strategy {settings.reload_strategy!r}: env-vars|annotations"
        )
    for name in (
        "gitrepository_concurrency",
        "kustomization_concurrency",
        "git_concurrency",
        "notification_max_attempts",
    ):
        if getattr(settings, name) < 1:
            raise SettingsError(f"{name.replace('_', '-')} must be at least 1")
    if settings.min_retry_delay > settings.max_retry_delay:
        raise SettingsError("min-retry-delay must not exceed max-retry-delay")
    if settings.renew_deadline >= settings.lease_duration:
        raise SettingsError("renew-deadline must be shorter than lease-duration")
    unknown = set(settings.resources_to_ignore) - {"configMaps", "secrets"}
    if unknown:
        raise SettingsError(f"resources-to-ignore accepts configMaps and secrets, not {unknown}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (defaults are applied later, so unset flags stay None)."""
    parser.add_argument("--config", help="YAML config file (keys are the flag names)")
    for setting in SETTINGS:
        if setting.kind == "bool":
            # A bare `--no-remote-bases` means true; `--leader-election=false` still works.
            parser.add_argument(
                f"--{setting.name}",
                dest=setting.attr,
                default=None,
                help=setting.help,
                nargs="?",
                const="true",
                metavar="BOOL",
            )
            continue
        parser.add_argument(
            f"--{setting.name}",
            dest=setting.attr,
            default=None,
            help=setting.help,
            metavar=setting.kind.upper(),
        )


def load(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or environ.get("FLUXD_CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise SettingsError(f"cannot read config file {path}: {error}") from error
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must be a mapping of setting: value")
        for key, value in loaded.items():
            setting = _BY_NAME.get(str(key))
            if setting is None:
                raise SettingsError(f"unknown setting {key!r} in {path}")
            values[setting.attr] = _coerce(setting, value, path)
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.attr] = _coerce(setting, environ[setting.env], setting.env)
    for attr, value in (flags or {}).items():
        if value is None:
            continue
        setting = _BY_NAME.get(attr.replace("_", "-"))
        if setting is None:
            continue
        values[setting.attr] = _coerce(setting, value, f"--{setting.name}")
    settings = Settings(**values)
    _validate(settings)
    return settings


def split_addr(addr: str) -> tuple[str, int]:
    """``:8080`` → (``0.0.0.0``, 8080); ``127.0.0.1:0`` → (``127.0.0.1``, 0)."""
    host, _, port = addr.rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def render_example() -> str:
    """The documented config file: every setting, its default and what it does."""
    lines = [
        "# fluxd settings. Every key is also a `fluxd run --KEY` flag and a FLUXD_KEY",
        "# environment variable (upper case, dashes as underscores); flags win over the",
        "# environment, which wins over this file. Values shown are the defaults.",
        "# Durations use Go syntax (750ms, 30s, 15m).",
    ]
    for setting in SETTINGS:
        default = setting.default
        if setting.kind == "duration":
            default = format_duration(float(default))
        rendered = yaml.safe_dump({setting.name: default}, default_flow_style=True).strip()
        lines.append("")
        lines.append(f"# {setting.help}")
        lines.append(rendered.strip("{}"))
    return "\n".join(lines) + "\n"


def field_names() -> Sequence[str]:
    return [f.name for f in fields(Settings)]

"""Every knob of the daemon, from defaults, a config file, the environment and flags.

One table (``SETTINGS``) describes each setting once: its name, type, default
and a line of help. From it come the ``fluxd run`` flags, the ``FLUXD_*``
environment variables, the keys of the YAML config file and the documented
example ``config/fluxd.yaml``. Later sources win: defaults < file < env < flags.
Invalid values raise ``SettingsError`` with one readable line.

A user migrating from stakater Reloader copies its container args: each
Reloader flag is an alias of a fluxd setting (``Setting.aliases``), refused at
start-up with a line that names it (``REFUSED_FLAGS``), or accepted because
fluxd does its job anyway (``NOT_NEEDED_FLAGS``); docs/reloader-migration.md
has the table and says why for each.
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
    # Reloader's flag names for the same knob, so its container args work verbatim.
    aliases: tuple[str, ...] = ()

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
    Setting(
        "dashboard-addr",
        "addr",
        "",
        "address of the read-only dashboard (its own listener, never the webhook port); "
        "empty: off. 127.0.0.1:9333 serves it to kubectl port-forward only",
    ),
    Setting(
        "events-addr",
        "addr",
        ":9690",
        "address of the events endpoint Flux controllers beside fluxd post to (Flux's "
        "--events-addr, moved off :9090, which storage-addr holds); the notification-controller "
        "Service maps port 80 to it",
    ),
    Setting("webhook-body-limit", "int", 1048576, "largest webhook body accepted, in bytes"),
    Setting(
        "receiver-coalesce-window",
        "duration",
        2.0,
        "webhook pushes to one object within this window cause one more reconcile, not one each",
    ),
    Setting(
        "receiver-google-certs-url",
        "str",
        "https://www.googleapis.com/oauth2/v3/certs",
        "Google's OIDC signing keys (JWKS) that gcr Receivers verify Pub/Sub push tokens with",
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
    Setting(
        "kustomize-engine",
        "str",
        "auto",
        "how builds run: auto (fluxd-kustomize, one long-lived process, when installed, "
        "else kubectl), kubectl (kubectl kustomize, one process per build), or the path "
        "of a fluxd-kustomize binary; kustomize-binary, when set, wins",
    ),
    Setting("no-remote-bases", "bool", False, "refuse kustomize remote bases (URLs in resources)"),
    Setting("no-cross-namespace-refs", "bool", False, "refuse references to other namespaces"),
    Setting(
        "strict-post-build-substitutions",
        "bool",
        False,
        "fail a build on a ${var} with no value and no default (Flux's "
        "StrictPostBuildSubstitutions feature gate); off, it becomes empty as in Flux",
    ),
    Setting("build-cache-size", "int", 256, "cached builds kept in memory"),
    Setting(
        "override-manager",
        "list",
        [],
        "field managers whose fields on applied objects are taken over, so changes they made "
        "are undone (Flux's --override-manager); kubectl and before-first-apply always are",
    ),
    Setting(
        "watch-configs-label-selector",
        "str",
        "reconcile.fluxcd.io/watch=Enabled",
        "ConfigMaps and Secrets matching this selector requeue the Kustomizations that "
        "substitute from them when they change (Flux's flag of the same name; "
        "empty means all)",
    ),
    Setting(
        "additive-cel-dependency-check",
        "bool",
        False,
        "with a dependsOn readyExpr, also require the built-in readiness check (Flux's "
        "AdditiveCELDependencyCheck feature gate); off, the expression alone decides as in Flux",
    ),
    Setting(
        "sops-age-secret",
        "str",
        "",
        "Secret in fluxd's namespace whose '.agekey' entries decrypt Kustomizations with "
        "decryption.provider sops and no secretRef (Flux's --sops-age-secret)",
    ),
    # notifications
    Setting("notification-max-attempts", "int", 5, "sends of one alert before it is given up"),
    Setting(
        "notification-dedup-window",
        "duration",
        300.0,
        "identical alerts to one provider within this window are sent once; also the events "
        "endpoint's rate-limit interval (Flux's --rate-limit-interval)",
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
        "restarter-scope",
        "str",
        "cluster",
        "where the restarter watches: cluster (every namespace, or watch-namespaces when set), "
        "namespace (only the pod's own, POD_NAMESPACE), or a comma list of namespaces",
        aliases=("namespaces",),
    ),
    Setting(
        "reload-strategy", "str", "env-vars", "how restarts are recorded: env-vars|annotations"
    ),
    Setting("reload-on-create", "bool", False, "restart when a referenced object is created"),
    Setting("reload-on-delete", "bool", False, "restart when a referenced object is deleted"),
    Setting("auto-reload-all", "bool", False, "treat every workload as reloader.stakater.com/auto"),
    *(
        Setting(
            f"restarter-annotation-{name}",
            "str",
            default,
            f"annotation name read as Reloader's {default}",
            aliases=(alias,),
        )
        for name, default, alias in (
            ("configmap-reload", "configmap.reloader.stakater.com/reload", "configmap-annotation"),
            ("secret-reload", "secret.reloader.stakater.com/reload", "secret-annotation"),
            ("auto", "reloader.stakater.com/auto", "auto-annotation"),
            ("ignore", "reloader.stakater.com/ignore", "ignore-annotation"),
            ("configmap-auto", "configmap.reloader.stakater.com/auto", "configmap-auto-annotation"),
            ("secret-auto", "secret.reloader.stakater.com/auto", "secret-auto-annotation"),
            ("search", "reloader.stakater.com/search", "auto-search-annotation"),
            ("match", "reloader.stakater.com/match", "search-match-annotation"),
            (
                "pause-period",
                "deployment.reloader.stakater.com/pause-period",
                "pause-deployment-annotation",
            ),
            (
                "paused-at",
                "deployment.reloader.stakater.com/paused-at",
                "pause-deployment-time-annotation",
            ),
        )
    ),
    Setting(
        "resources-to-ignore",
        "list",
        [],
        "configmaps and/or secrets to ignore entirely (any case: configMaps, ConfigMaps, ...)",
    ),
    Setting("namespaces-to-ignore", "list", [], "namespaces the restarter leaves alone"),
    Setting("namespace-selector", "str", "", "only namespaces with these labels (restarter)"),
    Setting("resource-label-selector", "str", "", "only Secrets/ConfigMaps with these labels"),
    Setting(
        "restart-coalesce-window",
        "duration",
        1.0,
        "changes within this window roll once (one Kustomization's apply lands well within it)",
    ),
    Setting(
        "restart-argo-rollouts",
        "bool",
        False,
        "also restart Argo Rollouts",
        aliases=("is-Argo-Rollouts",),
    ),
    Setting(
        "metrics-count-by-namespace",
        "bool",
        False,
        "also count restarts per namespace (reloader_reload_executed_total_by_namespace); "
        "Reloader's METRICS_COUNT_BY_NAMESPACE=enabled sets it too",
    ),
    Setting(
        "enable-csi-integration",
        "bool",
        False,
        "restart on SecretProviderClassPodStatus changes (Secrets Store CSI driver)",
    ),
    Setting(
        "ignored-workload-types",
        "list",
        [],
        "workload kinds the restarter never restarts: jobs and/or cronjobs (as Reloader)",
    ),
    # leader election
    Setting(
        "leader-election",
        "bool",
        True,
        "run reconcilers only on the lease holder",
        aliases=("enable-ha",),
    ),
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
    Setting(
        "log-level",
        "str",
        "info",
        "debug|info|warning|error|critical (Reloader's trace, warn, fatal and panic are read "
        "as debug, warning, critical, critical)",
    ),
    Setting(
        "log-format",
        "str",
        "json",
        "json|console (Reloader's empty value, its text format, is console)",
    ),
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
    dashboard_addr: str = ""
    events_addr: str = ":9690"
    webhook_body_limit: int = 1048576
    receiver_coalesce_window: float = 2.0
    receiver_google_certs_url: str = "https://www.googleapis.com/oauth2/v3/certs"
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
    kustomize_engine: str = "auto"
    no_remote_bases: bool = False
    no_cross_namespace_refs: bool = False
    strict_post_build_substitutions: bool = False
    build_cache_size: int = 256
    override_manager: tuple[str, ...] = ()
    watch_configs_label_selector: str = "reconcile.fluxcd.io/watch=Enabled"
    additive_cel_dependency_check: bool = False
    sops_age_secret: str = ""
    notification_max_attempts: int = 5
    notification_dedup_window: float = 300.0
    restarter: bool = True
    restarter_in_shard: bool = False
    restarter_resync_interval: float = 300.0
    restarter_scope: str = "cluster"
    reload_strategy: str = "env-vars"
    reload_on_create: bool = False
    reload_on_delete: bool = False
    auto_reload_all: bool = False
    restarter_annotation_configmap_reload: str = "configmap.reloader.stakater.com/reload"
    restarter_annotation_secret_reload: str = "secret.reloader.stakater.com/reload"
    restarter_annotation_auto: str = "reloader.stakater.com/auto"
    restarter_annotation_ignore: str = "reloader.stakater.com/ignore"
    restarter_annotation_configmap_auto: str = "configmap.reloader.stakater.com/auto"
    restarter_annotation_secret_auto: str = "secret.reloader.stakater.com/auto"
    restarter_annotation_search: str = "reloader.stakater.com/search"
    restarter_annotation_match: str = "reloader.stakater.com/match"
    restarter_annotation_pause_period: str = "deployment.reloader.stakater.com/pause-period"
    restarter_annotation_paused_at: str = "deployment.reloader.stakater.com/paused-at"
    resources_to_ignore: tuple[str, ...] = ()
    namespaces_to_ignore: tuple[str, ...] = ()
    namespace_selector: str = ""
    resource_label_selector: str = ""
    restart_coalesce_window: float = 1.0
    restart_argo_rollouts: bool = False
    metrics_count_by_namespace: bool = False
    enable_csi_integration: bool = False
    ignored_workload_types: tuple[str, ...] = ()
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
        return self.lease_namespace or _pod_namespace()

    @property
    def sops_age_secret_namespace(self) -> str:
        """Where ``sops-age-secret`` is read: fluxd's own namespace, as Flux's runtime one."""
        return _pod_namespace()

    @property
    def effective_restarter_namespaces(self) -> tuple[str, ...]:
        """The namespaces the restarter watches (empty: every one), from restarter-scope."""
        if self.restarter_scope == "cluster":
            return self.watch_namespaces
        if self.restarter_scope == "namespace":
            return (_pod_namespace(),)
        return _scope_namespaces(self.restarter_scope)


def _pod_namespace() -> str:
    return os.environ.get("POD_NAMESPACE") or "flux-system"


def _scope_namespaces(scope: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in scope.split(",") if item.strip())


# Reloader's log levels (logrus) that Python's logging names differently.
_LOG_LEVELS = {"trace": "debug", "warn": "warning", "fatal": "critical", "panic": "critical"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _reloader_selector(selector: str) -> str:
    """Reloader's legacy selector items: ``key:value`` means ``key=value``, ``*`` any value."""
    items = []
    # Reloader's chart quotes the value (--namespace-selector="a=b"); its CSV parsing drops them.
    for item in (part.strip().strip('"') for part in selector.split(",")):
        key, colon, value = item.partition(":")
        if colon:
            item = key if value == "*" else f"{key}={value}"
        elif item.partition("=")[2] == "*":
            item = item.partition("=")[0]
        items.append(item)
    return ",".join(items) if selector else ""


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """Reloader's spellings of values, in fluxd's."""
    if "log_level" in values:
        level = str(values["log_level"]).lower()
        values["log_level"] = _LOG_LEVELS.get(level, level)
    if values.get("log_format") == "":
        values["log_format"] = "console"
    if "resources_to_ignore" in values:
        values["resources_to_ignore"] = tuple(
            {"configmaps": "configMaps", "secrets": "secrets"}.get(item.lower(), item)
            for item in values["resources_to_ignore"]
        )
    for name in ("namespace_selector", "resource_label_selector"):
        if name in values:
            values[name] = _reloader_selector(values[name])
    return values


def _reloader_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """What Reloader's own environment variables mean, as fluxd settings."""
    values: dict[str, Any] = {}
    # Reloader's chart sets KUBERNETES_NAMESPACE to the pod's namespace for watchGlobally: false.
    if environ.get("KUBERNETES_NAMESPACE"):
        values["restarter_scope"] = environ["KUBERNETES_NAMESPACE"]
    if "METRICS_COUNT_BY_NAMESPACE" in environ:
        values["metrics_count_by_namespace"] = environ["METRICS_COUNT_BY_NAMESPACE"] == "enabled"
    if environ.get("ALERT_ON_RELOAD", "").lower() == "true":
        raise SettingsError(
            "ALERT_ON_RELOAD is not supported by fluxd: alert on restarts with a notification "
            "Provider and an Alert on the workloads' Reloaded Events"
        )
    return values


@dataclass(frozen=True)
class RefusedFlag:
    """A Reloader flag fluxd cannot honour: harmless values pass, any other stops start-up."""

    name: str
    harmless: tuple[str, ...]
    reason: str


REFUSED_FLAGS: tuple[RefusedFlag, ...] = (
    RefusedFlag(
        "webhook-url",
        ("",),
        "fluxd restarts workloads itself and does not post to a URL instead; "
        "send restart Events to a URL with a notification Provider and Alert",
    ),
    RefusedFlag(
        "enable-pprof",
        ("false", "0", "f", "FALSE", "False"),
        "fluxd is a Python process and has no Go pprof endpoint",
    ),
)
# Reloader flags whose job fluxd does without being asked (docs/reloader-migration.md
# says why for each): accepted with any value, read by nothing.
NOT_NEEDED_FLAGS: tuple[str, ...] = (
    # fluxd always compares the digest recorded on each workload at start-up.
    "sync-after-restart",
    # Only read by Reloader together with enable-pprof, which is refused.
    "pprof-addr",
)


def _refuse(flags: Mapping[str, Any]) -> None:
    for refused in REFUSED_FLAGS:
        value = flags.get(_refused_dest(refused.name))
        if value is None:
            continue
        items = [item.strip() for item in str(value).split(",")] or [""]
        if any(item not in refused.harmless for item in items):
            raise SettingsError(
                f"--{refused.name}={value} is not supported by fluxd: {refused.reason}"
            )


def _refused_dest(name: str) -> str:
    return "reloader_" + name.replace("-", "_")


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
            if not text and setting.default == "":
                return text  # an optional listener, switched off
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
    levels = ("debug", "info", "warning", "error", "critical")
    if settings.log_level not in levels:
        raise SettingsError(f"invalid log-level {settings.log_level!r}: {'|'.join(levels)}")
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
    kinds = set(settings.ignored_workload_types) - {"jobs", "cronjobs"}
    if kinds:
        raise SettingsError(f"ignored-workload-types accepts jobs and cronjobs, not {kinds}")
    unknown = set(settings.resources_to_ignore) - {"configMaps", "secrets"}
    if unknown:
        raise SettingsError(f"resources-to-ignore accepts configmaps and secrets, not {unknown}")
    if settings.restarter_scope not in ("cluster", "namespace"):
        namespaces = _scope_namespaces(settings.restarter_scope)
        bad = [name for name in namespaces if not _DNS_LABEL.match(name)]
        if not namespaces or bad:
            raise SettingsError(
                f"invalid restarter-scope {settings.restarter_scope!r}: "
                "cluster|namespace|a comma list of namespace names"
            )
    if settings.restarter_scope != "cluster" and settings.namespace_selector:
        # It needs the cluster-wide Namespace watch a namespaced install does not grant.
        raise SettingsError(
            "namespace-selector needs restarter-scope cluster "
            f"(restarter-scope is {settings.restarter_scope!r})"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (defaults are applied later, so unset flags stay None)."""
    parser.add_argument("--config", help="YAML config file (keys are the flag names)")
    for setting in SETTINGS:
        names = [f"--{name}" for name in (setting.name, *setting.aliases)]
        if setting.kind == "bool":
            # A bare `--no-remote-bases` means true; `--leader-election=false` still works.
            parser.add_argument(
                *names,
                dest=setting.attr,
                default=None,
                help=setting.help,
                nargs="?",
                const="true",
                metavar="BOOL",
            )
            continue
        parser.add_argument(
            *names,
            dest=setting.attr,
            default=None,
            help=setting.help,
            metavar=setting.kind.upper(),
        )
    for refused in REFUSED_FLAGS:
        parser.add_argument(
            f"--{refused.name}",
            dest=_refused_dest(refused.name),
            default=None,
            nargs="?",
            const="true",
            help=f"Reloader's flag, refused unless {refused.harmless[0] or 'empty'}: "
            f"{refused.reason}",
        )
    for name in NOT_NEEDED_FLAGS:
        parser.add_argument(
            f"--{name}",
            dest=_refused_dest(name),
            default=None,
            nargs="?",
            const="true",
            help="Reloader's flag, not needed (see docs/reloader-migration.md)",
        )


def load(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    _refuse(flags or {})
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
    values.update(_reloader_environment(environ))
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
    settings = Settings(**_normalised(values))
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
        if setting.aliases:
            lines.append("# (Reloader's " + ", ".join(f"--{a}" for a in setting.aliases) + ")")
        lines.append(rendered.strip("{}"))
    return "\n".join(lines) + "\n"


def field_names() -> Sequence[str]:
    return [f.name for f in fields(Settings)]

"""Which Alerts want an event, and what each of them sends.

The rules are notification-controller's, so existing Alert YAML selects the
same events: ``eventSources`` by kind + name (or ``*``) + namespace (defaulting
to the Alert's, compared literally: ``*`` is no wildcard there), then
``matchLabels`` (documented with ``*``, applied to any name as Flux does); ``eventSeverity``
``info`` takes everything and ``error`` only errors; an ``exclusionList`` regex
match always wins over the ``inclusionList``; ``eventMetadata`` and ``summary``
are added without overriding what the event already carries; suspended Alerts
and Providers send nothing. Events about a workload a Kustomization applied
(the restarter's rollouts) are selected by that Kustomization's event sources.
Alerts and Providers are plain Kubernetes dicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import structlog

from fluxd.api.meta import KUSTOMIZE_NAME_LABEL, KUSTOMIZE_NAMESPACE_LABEL
from fluxd.notify.event import META_SUMMARY, SEVERITY_INFO, Event

_log = structlog.get_logger("fluxd.notify.matching")

_FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"

Object = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One notification to send: the Alert that matched, its Provider, the event to send."""

    alert: Object
    provider: Object
    notification: Event


def alert_selects(alert: Object, event: Event) -> bool:
    """Whether ``alert`` (an Alert object) wants ``event``."""
    spec = _spec(alert)
    if spec.get("suspend"):
        return False
    message = event.message
    if any(pattern.search(message) for pattern in _patterns(spec.get("exclusionList"))):
        return False
    inclusions = _patterns(spec.get("inclusionList"))
    if inclusions and not any(pattern.search(message) for pattern in inclusions):
        return False
    severity = str(spec.get("eventSeverity") or SEVERITY_INFO)
    if severity != SEVERITY_INFO and event.severity != severity:
        return False
    alert_namespace = str(_metadata(alert).get("namespace", ""))
    return any(
        _source_selects(source, event, default_namespace=alert_namespace)
        for source in spec.get("eventSources") or ()
    )


def compose_notification(alert: Object, event: Event) -> Event:
    """``event`` as ``alert`` sends it: its ``eventMetadata`` and ``summary`` added.

    Keys the event already has are kept, as Flux documents: an Alert enriches
    an event, it never rewrites what the emitter reported.
    """
    spec = _spec(alert)
    event = replace(event, alert=alert)
    extra: dict[str, str] = {
        str(key): str(value) for key, value in (spec.get("eventMetadata") or {}).items()
    }
    summary = spec.get("summary")
    if summary:
        extra[META_SUMMARY] = str(summary)
    if not extra:
        return event
    merged = dict(event.metadata)
    for key, value in extra.items():
        if key in merged:
            _log.info("alert metadata key already set by the event; keeping the event's", key=key)
            continue
        merged[key] = value
    return event.with_metadata(merged)


def provider_is_active(provider: Object) -> bool:
    return not _spec(provider).get("suspend")


def route(
    event: Event,
    *,
    alerts: Iterable[Object],
    providers: Mapping[tuple[str, str], Object],
    no_cross_namespace_refs: bool = False,
) -> list[Dispatch]:
    """Every (Alert, Provider, notification) that ``event`` leads to.

    ``providers`` is keyed by ``(namespace, name)``; an Alert refers to a
    Provider in its own namespace. With ``no_cross_namespace_refs`` (Flux's
    ``--no-cross-namespace-refs``), Alerts only see events of their namespace.
    """
    dispatches: list[Dispatch] = []
    for alert in alerts:
        if not alert_selects(alert, event):
            continue
        namespace = str(_metadata(alert).get("namespace", ""))
        alert_name = str(_metadata(alert).get("name", ""))
        if no_cross_namespace_refs and event.involved_object.namespace != namespace:
            _log.warning(
                "event from another namespace ignored: cross-namespace references are disabled",
                alert=f"{namespace}/{alert_name}",
                object_namespace=event.involved_object.namespace,
            )
            continue
        provider_name = str((_spec(alert).get("providerRef") or {}).get("name", ""))
        provider = providers.get((namespace, provider_name))
        if provider is None:
            _log.error(
                "alert refers to a provider that does not exist",
                alert=f"{namespace}/{alert_name}",
                provider=provider_name,
            )
            continue
        if not provider_is_active(provider):
            continue
        notification = compose_notification(alert, event)
        dispatches.append(Dispatch(alert=alert, provider=provider, notification=notification))
    return dispatches


def _source_selects(source: Object, event: Event, *, default_namespace: str) -> bool:
    involved = event.involved_object
    namespace = str(source.get("namespace") or default_namespace)
    applier = _applying_kustomization(event)
    if applier is not None:
        # A workload's event (the restarter's Reloaded / ReloadFail) is selected through the
        # Kustomization that applied it: Flux's eventSources kinds have no workload kinds.
        # matchLabels would be the Kustomization's labels, which the event does not carry.
        if source.get("kind") != "Kustomization" or source.get("matchLabels"):
            return False
        name = str(source.get("name", ""))
        return applier[0] == namespace and name in ("*", applier[1])
    if involved.namespace != namespace or involved.kind != source.get("kind"):
        return False
    name = str(source.get("name", ""))
    if name != "*" and involved.name != name:
        return False
    # Flux documents matchLabels with name '*', and its event server applies them to any name.
    match_labels = source.get("matchLabels")
    if not match_labels:
        return True
    labels = event.labels or {}
    return all(labels.get(str(key)) == str(value) for key, value in match_labels.items())


def _applying_kustomization(event: Event) -> tuple[str, str] | None:
    """``(namespace, name)`` of the Kustomization that applied a non-Flux object, if any."""
    if event.involved_object.group.endswith(_FLUX_GROUP_SUFFIX):
        return None
    labels = event.labels or {}
    name = labels.get(KUSTOMIZE_NAME_LABEL)
    namespace = labels.get(KUSTOMIZE_NAMESPACE_LABEL)
    return (namespace, name) if name and namespace else None


def _patterns(expressions: object) -> tuple[re.Pattern[str], ...]:
    if not isinstance(expressions, list | tuple):
        return ()
    compiled = (_compile(str(expression)) for expression in expressions)
    return tuple(pattern for pattern in compiled if pattern is not None)


@lru_cache(maxsize=512)
def _compile(expression: str) -> re.Pattern[str] | None:
    try:
        return re.compile(expression)
    except re.error as error:
        # Flux logs and skips an expression that does not compile.
        _log.error("alert regex does not compile; ignored", expression=expression, error=str(error))
        return None


def _spec(obj: Object) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _metadata(obj: Object) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}

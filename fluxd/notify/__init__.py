"""Alerts and notification providers, free of Kubernetes.

Controllers hand this package plain dicts (Alert, Provider, Receiver objects,
decoded Secret data) and events; it decides what to send where, and sends it.
Incoming webhooks are the ``fluxd.receiver`` package's.
"""

from __future__ import annotations

from fluxd.notify.config import ProviderConfig, parse_duration
from fluxd.notify.delivery import (
    DeliveryObserver,
    DeliveryQueue,
    DeliveryRecord,
    Outcome,
    RetryPolicy,
)
from fluxd.notify.errors import DeliveryError, NotifyError, ProviderConfigError
from fluxd.notify.event import Event, ObjectReference, clean_metadata
from fluxd.notify.matching import (
    Dispatch,
    alert_selects,
    compose_notification,
    provider_is_active,
    route,
)
from fluxd.notify.providers import (
    COMMIT_STATUS_TYPES,
    PROVIDER_TYPES,
    Provider,
    RateLimit,
    build_provider,
)

__all__ = [
    "COMMIT_STATUS_TYPES",
    "PROVIDER_TYPES",
    "DeliveryError",
    "DeliveryObserver",
    "DeliveryQueue",
    "DeliveryRecord",
    "Dispatch",
    "Event",
    "NotifyError",
    "ObjectReference",
    "Outcome",
    "Provider",
    "ProviderConfig",
    "ProviderConfigError",
    "RateLimit",
    "RetryPolicy",
    "alert_selects",
    "build_provider",
    "clean_metadata",
    "compose_notification",
    "parse_duration",
    "provider_is_active",
    "route",
]

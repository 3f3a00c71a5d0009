"""``notification.toolkit.fluxcd.io`` Receiver (v1), Provider and Alert (v1beta3).

Flux's field names, enums and defaults, plus fluxd's additions: the ``gitea``
receiver type and the ``dingtalk``, ``wecom`` and ``feishu`` provider types.
As in Flux, v1beta3 Providers and Alerts are static objects without a status.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal, NotRequired, TypedDict

from fluxd.api.duration import DURATION_PATTERN, SHORT_DURATION_PATTERN, parse_duration
from fluxd.api.meta import Condition, LocalObjectReference, Metadata, ResourceKind
from fluxd.api.schema import (
    AGE_COLUMN,
    READY_COLUMN,
    STATUS_COLUMN,
    CustomResource,
    Default,
    Doc,
    ItemCount,
    Length,
    Pattern,
)

_GROUP = "notification.toolkit.fluxcd.io"

RECEIVER = ResourceKind(
    group=_GROUP, version="v1", kind="Receiver", plural="receivers", categories=("fluxcd",)
)
PROVIDER = ResourceKind(
    group=_GROUP, version="v1beta3", kind="Provider", plural="providers", categories=("fluxcd",)
)
ALERT = ResourceKind(
    group=_GROUP, version="v1beta3", kind="Alert", plural="alerts", categories=("fluxcd",)
)

# Receivers answer on this path followed by sha256(token + name + namespace) in hex.
RECEIVER_WEBHOOK_PATH_PREFIX = "/hook/"
DEFAULT_RECEIVER_INTERVAL = "10m"
# The 'aud' a generic-oidc Receiver expects when its provider names none (Flux's).
DEFAULT_OIDC_AUDIENCE = "notification-controller"
# Flux's default for sending one alert when the Provider sets no timeout.
DEFAULT_PROVIDER_TIMEOUT = "15s"

ReceiverType = Literal[
    "generic",
    "generic-hmac",
    "generic-oidc",
    "github",
    "gitlab",
    "bitbucket",
    "harbor",
    "dockerhub",
    "quay",
    "gcr",
    "nexus",
    "acr",
    "cdevents",
    "gitea",
]

# Flux's v1beta3 enum, in its order, then fluxd's robots.
ProviderType = Literal[
    "slack",
    "discord",
    "msteams",
    "rocket",
    "generic",
    "generic-hmac",
    "github",
    "gitlab",
    "gitea",
    "giteapullrequestcomment",
    "bitbucketserver",
    "bitbucket",
    "azuredevops",
    "googlechat",
    "googlepubsub",
    "webex",
    "sentry",
    "azureeventhub",
    "telegram",
    "lark",
    "matrix",
    "opsgenie",
    "alertmanager",
    "grafana",
    "githubdispatch",
    "githubpullrequestcomment",
    "gitlabmergerequestcomment",
    "pagerduty",
    "datadog",
    "nats",
    "zulip",
    "otel",
    "zoom",
    "incident.io",
    "dingtalk",
    "wecom",
    "feishu",
]

# Kinds whose events Alerts select and whose reconciles Receivers request.
EventSourceKind = Literal[
    "Bucket",
    "GitRepository",
    "Kustomization",
    "HelmRelease",
    "HelmChart",
    "HelmRepository",
    "ImageRepository",
    "ImagePolicy",
    "ImageUpdateAutomation",
    "OCIRepository",
    "ArtifactGenerator",
    "ExternalArtifact",
]

EventSeverity = Literal["info", "error"]


class CrossNamespaceObjectReference(TypedDict):
    """Objects of one kind, by name or by labels ('*' with matchLabels), in any namespace."""

    apiVersion: NotRequired[Annotated[str, Doc("API version of the referent.")]]
    kind: Annotated[EventSourceKind, Doc("Kind of the referent.")]
    name: Annotated[
        str, Doc("Name of the referent; '*' targets every object of the kind."), Length(1, 253)
    ]
    namespace: NotRequired[
        Annotated[
            str, Doc("Namespace of the referent; '*' targets all namespaces."), Length(1, 253)
        ]
    ]
    matchLabels: NotRequired[
        Annotated[dict[str, str], Doc("Labels the objects must carry; requires name '*'.")]
    ]


class ReceiverResource(CrossNamespaceObjectReference):
    """A resource a Receiver reconciles, with an optional CEL filter of its own."""

    filter: NotRequired[
        Annotated[
            str,
            Doc(
                "CEL expression over 'res' and 'req', evaluated for each resource this entry "
                "matches, in addition to resourceFilter; both must be true."
            ),
        ]
    ]


class OIDCVariable(TypedDict):
    """A named CEL expression over the token's claims, exposed as 'vars.<name>'."""

    name: Annotated[str, Doc("Variable name; a CEL identifier.")]
    expression: Annotated[str, Doc("CEL expression over 'claims' and earlier 'vars'.")]


class OIDCValidation(TypedDict):
    """A CEL boolean over the token's claims and variables; all must be true."""

    expression: Annotated[str, Doc("CEL boolean expression over 'claims' and 'vars'.")]
    message: Annotated[str, Doc("Message returned when the expression is false.")]


class OIDCProvider(TypedDict):
    """An OIDC issuer whose tokens authenticate a 'generic-oidc' Receiver's requests."""

    issuerURL: Annotated[
        str,
        Doc("Issuer URL used for discovery; must match the token's 'iss' claim."),
        Pattern("^https?://"),
    ]
    audience: NotRequired[
        Annotated[str, Doc("Expected 'aud' claim; defaults to 'notification-controller'.")]
    ]
    variables: NotRequired[
        Annotated[list[OIDCVariable], Doc("Named CEL expressions, evaluated in order.")]
    ]
    validations: Annotated[
        list[OIDCValidation],
        Doc("CEL boolean expressions that must all be true for a request to be accepted."),
        ItemCount(min=1),
    ]


class ReceiverSpec(TypedDict):
    """Desired state of a Receiver: who may call the webhook and what it reconciles."""

    type: Annotated[ReceiverType, Doc("Type of webhook sender; decides payload validation.")]
    interval: NotRequired[
        Annotated[
            str,
            Doc("Interval at which to reconcile the Receiver with its Secret."),
            Pattern(DURATION_PATTERN),
            Default(DEFAULT_RECEIVER_INTERVAL),
        ]
    ]
    events: NotRequired[Annotated[list[str], Doc("Event types to handle, e.g. 'push' for GitHub.")]]
    resources: Annotated[
        list[ReceiverResource], Doc("Objects to reconcile when the hook is called.")
    ]
    resourceFilter: NotRequired[
        Annotated[
            str,
            Doc(
                "CEL expression over 'res' (a resource's metadata) and 'req' (the request "
                "body); only resources it is true for are reconciled."
            ),
        ]
    ]
    secretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc(
                "Secret with the 'token' used to validate payloads; required for every "
                "type but 'generic-oidc', which must not set it."
            ),
        ]
    ]
    oidcProviders: NotRequired[
        Annotated[
            list[OIDCProvider],
            Doc("OIDC issuers that authenticate requests; only for type 'generic-oidc'."),
        ]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend handling of this Receiver's events.")]]


class ReceiverStatus(TypedDict, total=False):
    """Observed state of a Receiver."""

    observedGeneration: Annotated[int, Doc("Last observed generation of the Receiver.")]
    conditions: Annotated[list[Condition], Doc("Conditions of the Receiver.")]
    webhookPath: Annotated[
        str, Doc("Generated webhook path: '/hook/sha256sum(token+name+namespace)'.")
    ]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class Receiver(TypedDict):
    """Receiver is the Schema for the receivers API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[ReceiverSpec]
    status: NotRequired[Annotated[ReceiverStatus, Default({"observedGeneration": -1})]]


class ProviderSpec(TypedDict):
    """Desired state of a Provider: where and how alerts are sent."""

    type: Annotated[ProviderType, Doc("Provider implementation to use.")]
    interval: NotRequired[
        Annotated[str, Doc("Deprecated and not used in v1beta3."), Pattern(DURATION_PATTERN)]
    ]
    channel: NotRequired[
        Annotated[str, Doc("Destination channel of the events."), Length(max=2048)]
    ]
    username: NotRequired[
        Annotated[str, Doc("Name under which events are posted."), Length(max=2048)]
    ]
    address: NotRequired[
        Annotated[str, Doc("Endpoint alerts are sent to, e.g. an HTTP/S URL."), Length(max=2048)]
    ]
    timeout: NotRequired[
        Annotated[
            str,
            Doc("Timeout for sending one alert, 15s if unset."),
            Pattern(SHORT_DURATION_PATTERN),
        ]
    ]
    proxy: NotRequired[
        Annotated[
            str,
            Doc("HTTP/S address of a proxy server; prefer proxySecretRef."),
            Pattern(r"^(http|https)://.*$"),
            Length(max=2048),
        ]
    ]
    proxySecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with the proxy 'address' and credentials.")]
    ]
    secretRef: NotRequired[
        Annotated[
            LocalObjectReference, Doc("Secret with credentials: 'address', 'token', 'username'...")
        ]
    ]
    serviceAccountName: NotRequired[
        Annotated[str, Doc("ServiceAccount for workload identity (not supported: refused).")]
    ]
    certSecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with 'ca.crt' and optional client cert.")]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend sending through this Provider.")]]
    commitStatusExpr: NotRequired[
        Annotated[str, Doc("CEL expression for the commit status text (not supported: refused).")]
    ]


class Provider(TypedDict):
    """Provider is the Schema for the providers API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[ProviderSpec]


class AlertSpec(TypedDict):
    """An alerting rule: which events, filtered how, sent through which Provider."""

    providerRef: Annotated[LocalObjectReference, Doc("Provider this Alert sends through.")]
    eventSeverity: NotRequired[
        Annotated[
            EventSeverity, Doc("Severity filter; 'info' lets every event through."), Default("info")
        ]
    ]
    eventSources: Annotated[
        list[CrossNamespaceObjectReference], Doc("Objects whose events are sent.")
    ]
    inclusionList: NotRequired[
        Annotated[list[str], Doc("Regular expressions; only matching messages are sent.")]
    ]
    exclusionList: NotRequired[
        Annotated[list[str], Doc("Regular expressions; matching messages are dropped.")]
    ]
    eventMetadata: NotRequired[
        Annotated[dict[str, str], Doc("Metadata added to every event, never overriding.")]
    ]
    summary: NotRequired[
        Annotated[str, Doc("Short description of the impact and cluster."), Length(max=255)]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend this Alert.")]]


class Alert(TypedDict):
    """Alert is the Schema for the alerts API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[AlertSpec]


RECEIVER_RESOURCE = CustomResource(
    kind=RECEIVER, root=Receiver, printer_columns=(AGE_COLUMN, READY_COLUMN, STATUS_COLUMN)
)
PROVIDER_RESOURCE = CustomResource(kind=PROVIDER, root=Provider)
ALERT_RESOURCE = CustomResource(kind=ALERT, root=Alert)


def receiver_webhook_path(*, token: str, name: str, namespace: str) -> str:
    """The Receiver's webhook path, as Flux computes it: '/hook/' + sha256(token+name+namespace).

    The token only enters the digest; the path is safe to publish in status.
    """
    digest = hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()
    return f"{RECEIVER_WEBHOOK_PATH_PREFIX}{digest}"


def provider_timeout_seconds(spec: ProviderSpec) -> float:
    """Timeout for sending one alert: spec.timeout, else Flux's 15s."""
    return parse_duration(spec.get("timeout", DEFAULT_PROVIDER_TIMEOUT))

"""``source.toolkit.fluxcd.io/v1`` HelmRepository and HelmChart: Flux's fields, enums, defaults.

A HelmRepository publishes a Helm repository's index as an artifact; a
HelmChart publishes one packaged chart, pulled from a HelmRepository or
packaged from a directory of a GitRepository's artifact. Both are declared
with every field Flux has, so that YAML written for Flux passes the
apiserver's strict field validation.
"""

from __future__ import annotations

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
    Pattern,
    PrinterColumn,
    UnstructuredObject,
)
from fluxd.api.source import Artifact

HELM_REPOSITORY = ResourceKind(
    group="source.toolkit.fluxcd.io",
    version="v1",
    kind="HelmRepository",
    plural="helmrepositories",
    short_names=("helmrepo",),
    categories=("all", "fluxcd", "fluxcd-sources"),
)
HELM_CHART = ResourceKind(
    group="source.toolkit.fluxcd.io",
    version="v1",
    kind="HelmChart",
    plural="helmcharts",
    short_names=("hc",),
    categories=("all", "fluxcd", "fluxcd-sources"),
)

DEFAULT_HELM_TIMEOUT = "60s"
# Flux requeues a HelmRepository without an interval every minute.
DEFAULT_HELM_REPOSITORY_INTERVAL = 60.0
HELM_REPOSITORY_TYPE_DEFAULT = "default"
HELM_REPOSITORY_TYPE_OCI = "oci"
RECONCILE_STRATEGY_CHART_VERSION = "ChartVersion"
RECONCILE_STRATEGY_REVISION = "Revision"

HelmRepositoryType = Literal["default", "oci"]
HelmProvider = Literal["generic", "aws", "azure", "gcp"]
ReconcileStrategy = Literal["ChartVersion", "Revision"]
HelmChartSourceKind = Literal["HelmRepository", "GitRepository", "Bucket"]
VerificationProvider = Literal["cosign", "notation"]


class AccessFrom(TypedDict):
    """Access Control List for cross-namespace references (provisional in Flux)."""

    namespaceSelectors: Annotated[
        list[UnstructuredObject], Doc("Namespace selectors allowed to reference this object.")
    ]


class HelmRepositorySpec(TypedDict):
    """Configuration to produce an Artifact for a Helm repository index YAML."""

    url: Annotated[
        str,
        Doc("URL of the Helm repository, a valid URL contains at least a protocol and host."),
        Pattern(r"^(http|https|oci)://.*$"),
    ]
    secretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc("Secret with HTTP/S basic auth credentials: 'username' and 'password'."),
        ]
    ]
    certSecretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc(
                "Secret with a PEM client certificate ('tls.crt', 'tls.key') and/or a CA "
                "certificate ('ca.crt') for connecting to the repository."
            ),
        ]
    ]
    passCredentials: NotRequired[
        Annotated[
            bool,
            Doc("Pass the secretRef credentials on to chart hosts other than the URL's host."),
        ]
    ]
    interval: NotRequired[
        Annotated[
            str,
            Doc("Interval at which the HelmRepository URL is checked for updates."),
            Pattern(DURATION_PATTERN),
        ]
    ]
    insecure: NotRequired[
        Annotated[bool, Doc("Allow a non-TLS HTTP container registry (only for type 'oci').")]
    ]
    timeout: NotRequired[
        Annotated[
            str,
            Doc("Timeout of the index fetch and of OCI chart pulls, defaults to 60s."),
            Pattern(SHORT_DURATION_PATTERN),
        ]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend the reconciliation of this HelmRepository.")]]
    accessFrom: NotRequired[
        Annotated[AccessFrom, Doc("Access Control List for cross-namespace references.")]
    ]
    type: NotRequired[
        Annotated[
            HelmRepositoryType,
            Doc("Type of the HelmRepository; 'oci' requires an 'oci://' URL."),
        ]
    ]
    provider: NotRequired[
        Annotated[
            HelmProvider,
            Doc("Authentication provider for type 'oci'; fluxd refuses all but 'generic'."),
            Default("generic"),
        ]
    ]


class HelmRepositoryStatus(TypedDict, total=False):
    """The observed state of the HelmRepository."""

    observedGeneration: Annotated[int, Doc("Last observed generation of the HelmRepository.")]
    conditions: Annotated[list[Condition], Doc("Conditions of the HelmRepository.")]
    url: Annotated[str, Doc("The dynamic fetch link for the latest Artifact.")]
    artifact: Annotated[Artifact, Doc("Artifact of the last successful reconciliation.")]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class HelmRepository(TypedDict):
    """HelmRepository is the Schema for the helmrepositories API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[HelmRepositorySpec]
    status: NotRequired[Annotated[HelmRepositoryStatus, Default({"observedGeneration": -1})]]


class LocalHelmChartSourceReference(TypedDict):
    """The Source the chart is available at."""

    apiVersion: NotRequired[Annotated[str, Doc("APIVersion of the referent.")]]
    kind: Annotated[HelmChartSourceKind, Doc("Kind of the referent.")]
    name: Annotated[str, Doc("Name of the referent.")]


class OIDCIdentityMatch(TypedDict):
    """Regular expressions for the issuer and subject of a keyless signature's certificate."""

    issuer: Annotated[str, Doc("Regular expression the OIDC issuer must match.")]
    subject: Annotated[str, Doc("Regular expression the identity subject must match.")]


class HelmChartVerification(TypedDict):
    """Verification of the authenticity of an OCI chart."""

    provider: Annotated[
        VerificationProvider, Doc("Technology used to sign the chart."), Default("cosign")
    ]
    secretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with the trusted public keys.")]
    ]
    matchOIDCIdentity: NotRequired[
        Annotated[list[OIDCIdentityMatch], Doc("Identities accepted for keyless signatures.")]
    ]


class HelmChartSpec(TypedDict):
    """The desired state of a Helm chart."""

    chart: Annotated[str, Doc("Name or path the Helm chart is available at in the SourceRef.")]
    version: NotRequired[
        Annotated[
            str,
            Doc("Chart version semver expression, ignored for charts from GitRepository sources."),
            Default("*"),
        ]
    ]
    sourceRef: Annotated[
        LocalHelmChartSourceReference, Doc("Reference to the Source the chart is available at.")
    ]
    interval: Annotated[
        str,
        Doc("Interval at which the HelmChart SourceRef is checked for updates."),
        Pattern(DURATION_PATTERN),
    ]
    reconcileStrategy: NotRequired[
        Annotated[
            ReconcileStrategy,
            Doc("What enables the creation of a new artifact: 'ChartVersion' or 'Revision'."),
            Default(RECONCILE_STRATEGY_CHART_VERSION),
        ]
    ]
    valuesFiles: NotRequired[
        Annotated[
            list[str],
            Doc("Values files merged in order (the last wins) into the chart's values.yaml."),
        ]
    ]
    ignoreMissingValuesFiles: NotRequired[
        Annotated[bool, Doc("Silently ignore missing values files rather than failing.")]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend the reconciliation of this source.")]]
    verify: NotRequired[
        Annotated[
            HelmChartVerification,
            Doc("Signature verification of OCI charts (not supported: refused)."),
        ]
    ]


class HelmChartStatus(TypedDict, total=False):
    """The observed state of the HelmChart."""

    observedGeneration: Annotated[int, Doc("Last observed generation of the HelmChart.")]
    observedSourceArtifactRevision: Annotated[
        str, Doc("Last observed Artifact.Revision of the SourceRef.")
    ]
    observedChartName: Annotated[str, Doc("Last observed chart name.")]
    observedValuesFiles: Annotated[
        list[str], Doc("Values files of the last successful reconciliation.")
    ]
    conditions: Annotated[list[Condition], Doc("Conditions of the HelmChart.")]
    url: Annotated[str, Doc("The dynamic fetch link for the latest Artifact.")]
    artifact: Annotated[Artifact, Doc("Output of the last successful reconciliation.")]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class HelmChart(TypedDict):
    """HelmChart is the Schema for the helmcharts API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[HelmChartSpec]
    status: NotRequired[Annotated[HelmChartStatus, Default({"observedGeneration": -1})]]


HELM_REPOSITORY_RESOURCE = CustomResource(
    kind=HELM_REPOSITORY,
    root=HelmRepository,
    printer_columns=(
        PrinterColumn(name="URL", type="string", json_path=".spec.url"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    ),
)
HELM_CHART_RESOURCE = CustomResource(
    kind=HELM_CHART,
    root=HelmChart,
    printer_columns=(
        PrinterColumn(name="Chart", type="string", json_path=".spec.chart"),
        PrinterColumn(name="Version", type="string", json_path=".spec.version"),
        PrinterColumn(name="Source Kind", type="string", json_path=".spec.sourceRef.kind"),
        PrinterColumn(name="Source Name", type="string", json_path=".spec.sourceRef.name"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    ),
)


def helm_timeout_seconds(spec: HelmRepositorySpec) -> float:
    """Timeout of the index fetch: spec.timeout, else Flux's 60s."""
    return parse_duration(spec.get("timeout") or DEFAULT_HELM_TIMEOUT)

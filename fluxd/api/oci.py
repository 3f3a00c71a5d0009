"""``source.toolkit.fluxcd.io/v1`` OCIRepository: Flux's field names, enums and defaults.

An OCIRepository publishes one layer of an OCI artifact (what ``flux push
artifact`` uploads) as a source artifact, so Kustomizations can apply
manifests shipped through a container registry. The TypedDicts below are how
code reads an OCIRepository as a plain dict, and the source of its CRD
schema; fields fluxd refuses (cloud ``provider``, ``serviceAccountName``,
``verify``, ``proxySecretRef``) are still declared so Flux's YAML validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired, TypedDict

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
)
from fluxd.api.source import Artifact

OCI_REPOSITORY = ResourceKind(
    group="source.toolkit.fluxcd.io",
    version="v1",
    kind="OCIRepository",
    plural="ocirepositories",
    short_names=("ocirepo",),
    categories=("all", "fluxcd", "fluxcd-sources"),
)

OCI_URL_PREFIX = "oci://"
DEFAULT_OCI_TIMEOUT = "60s"
# The tag go-containerregistry resolves when a reference names none.
DEFAULT_TAG = "latest"
LAYER_EXTRACT = "extract"
LAYER_COPY = "copy"

OCIProvider = Literal["generic", "aws", "azure", "gcp"]
OCILayerOperation = Literal["extract", "copy"]
OCIVerificationProvider = Literal["cosign", "notation"]


class OCIRepositoryRef(TypedDict, total=False):
    """The OCI reference to pull and monitor for changes; defaults to the 'latest' tag."""

    digest: Annotated[
        str, Doc("Image digest to pull, takes precedence over SemVer; 'sha256:<hex>'.")
    ]
    semver: Annotated[str, Doc("Range of tags to pull selecting the latest within the range.")]
    semverFilter: Annotated[
        str, Doc("Regular expression the tags must match before the SemVer range is applied.")
    ]
    tag: Annotated[str, Doc("Image tag to pull, defaults to latest.")]


class OCILayerSelector(TypedDict, total=False):
    """Which layer of the artifact to use, and how to store it."""

    mediaType: Annotated[
        str,
        Doc("Media type of the layer to use; the first layer when unset or no match."),
    ]
    operation: Annotated[
        OCILayerOperation,
        Doc("'extract' (default) unpacks the layer's tarball; 'copy' stores it as it is."),
    ]


class OIDCIdentityMatch(TypedDict):
    """An OIDC issuer and subject a keyless signature must match (regular expressions)."""

    issuer: Annotated[str, Doc("Regular expression the OIDC issuer must match.")]
    subject: Annotated[str, Doc("Regular expression the OIDC subject must match.")]


class OCIRepositoryVerification(TypedDict):
    """Verification of the artifact's signature (not supported by fluxd: refused)."""

    provider: Annotated[OCIVerificationProvider, Doc("Verification provider."), Default("cosign")]
    secretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret holding the trusted public keys.")]
    ]
    matchOIDCIdentity: NotRequired[
        Annotated[list[OIDCIdentityMatch], Doc("Identities keyless signatures must match.")]
    ]
    trustedRootSecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret holding a Sigstore trusted root.")]
    ]


class OCIRepositorySpec(TypedDict):
    """Configuration to produce an Artifact from an OCI repository."""

    url: Annotated[
        str,
        Doc("OCI repository address, 'oci://<host>/<org>/<repo>' without a tag."),
        Pattern(r"^oci://.*$"),
    ]
    ref: NotRequired[Annotated[OCIRepositoryRef, Doc("The OCI reference to pull.")]]
    layerSelector: NotRequired[
        Annotated[OCILayerSelector, Doc("Which layer to use, and how to store it.")]
    ]
    provider: NotRequired[
        Annotated[
            OCIProvider,
            Doc("Authentication provider; fluxd refuses all but 'generic'."),
            Default("generic"),
        ]
    ]
    secretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc("Secret of type kubernetes.io/dockerconfigjson with the registry credentials."),
        ]
    ]
    verify: NotRequired[
        Annotated[
            OCIRepositoryVerification,
            Doc("Verification of the artifact's signature (not supported: refused)."),
        ]
    ]
    serviceAccountName: NotRequired[
        Annotated[
            str, Doc("ServiceAccount whose image pull secrets are used (not supported: refused).")
        ]
    ]
    certSecretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc("Secret with 'ca.crt' to trust and/or 'tls.crt' and 'tls.key' to present."),
        ]
    ]
    proxySecretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc("Secret with the proxy configuration (not supported: refused)."),
        ]
    ]
    interval: Annotated[
        str,
        Doc("Interval at which the OCIRepository URL is checked for updates."),
        Pattern(DURATION_PATTERN),
    ]
    timeout: NotRequired[
        Annotated[
            str,
            Doc("Timeout for remote OCI operations like pulling, defaults to 60s."),
            Pattern(SHORT_DURATION_PATTERN),
            Default(DEFAULT_OCI_TIMEOUT),
        ]
    ]
    ignore: NotRequired[
        Annotated[str, Doc("Exclusion patterns in .sourceignore (.gitignore) format.")]
    ]
    insecure: NotRequired[
        Annotated[bool, Doc("Connect to the registry over plain HTTP instead of HTTPS.")]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend the reconciliation of this source.")]]


class OCIRepositoryStatus(TypedDict, total=False):
    """The observed state of an OCIRepository."""

    observedGeneration: Annotated[int, Doc("Last observed generation.")]
    conditions: Annotated[list[Condition], Doc("Conditions of the OCIRepository.")]
    url: Annotated[str, Doc("Download link for the artifact output of the last OCI sync.")]
    artifact: Annotated[Artifact, Doc("Artifact of the last successful sync.")]
    observedIgnore: Annotated[str, Doc("Exclusion patterns used for the current Artifact.")]
    observedLayerSelector: Annotated[
        OCILayerSelector, Doc("Layer selector used for the current Artifact.")
    ]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class OCIRepository(TypedDict):
    """OCIRepository is the Schema for the ocirepositories API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[OCIRepositorySpec]
    status: NotRequired[Annotated[OCIRepositoryStatus, Default({"observedGeneration": -1})]]


OCI_REPOSITORY_RESOURCE = CustomResource(
    kind=OCI_REPOSITORY,
    root=OCIRepository,
    printer_columns=(
        PrinterColumn(name="URL", type="string", json_path=".spec.url"),
        READY_COLUMN,
        STATUS_COLUMN,
        AGE_COLUMN,
    ),
)


def oci_timeout_seconds(spec: OCIRepositorySpec) -> float:
    """Timeout for registry operations: spec.timeout, else Flux's 60s."""
    return parse_duration(spec.get("timeout", DEFAULT_OCI_TIMEOUT))


def layer_operation(spec: Mapping[str, Any]) -> str:
    """spec.layerSelector.operation, or Flux's default 'extract'."""
    return str((spec.get("layerSelector") or {}).get("operation") or LAYER_EXTRACT)

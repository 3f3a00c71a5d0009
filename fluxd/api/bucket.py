"""``source.toolkit.fluxcd.io/v1`` Bucket: declared with Flux's fields, served but refused.

fluxd has no object storage client (S3, GCS, Azure Blob Storage), so it
cannot produce a Bucket's artifact. The kind is still served with every
Flux field, so that YAML written for Flux is accepted, and each Bucket is
then Stalled with a reason naming the kind (fluxd.api.support.REFUSED_KINDS):
refused, never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from fluxd.api.duration import DURATION_PATTERN, SHORT_DURATION_PATTERN
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

BUCKET = ResourceKind(
    group="source.toolkit.fluxcd.io",
    version="v1",
    kind="Bucket",
    plural="buckets",
    categories=("all", "fluxcd", "fluxcd-sources"),
)

# fluxd's own reason: the kind is served for compatibility but not reconciled.
UNSUPPORTED_KIND_REASON = "UnsupportedKind"

BucketProvider = Literal["generic", "aws", "gcp", "azure"]
STSProvider = Literal["aws", "ldap"]


class BucketSTSSpec(TypedDict):
    """A Security Token Service for fetching temporary credentials."""

    provider: Annotated[STSProvider, Doc("Provider of the Security Token Service.")]
    endpoint: Annotated[
        str, Doc("HTTP/S endpoint of the Security Token Service."), Pattern(r"^(http|https)://.*$")
    ]
    secretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with 'username' and 'password' for ldap.")]
    ]
    certSecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with TLS certificates for the STS endpoint.")]
    ]


class BucketSpec(TypedDict):
    """Configuration to produce an Artifact for an object storage bucket."""

    provider: NotRequired[
        Annotated[BucketProvider, Doc("Provider of the object storage bucket."), Default("generic")]
    ]
    bucketName: Annotated[str, Doc("Name of the object storage bucket.")]
    endpoint: Annotated[str, Doc("Object storage address the bucket is located at.")]
    sts: NotRequired[Annotated[BucketSTSSpec, Doc("Security Token Service configuration.")]]
    insecure: NotRequired[Annotated[bool, Doc("Allow connecting to a non-TLS HTTP endpoint.")]]
    region: NotRequired[Annotated[str, Doc("Region of the endpoint.")]]
    prefix: NotRequired[Annotated[str, Doc("Prefix for server-side filtering of files.")]]
    secretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with authentication credentials.")]
    ]
    serviceAccountName: NotRequired[
        Annotated[str, Doc("ServiceAccount for workload identity ('gcp' and 'aws').")]
    ]
    certSecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with TLS certificates for the endpoint.")]
    ]
    proxySecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with the proxy configuration.")]
    ]
    interval: Annotated[
        str,
        Doc("Interval at which the endpoint is checked for updates."),
        Pattern(DURATION_PATTERN),
    ]
    timeout: NotRequired[
        Annotated[
            str,
            Doc("Timeout for fetch operations, defaults to 60s."),
            Pattern(SHORT_DURATION_PATTERN),
            Default("60s"),
        ]
    ]
    ignore: NotRequired[
        Annotated[str, Doc("Exclusion patterns in .sourceignore (.gitignore) format.")]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend the reconciliation of this Bucket.")]]


class BucketStatus(TypedDict, total=False):
    """The observed state of a Bucket."""

    observedGeneration: Annotated[int, Doc("Last observed generation of the Bucket.")]
    conditions: Annotated[list[Condition], Doc("Conditions of the Bucket.")]
    url: Annotated[str, Doc("The dynamic fetch link for the latest Artifact.")]
    artifact: Annotated[Artifact, Doc("Artifact of the last successful reconciliation.")]
    observedIgnore: Annotated[str, Doc("Exclusion patterns used for the current Artifact.")]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class Bucket(TypedDict):
    """Bucket is the Schema for the buckets API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[BucketSpec]
    status: NotRequired[Annotated[BucketStatus, Default({"observedGeneration": -1})]]


BUCKET_RESOURCE = CustomResource(
    kind=BUCKET,
    root=Bucket,
    printer_columns=(
        PrinterColumn(name="Endpoint", type="string", json_path=".spec.endpoint"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    ),
)

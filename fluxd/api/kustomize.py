"""``kustomize.toolkit.fluxcd.io/v1`` Kustomization: Flux's field names, enums and defaults.

The TypedDicts below are how code reads a Kustomization as a plain dict, and
the source of its CRD schema.  ``kubeConfig.configMapRef``, ``buildMetadata`` and
``decryption.serviceAccountName`` are in the schema so that YAML written for Flux
passes strict field validation; an object that sets one is refused (``fluxd.api.support``).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from fluxd.api.duration import DURATION_PATTERN, parse_duration
from fluxd.api.meta import Condition, LocalObjectReference, Metadata, ResourceKind
from fluxd.api.schema import (
    AGE_COLUMN,
    READY_COLUMN,
    STATUS_COLUMN,
    CustomResource,
    Default,
    Doc,
    Length,
    Pattern,
    UnstructuredObject,
)

KUSTOMIZATION = ResourceKind(
    group="kustomize.toolkit.fluxcd.io",
    version="v1",
    kind="Kustomization",
    plural="kustomizations",
    short_names=("ks",),
    categories=("fluxcd",),
)

SourceKind = Literal["OCIRepository", "GitRepository", "Bucket", "ExternalArtifact"]
DeletionPolicy = Literal["MirrorPrune", "Delete", "WaitForTermination", "Orphan"]
DEFAULT_DELETION_POLICY: DeletionPolicy = "MirrorPrune"
SubstituteStrategy = Literal["WithVariables", "Always"]
BuildMetadataOption = Annotated[
    Literal["originAnnotations", "transformerAnnotations"],
    Doc("BuildMetadataOption defines the supported buildMetadata options."),
]


class CrossNamespaceSourceReference(TypedDict):
    """Reference to the Source the kustomization files come from."""

    apiVersion: NotRequired[Annotated[str, Doc("API version of the referent.")]]
    kind: Annotated[SourceKind, Doc("Kind of the referent.")]
    name: Annotated[str, Doc("Name of the referent.")]
    namespace: NotRequired[
        Annotated[str, Doc("Namespace of the referent, defaults to the Kustomization's.")]
    ]


class DependencyReference(TypedDict):
    """A Kustomization that must be ready before this one is reconciled."""

    name: Annotated[str, Doc("Name of the referent.")]
    namespace: NotRequired[
        Annotated[str, Doc("Namespace of the referent, defaults to the Kustomization's.")]
    ]
    readyExpr: NotRequired[
        Annotated[str, Doc("CEL readiness expression (not supported by fluxd: refused).")]
    ]


class Selector(TypedDict, total=False):
    """Resources a patch applies to; every condition given must match."""

    group: Annotated[str, Doc("API group of the resources.")]
    version: Annotated[str, Doc("API version of the resources.")]
    kind: Annotated[str, Doc("Kind of the resources.")]
    namespace: Annotated[str, Doc("Namespace of the resources.")]
    name: Annotated[str, Doc("Name of the resources (a regular expression).")]
    annotationSelector: Annotated[str, Doc("Label-selector expression matched on annotations.")]
    labelSelector: Annotated[str, Doc("Label-selector expression matched on labels.")]


class Patch(TypedDict):
    """An inline strategic merge or JSON6902 patch, and the resources it targets."""

    patch: Annotated[str, Doc("Inline strategic merge patch or JSON6902 patch document.")]
    target: NotRequired[Annotated[Selector, Doc("Resources the patch applies to.")]]


class Image(TypedDict):
    """An image whose name, tag or digest is replaced."""

    name: Annotated[str, Doc("Tag-less image name.")]
    newName: NotRequired[Annotated[str, Doc("Replacement name.")]]
    newTag: NotRequired[Annotated[str, Doc("Replacement tag.")]]
    digest: NotRequired[Annotated[str, Doc("Replacement digest; NewTag is ignored when set.")]]


class CommonMetadata(TypedDict, total=False):
    """Labels and annotations applied to every resource; they win over the manifests'."""

    labels: Annotated[dict[str, str], Doc("Labels added to every object.")]
    annotations: Annotated[dict[str, str], Doc("Annotations added to every object.")]


class SubstituteReference(TypedDict):
    """A ConfigMap or Secret whose data keys are substitution variables."""

    kind: Annotated[Literal["Secret", "ConfigMap"], Doc("Kind of the values referent.")]
    name: Annotated[
        str, Doc("Name of the values referent, in the Kustomization's namespace."), Length(1, 253)
    ]
    optional: NotRequired[Annotated[bool, Doc("Tolerate the referent's absence."), Default(False)]]


class PostBuild(TypedDict, total=False):
    """Actions on the YAML produced by the kustomize build."""

    substituteStrategy: Annotated[
        SubstituteStrategy,
        Doc(
            "When to substitute: 'WithVariables' (the default) only when at least one "
            "variable is defined, inline or from the referenced ConfigMaps and Secrets; "
            "'Always' even when none is, so that defaults like ${var:=default} apply."
        ),
    ]
    substitute: Annotated[
        dict[str, str], Doc("Variables substituted for ${name} in the manifests.")
    ]
    substituteFrom: Annotated[
        list[SubstituteReference], Doc("ConfigMaps and Secrets holding substitution variables.")
    ]


class IgnoreRule(TypedDict):
    """Changes to disregard during drift detection and apply."""

    paths: Annotated[
        list[str],
        Doc("JSON Pointer (RFC 6901) paths to be excluded from consideration in an object."),
    ]
    target: NotRequired[
        Annotated[
            Selector,
            Doc("Objects the rule applies to; without it, every object of the Kustomization."),
        ]
    ]


class NamespacedObjectKindReference(TypedDict):
    """An object in any namespace, identified by kind and name."""

    apiVersion: NotRequired[Annotated[str, Doc("API version of the referent.")]]
    kind: Annotated[str, Doc("Kind of the referent.")]
    name: Annotated[str, Doc("Name of the referent.")]
    namespace: NotRequired[Annotated[str, Doc("Namespace of the referent.")]]


class CustomHealthCheck(TypedDict):
    """CEL health rules for a custom resource kind (not supported by fluxd: refused)."""

    apiVersion: str
    kind: NotRequired[str]
    current: str
    inProgress: NotRequired[str]
    failed: NotRequired[str]


class Decryption(TypedDict):
    """SOPS decryption of the build's inputs and Secrets before apply."""

    provider: Annotated[Literal["sops"], Doc("Decryption engine.")]
    serviceAccountName: NotRequired[
        Annotated[str, Doc("Workload identity for KMS (not supported by fluxd: refused).")]
    ]
    secretRef: NotRequired[LocalObjectReference]


class SecretKeyReference(TypedDict):
    """A key of a Secret in the same namespace."""

    name: Annotated[str, Doc("Name of the Secret.")]
    key: NotRequired[Annotated[str, Doc("Key in the Secret.")]]


class KubeConfigReference(TypedDict, total=False):
    """Kubeconfig for a remote cluster: a Secret holding it (configMapRef is refused)."""

    secretRef: SecretKeyReference
    configMapRef: LocalObjectReference


class KustomizationSpec(TypedDict):
    """Configuration to compute the desired state from a Source using kustomize."""

    sourceRef: Annotated[
        CrossNamespaceSourceReference, Doc("Source holding the kustomization files.")
    ]
    path: NotRequired[
        Annotated[str, Doc("Directory with the kustomization.yaml, defaults to the root.")]
    ]
    interval: Annotated[
        str, Doc("Interval at which to reconcile the Kustomization."), Pattern(DURATION_PATTERN)
    ]
    retryInterval: NotRequired[
        Annotated[
            str,
            Doc("Interval at which to retry a failed reconciliation, defaults to interval."),
            Pattern(DURATION_PATTERN),
        ]
    ]
    timeout: NotRequired[
        Annotated[
            str,
            Doc("Timeout for apply and health checking, defaults to interval."),
            Pattern(DURATION_PATTERN),
        ]
    ]
    prune: Annotated[bool, Doc("Garbage-collect objects no longer in the manifests.")]
    deletionPolicy: NotRequired[
        Annotated[
            DeletionPolicy,
            Doc("What happens to applied objects when the Kustomization is deleted."),
        ]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend subsequent kustomize executions.")]]
    targetNamespace: NotRequired[
        Annotated[str, Doc("Namespace set on all objects."), Length(1, 63)]
    ]
    namePrefix: NotRequired[
        Annotated[str, Doc("Prefix for the names of all objects."), Length(1, 200)]
    ]
    nameSuffix: NotRequired[
        Annotated[str, Doc("Suffix for the names of all objects."), Length(1, 200)]
    ]
    patches: NotRequired[
        Annotated[list[Patch], Doc("Strategic merge and JSON6902 patches, inline.")]
    ]
    images: NotRequired[Annotated[list[Image], Doc("Image name, tag and digest overrides.")]]
    components: NotRequired[Annotated[list[str], Doc("Relative paths to kustomize Components.")]]
    ignoreMissingComponents: NotRequired[
        Annotated[bool, Doc("Drop component paths that do not exist in the source.")]
    ]
    commonMetadata: NotRequired[
        Annotated[CommonMetadata, Doc("Labels and annotations applied to all objects.")]
    ]
    postBuild: NotRequired[Annotated[PostBuild, Doc("Variable substitution after the build.")]]
    dependsOn: NotRequired[
        Annotated[
            list[DependencyReference], Doc("Kustomizations that must be ready before this one.")
        ]
    ]
    wait: NotRequired[
        Annotated[bool, Doc("Wait for every applied object to be healthy; healthChecks ignored.")]
    ]
    healthChecks: NotRequired[
        Annotated[
            list[NamespacedObjectKindReference], Doc("Objects included in the health assessment.")
        ]
    ]
    healthCheckExprs: NotRequired[
        Annotated[list[CustomHealthCheck], Doc("CEL health checks (not supported: refused).")]
    ]
    force: NotRequired[
        Annotated[bool, Doc("Recreate objects whose immutable fields changed."), Default(False)]
    ]
    serviceAccountName: NotRequired[
        Annotated[str, Doc("ServiceAccount to impersonate when applying.")]
    ]
    ignore: NotRequired[
        Annotated[
            list[IgnoreRule],
            Doc(
                "Rules for changes to ignore during drift detection: the fields at these "
                "JSON pointers keep their in-cluster values on objects that already exist."
            ),
        ]
    ]
    buildMetadata: NotRequired[
        Annotated[
            list[BuildMetadataOption],
            Doc("Kustomize build metadata added to the objects (not supported by fluxd: refused)."),
        ]
    ]
    decryption: NotRequired[
        Annotated[Decryption, Doc("SOPS decryption of Secrets and generator files.")]
    ]
    kubeConfig: NotRequired[
        Annotated[KubeConfigReference, Doc("Kubeconfig of the remote cluster to apply to.")]
    ]


class ResourceRef(TypedDict):
    """An applied object: id '<namespace>_<name>_<group>_<kind>' and its API version."""

    id: Annotated[str, Doc("'<namespace>_<name>_<group>_<kind>' of the object.")]
    v: Annotated[str, Doc("API version of the object's kind.")]


class ResourceInventory(TypedDict):
    """The objects applied by a Kustomization."""

    entries: Annotated[list[ResourceRef], Doc("References to the applied objects.")]


class KustomizationStatus(TypedDict, total=False):
    """The observed state of a Kustomization."""

    observedGeneration: Annotated[int, Doc("Last reconciled generation.")]
    conditions: Annotated[list[Condition], Doc("Conditions of the Kustomization.")]
    lastAppliedRevision: Annotated[str, Doc("Source revision last applied successfully.")]
    lastAppliedOriginRevision: Annotated[str, Doc("Origin revision last applied successfully.")]
    lastAttemptedRevision: Annotated[str, Doc("Source revision of the last attempt.")]
    inventory: Annotated[ResourceInventory, Doc("Objects applied successfully.")]
    history: Annotated[
        list[UnstructuredObject], Doc("Snapshots of the last reconciliations (kept as given).")
    ]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class Kustomization(TypedDict):
    """Kustomization is the Schema for the kustomizations API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[KustomizationSpec]
    status: NotRequired[Annotated[KustomizationStatus, Default({"observedGeneration": -1})]]


KUSTOMIZATION_RESOURCE = CustomResource(
    kind=KUSTOMIZATION,
    root=Kustomization,
    printer_columns=(AGE_COLUMN, READY_COLUMN, STATUS_COLUMN),
)

# Flux never runs apply and health checks with less than this, whatever the spec says.
_MINIMUM_TIMEOUT_SECONDS = 30.0


def timeout_seconds(spec: KustomizationSpec) -> float:
    """Timeout for apply and health checks: spec.timeout, else interval minus 30s; at least 30s."""
    raw = spec.get("timeout")
    seconds = (
        parse_duration(raw)
        if raw is not None
        else parse_duration(spec["interval"]) - _MINIMUM_TIMEOUT_SECONDS
    )
    return max(seconds, _MINIMUM_TIMEOUT_SECONDS)


def retry_interval_seconds(spec: KustomizationSpec) -> float:
    """Delay before retrying a failed reconcile: spec.retryInterval, else the interval."""
    return parse_duration(spec.get("retryInterval") or spec["interval"])


def deletion_policy(spec: KustomizationSpec) -> DeletionPolicy:
    """spec.deletionPolicy with Flux's default, MirrorPrune (follow spec.prune)."""
    return spec.get("deletionPolicy", DEFAULT_DELETION_POLICY)

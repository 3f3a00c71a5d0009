"""``source.toolkit.fluxcd.io/v1`` GitRepository: Flux's field names, enums and defaults.

The TypedDicts below are how code reads a GitRepository as a plain dict, and
the source of its CRD schema.  Fields fluxd accepts but does not act on
(``provider``, ``serviceAccountName``) are still declared, so that
YAML written for Flux passes the apiserver's strict field validation.
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
    Format,
    Pattern,
    PrinterColumn,
)

GIT_REPOSITORY = ResourceKind(
    group="source.toolkit.fluxcd.io",
    version="v1",
    kind="GitRepository",
    plural="gitrepositories",
    short_names=("gitrepo",),
    categories=("all", "fluxcd", "fluxcd-sources"),
)

DEFAULT_GIT_TIMEOUT = "60s"
DEFAULT_BRANCH = "master"

GitVerificationMode = Literal["head", "HEAD", "Tag", "TagAndHEAD"]
GitProvider = Literal["generic", "aws", "azure", "github"]


class GitRepositoryRef(TypedDict, total=False):
    """The Git reference to resolve and monitor for changes; defaults to the 'master' branch."""

    branch: Annotated[str, Doc("Branch to check out, defaults to 'master' if nothing else is set.")]
    tag: Annotated[str, Doc("Tag to check out, takes precedence over Branch.")]
    semver: Annotated[str, Doc("SemVer tag expression to check out, takes precedence over Tag.")]
    name: Annotated[
        str,
        Doc("Reference to check out, e.g. refs/heads/main; precedes Branch, Tag and SemVer."),
    ]
    commit: Annotated[str, Doc("Commit SHA to check out, takes precedence over all other fields.")]


class GitRepositoryVerification(TypedDict):
    """Which Git object(s) to verify, with the public keys of trusted Git authors."""

    mode: NotRequired[
        Annotated[GitVerificationMode, Doc("Which Git object(s) to verify."), Default("HEAD")]
    ]
    secretRef: Annotated[
        LocalObjectReference,
        Doc(
            "Secret holding the public keys of trusted Git authors: PGP key rings under keys "
            "with the .asc suffix, SSH public keys under keys with the .sshpub suffix."
        ),
    ]


class GitRepositoryInclude(TypedDict):
    """Another GitRepository whose Artifact contents are included, and where."""

    repository: Annotated[LocalObjectReference, Doc("The GitRepository to include.")]
    fromPath: NotRequired[Annotated[str, Doc("Path to copy contents from, defaults to the root.")]]
    toPath: NotRequired[
        Annotated[str, Doc("Path to copy contents to, defaults to the included repository's name.")]
    ]


class GitRepositorySpec(TypedDict):
    """Configuration to produce an Artifact for a Git repository."""

    url: Annotated[
        str,
        Doc("Git repository URL, an HTTP/S or SSH address."),
        Pattern(r"^(http|https|ssh)://.*$"),
    ]
    secretRef: NotRequired[
        Annotated[
            LocalObjectReference,
            Doc(
                "Secret with credentials: 'username' and 'password' or 'bearerToken' for "
                "HTTPS, 'identity' and 'known_hosts' for SSH."
            ),
        ]
    ]
    provider: NotRequired[
        Annotated[GitProvider, Doc("Authentication provider; fluxd refuses all but 'generic'.")]
    ]
    serviceAccountName: NotRequired[
        Annotated[
            str, Doc("ServiceAccount for cloud provider authentication (not supported: refused).")
        ]
    ]
    interval: Annotated[
        str,
        Doc("Interval at which the repository URL is checked for updates."),
        Pattern(DURATION_PATTERN),
    ]
    timeout: NotRequired[
        Annotated[
            str,
            Doc("Timeout for Git operations like cloning, defaults to 60s."),
            Pattern(SHORT_DURATION_PATTERN),
            Default(DEFAULT_GIT_TIMEOUT),
        ]
    ]
    ref: NotRequired[Annotated[GitRepositoryRef, Doc("The Git reference to check out.")]]
    verify: NotRequired[
        Annotated[
            GitRepositoryVerification,
            Doc("Verification of the Git commit and/or tag signature(s)."),
        ]
    ]
    proxySecretRef: NotRequired[
        Annotated[LocalObjectReference, Doc("Secret with the proxy configuration ('address').")]
    ]
    ignore: NotRequired[
        Annotated[str, Doc("Exclusion patterns in .sourceignore (.gitignore) format.")]
    ]
    suspend: NotRequired[Annotated[bool, Doc("Suspend the reconciliation of this GitRepository.")]]
    recurseSubmodules: NotRequired[
        Annotated[bool, Doc("Initialise all submodules of the repository.")]
    ]
    include: NotRequired[
        Annotated[
            list[GitRepositoryInclude],
            Doc("GitRepositories whose Artifacts are included in this one's Artifact."),
        ]
    ]
    sparseCheckout: NotRequired[
        Annotated[
            list[str],
            Doc("Directories to check out; only these are included in the Artifact."),
        ]
    ]


class Artifact(TypedDict):
    """The output of a Source reconciliation."""

    path: Annotated[str, Doc("Relative path of the Artifact in the storage.")]
    url: Annotated[str, Doc("HTTP address the Artifact can be downloaded from.")]
    revision: Annotated[str, Doc("Source revision, e.g. 'main@sha1:<commit>'.")]
    digest: NotRequired[
        Annotated[
            str,
            Doc("Digest of the file in the form '<algorithm>:<checksum>'."),
            Pattern(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"),
        ]
    ]
    lastUpdateTime: Annotated[str, Doc("When the Artifact was last updated."), Format("date-time")]
    size: NotRequired[Annotated[int, Doc("Size of the file in bytes.")]]
    metadata: NotRequired[Annotated[dict[str, str], Doc("Upstream information.")]]


class GitRepositoryStatus(TypedDict, total=False):
    """The observed state of a Git repository."""

    observedGeneration: Annotated[int, Doc("Last observed generation of the GitRepository.")]
    conditions: Annotated[list[Condition], Doc("Conditions of the GitRepository.")]
    artifact: Annotated[Artifact, Doc("Artifact of the last successful reconciliation.")]
    includedArtifacts: Annotated[
        list[Artifact], Doc("Artifacts included as instructed by spec.include.")
    ]
    observedIgnore: Annotated[str, Doc("Exclusion patterns used for the current Artifact.")]
    observedRecurseSubmodules: Annotated[
        bool, Doc("Submodule setting used for the current Artifact.")
    ]
    observedInclude: Annotated[
        list[GitRepositoryInclude], Doc("Includes used for the current Artifact.")
    ]
    observedSparseCheckout: Annotated[
        list[str], Doc("Sparse checkout directories used for the current Artifact.")
    ]
    sourceVerificationMode: Annotated[GitVerificationMode, Doc("Verification mode last used.")]
    lastHandledReconcileAt: Annotated[
        str, Doc("Value of the most recent reconcile request annotation that was handled.")
    ]


class GitRepository(TypedDict):
    """GitRepository is the Schema for the gitrepositories API."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[GitRepositorySpec]
    status: NotRequired[Annotated[GitRepositoryStatus, Default({"observedGeneration": -1})]]


GIT_REPOSITORY_RESOURCE = CustomResource(
    kind=GIT_REPOSITORY,
    root=GitRepository,
    printer_columns=(
        PrinterColumn(name="URL", type="string", json_path=".spec.url"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    ),
)


def git_timeout_seconds(spec: GitRepositorySpec) -> float:
    """Timeout for Git operations: spec.timeout, else Flux's 60s."""
    return parse_duration(spec.get("timeout", DEFAULT_GIT_TIMEOUT))


def git_reference(spec: GitRepositorySpec) -> GitRepositoryRef:
    """spec.ref, or Flux's default when it names nothing: the 'master' branch."""
    ref = spec.get("ref") or {}
    if any(ref.get(key) for key in ("branch", "tag", "semver", "name", "commit")):
        return ref
    return {"branch": DEFAULT_BRANCH}

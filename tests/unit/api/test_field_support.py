"""Nothing accepted and ignored: every spec field of every CRD is acted on or refused.

Walks the generated schemas. A field is *refused* when it, or an object it
belongs to, is listed in ``fluxd.api.support.REFUSED``; every other field
must be read by fluxd's code (its name appears there as a string, the way
the controllers read plain dicts). A new field in a CRD
that nothing reads fails here until it is implemented or refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluxd.api import support
from fluxd.api.crds import custom_resources
from fluxd.api.support import REFUSED, REFUSED_KINDS, refused_fields

ROOT = Path(__file__).resolve().parents[3]
# Where fields are read: all of fluxd. TypedDicts declare fields as bare names, so only code
# that reads a plain dict (``spec.get("retryInterval")``) names one as a string.
READERS = [path for path in (ROOT / "fluxd").rglob("*.py") if path.name != "support.py"]


def _spec_paths(schema: dict[str, Any], prefix: str) -> Iterator[str]:
    for name, child in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}"
        yield path
        if child.get("type") == "array" and isinstance(child.get("items"), dict):
            yield from _spec_paths(child["items"], f"{path}[]")
        else:
            yield from _spec_paths(child, path)


def _fields() -> list[tuple[str, str]]:
    found = []
    for resource in custom_resources():
        schema = resource.openapi_schema()
        spec = (schema.get("properties") or {}).get("spec")
        if spec is None:
            continue
        found += [(resource.kind.kind, path) for path in _spec_paths(spec, "spec")]
    return found


def _refused(kind: str, path: str) -> bool:
    if kind in REFUSED_KINDS:
        return True
    return any(
        (path == refusal.path and not refusal.unless)
        or path.startswith((refusal.path + ".", refusal.path + "[]."))
        for refusal in REFUSED.get(kind, ())
    )


def _source_text() -> str:
    return "\n".join(path.read_text() for path in READERS)


SOURCE = _source_text()
FIELDS = _fields()


@pytest.mark.parametrize(
    ("kind", "path"),
    [pytest.param(kind, path, id=f"{kind}:{path}") for kind, path in FIELDS],
)
def test_every_field_is_read_or_refused(kind: str, path: str) -> None:
    if _refused(kind, path):
        return
    name = path.rsplit(".", 1)[-1].removesuffix("[]")
    read = re.search(rf"[\"']{re.escape(name)}[\"']", SOURCE)
    assert read, (
        f"{kind} {path} is in the CRD but nothing in fluxd reads {name!r}: "
        "implement it or refuse it in fluxd/api/support.py"
    )


def test_every_refusal_names_a_field_of_its_crd() -> None:
    paths = {(kind, path) for kind, path in FIELDS}
    for kind, refusals in REFUSED.items():
        for refusal in refusals:
            assert (kind, refusal.path) in paths, f"{kind} has no field {refusal.path}"


def test_a_refused_field_inside_list_items_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    refusal = support.Refused("spec.dependsOn[].readyExpr", "not implemented")
    monkeypatch.setattr(support, "REFUSED", {"Kustomization": (refusal,)})
    obj = {"spec": {"dependsOn": [{"name": "a"}, {"name": "b", "readyExpr": "true"}]}}
    assert [m.split(" ")[0] for m in refused_fields("Kustomization", obj)] == [refusal.path]


@pytest.mark.parametrize(
    ("kind", "obj", "named"),
    [
        pytest.param(
            "Kustomization",
            {"spec": {"decryption": {"provider": "sops", "serviceAccountName": "kms"}}},
            ["spec.decryption.serviceAccountName"],
            id="sops-workload-identity",
        ),
        pytest.param(
            "Kustomization",
            {"spec": {"kubeConfig": {"configMapRef": {"name": "eks"}}}},
            ["spec.kubeConfig.configMapRef"],
            id="kubeconfig-workload-identity",
        ),
        pytest.param("GitRepository", {"spec": {"provider": "azure"}}, ["spec.provider"], id="az"),
    ],
)
def test_a_refused_field_is_named(kind: str, obj: dict[str, Any], named: list[str]) -> None:
    messages = refused_fields(kind, obj)
    assert [message.split(" ")[0] for message in messages] == named
    assert all("is not supported by fluxd" in message for message in messages)


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        pytest.param("GitRepository", {"spec": {"provider": "generic"}}, id="generic-provider"),
        pytest.param(
            "GitRepository",
            {"spec": {"verify": {"mode": "HEAD", "secretRef": {"name": "keys"}}}},
            id="verify",
        ),
        pytest.param("GitRepository", {"spec": {"sparseCheckout": ["apps"]}}, id="sparse"),
        pytest.param("Receiver", {"spec": {"type": "gitea"}}, id="gitea"),
        pytest.param(
            "Receiver",
            {"spec": {"type": "harbor", "resourceFilter": "res.metadata.name == 'a'"}},
            id="harbor-filtered",
        ),
        pytest.param("Kustomization", {"spec": {"dependsOn": [{"name": "a"}]}}, id="plain"),
        pytest.param("Kustomization", {"spec": {"healthCheckExprs": []}}, id="empty-list"),
        pytest.param(
            "Kustomization",
            {"spec": {"kubeConfig": {"secretRef": {"name": "prod-kubeconfig"}}}},
            id="kubeconfig-secret",
        ),
        pytest.param(
            "Kustomization",
            {"spec": {"dependsOn": [{"name": "a", "readyExpr": "true"}]}},
            id="readyExpr",
        ),
        pytest.param(
            "Kustomization",
            {"spec": {"healthCheckExprs": [{"apiVersion": "x.io/v1", "current": "true"}]}},
            id="healthCheckExprs",
        ),
    ],
)
def test_what_fluxd_does_is_not_refused(kind: str, obj: dict[str, Any]) -> None:
    assert refused_fields(kind, obj) == []

"""Install fluxd's generated CRDs into the test cluster."""

from __future__ import annotations

from pathlib import Path

import yaml

from testenv.api import Api, wait_for

CRD_DIR = Path(__file__).resolve().parents[2] / "manifests" / "crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_documents() -> list[dict[str, object]]:
    documents: list[dict[str, object]] = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def install_crds(api: Api) -> list[str]:
    return install_documents(api, crd_documents())


def install_documents(api: Api, documents: list[dict[str, object]]) -> list[str]:
    """Apply CRDs and wait until they are served; their names."""
    names = []
    for crd in documents:
        name = crd["metadata"]["name"]  # type: ignore[index]
        api.apply(f"{CRD_PATH}/{name}", crd, manager="fluxd-tests")
        names.append(str(name))

    def established() -> bool:
        for name in names:
            conditions = api.get(f"{CRD_PATH}/{name}").get("status", {}).get("conditions", [])
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    wait_for(established, timeout=60, what="CRDs established")
    return names

"""Install other projects' CRDs (Argo Rollouts, Secrets Store CSI driver) into the test cluster.

The CRDs come from the projects' own Go modules, at the versions pinned in
testenv/go/crds/go.mod (checked against its go.sum): ``go mod download -json``
names the module's directory in the Go module cache, and the manifests are
read from there. Nothing is copied into the repository; once downloaded the
module cache serves them offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testenv.api import Api, wait_for
from tests.support.crds import CRD_PATH

CRDS_MODULE_DIR = Path(__file__).resolve().parents[2] / "testenv" / "go" / "crds"


@dataclass(frozen=True)
class ThirdPartyCrds:
    """Where in a module its CRD manifests are."""

    module: str
    files: tuple[str, ...]


ARGO_ROLLOUTS = ThirdPartyCrds(
    "github.com/argoproj/argo-rollouts", ("manifests/crds/rollout-crd.yaml",)
)
SECRETS_STORE_CSI = ThirdPartyCrds(
    "sigs.k8s.io/secrets-store-csi-driver",
    (
        "deploy/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml",
        "deploy/secrets-store.csi.x-k8s.io_secretproviderclasspodstatuses.yaml",
    ),
)


class ModuleDownloadError(RuntimeError):
    """``go mod download`` refused a module (the exact command and its error are in the message)."""


def pinned_version(module: str) -> str:
    """The version of ``module`` that testenv/go/crds/go.mod requires."""
    text = (CRDS_MODULE_DIR / "go.mod").read_text()
    found = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, flags=re.MULTILINE)
    if found is None:
        raise ModuleDownloadError(f"{module} is not required by {CRDS_MODULE_DIR / 'go.mod'}")
    return found.group(1)


def module_dir(module: str) -> Path:
    """The module's directory in the Go module cache, downloading it if needed."""
    go = shutil.which("go")
    if go is None:
        raise ModuleDownloadError("the Go toolchain ('go') is not on PATH")
    command = [go, "mod", "download", "-json", f"{module}@{pinned_version(module)}"]
    env = dict(os.environ, GOFLAGS="-mod=readonly", GOTOOLCHAIN="local")
    result = subprocess.run(
        command, cwd=CRDS_MODULE_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    info: dict[str, Any] = {}
    if result.stdout.strip():
        info = json.loads(result.stdout)
    if result.returncode != 0 or info.get("Error") or not info.get("Dir"):
        error = info.get("Error") or result.stderr.strip()
        raise ModuleDownloadError(f"{' '.join(command)} (in {CRDS_MODULE_DIR}): {error}")
    return Path(str(info["Dir"]))


def crd_documents(crds: ThirdPartyCrds) -> list[dict[str, Any]]:
    root = module_dir(crds.module)
    documents: list[dict[str, Any]] = []
    for name in crds.files:
        documents.extend(d for d in yaml.safe_load_all((root / name).read_text()) if d)
    return documents


def install_third_party_crds(api: Api, *crds: ThirdPartyCrds) -> list[str]:
    """Apply the CRDs and wait until the apiserver serves them; returns their names."""
    names: list[str] = []
    for source in crds:
        for crd in crd_documents(source):
            name = str(crd["metadata"]["name"])
            api.apply(f"{CRD_PATH}/{name}", crd, manager="fluxd-tests")
            names.append(name)

    def established() -> bool:
        for name in names:
            conditions = api.get(f"{CRD_PATH}/{name}").get("status", {}).get("conditions", [])
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    wait_for(established, timeout=60, what="third-party CRDs established")
    return names

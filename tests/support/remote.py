"""A kubeconfig a user would put in a Secret for a Kustomization's ``spec.kubeConfig``.

Self-contained (certificates inline, no file paths), as kustomize-controller
requires, made from a test cluster's PKI.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml


def _inline(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def embedded_kubeconfig(
    *,
    server: str,
    ca_cert: Path,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    user: dict[str, Any] | None = None,
) -> str:
    """A kubeconfig for ``server`` with the CA and client certificate inlined."""
    credentials: dict[str, Any] = dict(user or {})
    if client_cert is not None and client_key is not None:
        credentials["client-certificate-data"] = _inline(client_cert)
        credentials["client-key-data"] = _inline(client_key)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "remote",
                "cluster": {"server": server, "certificate-authority-data": _inline(ca_cert)},
            }
        ],
        "users": [{"name": "remote-admin", "user": credentials}],
        "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote-admin"}}],
        "current-context": "remote",
    }
    return yaml.safe_dump(config, sort_keys=False)

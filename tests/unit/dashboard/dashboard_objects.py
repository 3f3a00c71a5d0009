"""Cached objects as the controllers' informers hold them, for the dashboard tests."""

from __future__ import annotations

from typing import Any

from fluxd.dashboard import Journal, State

TOKEN = "gitea-personal-access-token"
SHA_OLD = "a" * 40
SHA_NEW = "b" * 40


def git_repository() -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"namespace": "flux-system", "name": "k3s-private-repo"},
        "spec": {
            # Credentials in the URL are the user's mistake; the page must not repeat them.
            "url": f"http://k3s:{TOKEN}@gitea.example:3000/k3s/k3s-private.git",
            "ref": {"branch": "master"},
        },
        "status": {
            "artifact": {
                "revision": f"master@sha1:{SHA_NEW}",
                "lastUpdateTime": "2026-12-01T10:05:00Z",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": f"stored artifact for revision 'master@sha1:{SHA_NEW}'",
                }
            ],
        },
    }


def kustomization(
    name: str, entries: list[str], *, path: str = "./realm/ix", ready: str = "True"
) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"namespace": "flux-system", "name": name},
        "spec": {
            "path": path,
            "sourceRef": {"kind": "GitRepository", "name": "k3s-private-repo"},
        },
        "status": {
            "lastAppliedRevision": f"master@sha1:{SHA_NEW}",
            "lastAttemptedRevision": f"master@sha1:{SHA_NEW}",
            "inventory": {"entries": [{"id": entry, "v": "v1"} for entry in entries]},
            "history": [
                {
                    "digest": "sha256:2",
                    "firstReconciled": "2026-12-01T10:05:00Z",
                    "lastReconciled": "2026-12-01T10:05:00Z",
                    "lastReconciledStatus": "ReconciliationSucceeded",
                    "metadata": {"revision": f"master@sha1:{SHA_NEW}"},
                },
                {
                    "digest": "sha256:1",
                    "firstReconciled": "2026-12-01T09:00:00Z",
                    "lastReconciled": "2026-12-01T09:00:00Z",
                    "lastReconciledStatus": "ReconciliationSucceeded",
                    "metadata": {"revision": f"master@sha1:{SHA_OLD}"},
                },
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "ReconciliationSucceeded" if ready == "True" else "BuildFailed",
                    "message": f"Applied revision: master@sha1:{SHA_NEW}"
                    if ready == "True"
                    else "kustomize build failed: <missing> resource",
                }
            ],
        },
    }


def seed_state(journal: Journal | None = None, *, leading: bool = True) -> State:
    """The seed: an apps Kustomization that applies realm-ix, which applies the Secret."""
    apps = kustomization(
        "apps",
        ["flux-system_realm-ix_kustomize.toolkit.fluxcd.io_Kustomization", "_realm__Namespace"],
        path="./apps",
    )
    realm = kustomization(
        "realm-ix",
        ["realm_realm-config-ix__Secret", "realm_realm_apps_Deployment"],
    )
    return State(
        identity="fluxd-0_abc",
        leading=leading,
        sources=[git_repository()],
        kustomizations=[apps, realm],
        journal=journal or Journal(),
    )

"""The user's own objects from the seed scenario, and Flux-style neighbours of them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

# Verbatim from the seed scenario: fluxd must accept it as written.
SEED_GIT_REPOSITORY = """
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: k3s-private-repo
  namespace: flux-system
spec:
  interval: 1m
  # in-cluster DNS name, so syncing does not depend on the public internet
  url: http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git
  ref:
    branch: master
  secretRef:
    name: gitea-auth
"""

# The Kustomization the seed describes: applies realm/ix from the GitRepository.
SEED_KUSTOMIZATION = """
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: realm-ix
  namespace: flux-system
spec:
  interval: 10m
  path: ./realm/ix
  prune: true
  sourceRef:
    kind: GitRepository
    name: k3s-private-repo
"""


@pytest.fixture
def git_repository() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SEED_GIT_REPOSITORY)
    return document


@pytest.fixture
def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SEED_KUSTOMIZATION)
    return document

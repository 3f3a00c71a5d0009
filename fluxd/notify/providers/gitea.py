"""Gitea commit status: the Kustomization's result shown on the commit it applied.

``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`` with ``Authorization:
token <token>``; progressing events become ``pending``, info ``success`` and
errors ``failure``. Like Flux, the newest status of the same context is read
first and an identical one is not posted again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.providers.commit_status import (
    CommitStatusProvider,
    RepositoryAddress,
    StatusEndpoints,
)


class GiteaProvider(CommitStatusProvider):
    provider_type: ClassVar[str] = "gitea"
    token_purpose: ClassVar[str] = "a Gitea access token with write:repository"
    # Posted as "state", listed back as "status" (Gitea's CommitStatus JSON).
    listed_state_field: ClassVar[str] = "status"

    def endpoints(self, repository: RepositoryAddress, sha: str) -> StatusEndpoints:
        url = f"{repository.base_url}/api/v1/repos/{repository.api_path()}/statuses/{sha}"
        return StatusEndpoints(listing=f"{url}?page=1&limit=50", post=url)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.config.token}", "Accept": "application/json"}

    def payload(self, *, state: str, description: str, context: str) -> dict[str, Any]:
        return {"state": state, "target_url": "", "description": description, "context": context}

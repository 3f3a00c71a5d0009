"""GitHub commit status, as Flux's ``github`` provider posts it.

The API lives at ``api.github.com`` for github.com and at ``/api/v3`` on
GitHub Enterprise hosts. Progressing events are not posted (Flux skips them
for GitHub); info becomes ``success`` and errors ``failure``. An identical
newest status of the same context is not posted again.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from fluxd.notify.providers.commit_status import (
    ContextStatusProvider,
    RepositoryAddress,
    StatusEndpoints,
)


def github_api_base(repository: RepositoryAddress) -> str:
    """Where the REST API of the repository's server lives."""
    if urlsplit(repository.base_url).hostname in ("github.com", "www.github.com"):
        return "https://api.github.com"
    return f"{repository.base_url}/api/v3"


class GitHubProvider(ContextStatusProvider):
    provider_type: ClassVar[str] = "github"
    token_purpose: ClassVar[str] = "a GitHub token allowed to write commit statuses"

    def endpoints(self, repository: RepositoryAddress, sha: str) -> StatusEndpoints:
        api = f"{github_api_base(repository)}/repos/{repository.api_path()}"
        return StatusEndpoints(
            listing=f"{api}/commits/{sha}/statuses?per_page=50", post=f"{api}/statuses/{sha}"
        )

    def headers(self) -> dict[str, str]:
        return github_headers(self.config.token)


def github_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}

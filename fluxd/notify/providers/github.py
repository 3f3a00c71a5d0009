"""GitHub commit status, as Flux's ``github`` provider posts it.

The API lives at ``api.github.com`` for github.com and at ``/api/v3`` on
GitHub Enterprise hosts. Progressing events are not posted (Flux skips them
for GitHub); info becomes ``success`` and errors ``failure``. An identical
newest status of the same context is not posted again.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from fluxd.notify.event import REASON_PROGRESSING, Event
from fluxd.notify.providers.base import HttpProvider
from fluxd.notify.providers.commit_status import (
    RepositoryAddress,
    commit_sha,
    commit_state,
    is_duplicate,
    parse_repository_address,
    status_context,
    status_description,
)
from fluxd.notify.transport import exchange


def github_api_base(repository: RepositoryAddress) -> str:
    if urlsplit(repository.base_url).hostname in ("github.com", "www.github.com"):
        return "https://api.github.com"
    return f"{repository.base_url}/api/v3"


class GitHubProvider(HttpProvider):
    provider_type: ClassVar[str] = "github"

    def validate(self) -> None:
        super().validate()
        self.require_token("a GitHub token allowed to write commit statuses")
        parse_repository_address(self.config.address, provider_type=self.provider_type)

    async def send(self, event: Event) -> None:
        if event.reason == REASON_PROGRESSING:
            return
        repository = parse_repository_address(self.config.address, provider_type=self.provider_type)
        sha = commit_sha(event, provider_type=self.provider_type)
        state = commit_state(event, provider_type=self.provider_type)
        context = status_context(event, provider_uid=self.config.uid)
        description = status_description(event)
        api = f"{github_api_base(repository)}/repos/{repository.api_path()}"
        headers = {
            "Authorization": f"Bearer {self.config.token}",
            "Accept": "application/vnd.github+json",
        }
        listing = await exchange(
            self.session,
            config=self.config,
            url=f"{api}/commits/{sha}/statuses?per_page=50",
            method="GET",
            headers=headers,
        )
        if is_duplicate(listing.json(), context=context, state=state, description=description):
            return
        await exchange(
            self.session,
            config=self.config,
            url=f"{api}/statuses/{sha}",
            payload={"state": state, "description": description, "context": context},
            headers=headers,
        )

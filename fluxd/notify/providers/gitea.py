"""Gitea commit status: the Kustomization's result shown on the commit it applied.

``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`` with ``Authorization:
token <token>``; progressing events become ``pending``, info ``success`` and
errors ``failure``. Like Flux, the newest status of the same context is read
first and an identical one is not posted again.
"""

from __future__ import annotations

from typing import ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import HttpProvider
from fluxd.notify.providers.commit_status import (
    commit_sha,
    commit_state,
    is_duplicate,
    parse_repository_address,
    status_context,
    status_description,
)
from fluxd.notify.transport import exchange


class GiteaProvider(HttpProvider):
    provider_type: ClassVar[str] = "gitea"

    def validate(self) -> None:
        super().validate()
        self.require_token("a Gitea access token with write:repository")
        parse_repository_address(self.config.address, provider_type=self.provider_type)

    async def send(self, event: Event) -> None:
        repository = parse_repository_address(self.config.address, provider_type=self.provider_type)
        sha = commit_sha(event, provider_type=self.provider_type)
        state = commit_state(event, provider_type=self.provider_type)
        context = status_context(event, provider_uid=self.config.uid)
        description = status_description(event)
        url = f"{repository.base_url}/api/v1/repos/{repository.api_path()}/statuses/{sha}"
        headers = {"Authorization": f"token {self.config.token}", "Accept": "application/json"}
        listing = await exchange(
            self.session,
            config=self.config,
            url=f"{url}?page=1&limit=50",
            method="GET",
            headers=headers,
        )
        if is_duplicate(listing.json(), context=context, state=state, description=description):
            return
        await exchange(
            self.session,
            config=self.config,
            url=url,
            payload={
                "state": state,
                "target_url": "",
                "description": description,
                "context": context,
            },
            headers=headers,
        )

"""GitHub ``repository_dispatch``, as Flux's ``githubdispatch`` provider sends it.

``POST /repos/{owner}/{repo}/dispatches`` with ``event_type``
``{Kind}/{name}.{namespace}`` and the Flux event JSON as ``client_payload``,
so a GitHub Actions workflow can react to a reconciliation. The API base is
the commit status provider's (api.github.com, or ``/api/v3`` on Enterprise).
Events that only update a commit status are skipped (``ChatProvider``), as in Flux.
"""

from __future__ import annotations

from typing import ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.providers.commit_status import (
    parse_repository_address,
    require_repository_address,
)
from fluxd.notify.providers.github import github_api_base, github_headers
from fluxd.notify.transport import exchange


def dispatch_event_type(event: Event) -> str:
    involved = event.involved_object
    return f"{involved.kind}/{involved.name}.{involved.namespace}"


class GitHubDispatchProvider(ChatProvider):
    provider_type: ClassVar[str] = "githubdispatch"

    def validate(self) -> None:
        require_repository_address(self.config.address, provider_type=self.provider_type)
        self.require_token("a GitHub token allowed to create repository dispatch events")
        parse_repository_address(self.config.address, provider_type=self.provider_type)

    async def post(self, event: Event) -> None:
        repository = parse_repository_address(self.config.address, provider_type=self.provider_type)
        await exchange(
            self.session,
            config=self.config,
            url=f"{github_api_base(repository)}/repos/{repository.api_path()}/dispatches",
            payload={
                "event_type": dispatch_event_type(event),
                "client_payload": event.to_json_dict(),
            },
            headers=github_headers(self.config.token),
        )

"""GitLab commit status, as Flux's ``gitlab`` provider sets it.

``POST /api/v4/projects/{id}/statuses/{sha}`` with ``PRIVATE-TOKEN``; the
project id is the whole path of the address (nested groups included, or a
numeric project id), URL-encoded. Progressing events are skipped, info
becomes ``success`` and errors ``failed``. The statuses of the same name on
the commit are read first, and an identical one is not set again.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final
from urllib.parse import quote, urlencode

from fluxd.notify.event import SEVERITY_ERROR, SEVERITY_INFO
from fluxd.notify.providers.commit_status import (
    CommitStatus,
    CommitStatusProvider,
    GitAddress,
    parse_git_address,
)
from fluxd.notify.transport import exchange

GITLAB_STATES: Final = {SEVERITY_INFO: "success", SEVERITY_ERROR: "failed"}


def gitlab_project_api(address: GitAddress) -> str:
    """``{host}/api/v4/projects/{id}``: GitLab takes a project path as one escaped segment."""
    return f"{address.host}/api/v4/projects/{quote(address.path, safe='')}"


def gitlab_headers(token: str) -> dict[str, str]:
    return {"PRIVATE-TOKEN": token, "Accept": "application/json"}


class GitLabProvider(CommitStatusProvider):
    provider_type: ClassVar[str] = "gitlab"
    token_purpose: ClassVar[str] = "a GitLab access token with the api scope"
    states: ClassVar[dict[str, str]] = GITLAB_STATES

    def validate_address(self) -> None:
        parse_git_address(self.config.address, provider_type=self.provider_type)

    async def write(self, status: CommitStatus) -> None:
        project = gitlab_project_api(
            parse_git_address(self.config.address, provider_type=self.provider_type)
        )
        headers = gitlab_headers(self.config.token)
        listing = await exchange(
            self.session,
            config=self.config,
            method="GET",
            url=f"{project}/repository/commits/{status.sha}/statuses?"
            + urlencode({"name": status.key}),
            headers=headers,
        )
        if _is_duplicate(listing.json(), status):
            return
        await exchange(
            self.session,
            config=self.config,
            url=f"{project}/statuses/{status.sha}",
            payload={"state": status.state, "name": status.key, "description": status.description},
            headers=headers,
        )


def _is_duplicate(statuses: Any, status: CommitStatus) -> bool:
    """Any status of this commit with the same name, state and description (Flux's rule)."""
    if not isinstance(statuses, list):
        return False
    return any(
        isinstance(existing, dict)
        and existing.get("sha") == status.sha
        and existing.get("status") == status.state
        and existing.get("description") == status.description
        and existing.get("name") == status.key
        for existing in statuses
    )

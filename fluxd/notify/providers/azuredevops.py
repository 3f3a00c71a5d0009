"""Azure DevOps commit status, as Flux's ``azuredevops`` provider creates it.

The address is ``https://dev.azure.com/{organization}/{project}/_git/{repository}``;
statuses go to
``{host}/{organization}/{project}/_apis/git/repositories/{repository}/commits/{sha}/statuses``
with a personal access token (basic auth, empty user), API version
``6.0-preview.1`` in the ``Accept`` header as the Go client sends it. The
status context is genre ``fluxcd`` (``fluxcd:<summary>`` when the Alert sets a
summary) and name the status key. Progressing events are skipped, info becomes
``succeeded`` and errors ``error``; the first status of the same context
decides whether an identical one would be created again. Managed identity
(no token, or ``spec.serviceAccountName``) is not available.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Final
from urllib.parse import quote

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import META_SUMMARY, SEVERITY_ERROR, SEVERITY_INFO, Event
from fluxd.notify.providers.commit_status import (
    CommitStatus,
    CommitStatusProvider,
    parse_git_address,
)
from fluxd.notify.transport import exchange

AZURE_DEVOPS_STATES: Final = {SEVERITY_INFO: "succeeded", SEVERITY_ERROR: "error"}
API_VERSION: Final = "6.0-preview.1"
GENRE: Final = "fluxcd"


def status_genre(event: Event) -> str:
    summary = event.metadata.get(META_SUMMARY)
    return f"{GENRE}:{summary}" if summary is not None else GENRE


class AzureDevOpsProvider(CommitStatusProvider):
    provider_type: ClassVar[str] = "azuredevops"
    token_purpose: ClassVar[str] = (
        "an Azure DevOps personal access token; managed identity is not available"
    )
    states: ClassVar[dict[str, str]] = AZURE_DEVOPS_STATES

    def validate_address(self) -> None:
        self._statuses_api("0")

    def _statuses_api(self, sha: str) -> str:
        address = parse_git_address(self.config.address, provider_type=self.provider_type)
        segments = address.path.split("/")
        if len(segments) != 4:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason=f"invalid repository id {address.path!r}: expected "
                "<organization>/<project>/_git/<repository>",
            )
        organization, project, _, repository = (quote(part, safe="") for part in segments)
        return (
            f"{address.host}/{organization}/{project}/_apis/git/repositories/{repository}"
            f"/commits/{sha}/statuses"
        )

    async def write(self, status: CommitStatus) -> None:
        url = self._statuses_api(status.sha)
        credentials = base64.b64encode(f":{self.config.token}".encode()).decode("ascii")
        headers = {
            "Authorization": f"Basic {credentials}",
            "Accept": f"application/json;api-version={API_VERSION}",
        }
        genre = status_genre(status.event)
        listing = await exchange(
            self.session, config=self.config, method="GET", url=url, headers=headers
        )
        if _is_duplicate(listing.json(), status, genre=genre):
            return
        await exchange(
            self.session,
            config=self.config,
            url=url,
            payload={
                "state": status.state,
                "description": status.description,
                "context": {"genre": genre, "name": status.key},
            },
            headers={**headers, "Content-Type": "application/json; charset=utf-8"},
        )


def _is_duplicate(listing: Any, status: CommitStatus, *, genre: str) -> bool:
    """The first complete status of our context decides, as in Flux."""
    statuses = listing.get("value") if isinstance(listing, dict) else listing
    if not isinstance(statuses, list):
        return False
    for existing in statuses:
        if not isinstance(existing, dict):
            continue
        context = existing.get("context")
        if not isinstance(context, dict) or None in (
            context.get("name"),
            context.get("genre"),
            existing.get("state"),
            existing.get("description"),
        ):
            continue
        if context["name"] == status.key and context["genre"] == genre:
            return bool(
                existing["state"] == status.state and existing["description"] == status.description
            )
    return False

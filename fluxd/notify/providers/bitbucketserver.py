"""Bitbucket Server / Data Center build status, as Flux's ``bitbucketserver`` provider posts it.

The address is the repository's HTTPS clone URL, ``{base}/scm/{project}/{repo}.git``;
statuses go to ``{base}/rest/api/latest/projects/{project}/repos/{repo}/commits/{sha}/builds``
with ``Authorization: Bearer <token>``, or basic auth from ``username``
(Secret or ``spec.username``) and ``password``. The key is the SHA-1 hex of the
status key; the name ``kind/name [description]`` (the server shows the name, so
Flux puts the description in it too) and the url the Provider address.
Progressing events are skipped, info becomes ``SUCCESSFUL`` and errors
``FAILED``; the build of the same key is read first and an identical one
(key, state, name and description) is not posted again.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.providers.bitbucket import BITBUCKET_STATES, basic_auth, sha1_hex
from fluxd.notify.providers.commit_status import CommitStatus, CommitStatusProvider, status_name
from fluxd.notify.transport import exchange

_SCM = "/scm/"


class BitbucketServerProvider(CommitStatusProvider):
    provider_type: ClassVar[str] = "bitbucketserver"
    states: ClassVar[dict[str, str]] = BITBUCKET_STATES

    def validate_credentials(self) -> None:
        if not self.config.token and not (self.config.username and self.config.password):
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="invalid credentials, expected to be one of username/password or API Token",
            )

    def validate_address(self) -> None:
        self._commits_api()

    def _commits_api(self) -> str:
        parts = urlsplit(self.config.address.strip())
        if parts.scheme not in ("http", "https"):
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="address must be the repository's http(s) clone URL "
                "(https://host/scm/<project>/<repository>.git)",
            )
        path = parts.path.removesuffix(".git")
        context, scm, repository_id = path.rpartition(_SCM)
        segments = repository_id.split("/")
        if not scm or len(segments) != 2 or not all(segments):
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="address must be the repository's http(s) clone URL "
                "(https://host/scm/<project>/<repository>.git)",
            )
        project, repository = (quote(segment, safe="") for segment in segments)
        api_path = f"{context}/rest/api/latest/projects/{project}/repos/{repository}/commits"
        return urlunsplit((parts.scheme, parts.netloc, api_path, "", ""))

    def _headers(self) -> dict[str, str]:
        if self.config.token:
            authorization = f"Bearer {self.config.token}"
        else:
            authorization = basic_auth(self.config.username, self.config.password)
        return {
            "Authorization": authorization,
            "x-atlassian-token": "no-check",
            "x-requested-with": "XMLHttpRequest",
        }

    async def write(self, status: CommitStatus) -> None:
        name = f"{status_name(status.event)} [{status.description}]"
        key = sha1_hex(status.key)
        builds = f"{self._commits_api()}/{status.sha}/builds"
        headers = self._headers()
        existing = None
        try:
            reply = await exchange(
                self.session,
                config=self.config,
                method="GET",
                url=f"{builds}?{urlencode({'key': key})}",
                headers=headers,
            )
            existing = reply.json()
        except DeliveryError as error:
            if error.status != 404:
                raise
        if isinstance(existing, dict) and (
            existing.get("key"),
            existing.get("state"),
            existing.get("description"),
            existing.get("name"),
        ) == (key, status.state, status.description, name):
            return
        await exchange(
            self.session,
            config=self.config,
            url=builds,
            payload={
                "description": status.description,
                "key": key,
                "name": name,
                "state": status.state,
                "url": self.config.address,
            },
            headers=headers,
        )

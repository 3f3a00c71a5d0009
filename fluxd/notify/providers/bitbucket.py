"""Bitbucket Cloud build status, as Flux's ``bitbucket`` provider creates it.

The Secret's ``token`` is ``<username>:<app-password>`` (HTTP basic auth);
the address names ``owner/repository``. Statuses go to
``https://api.bitbucket.org/2.0/repositories/{owner}/{repo}/commit/{sha}/statuses/build``
under the SHA-1 hex of the status key (Bitbucket keys hold 40 characters at
most), named ``kind/name``. Progressing events are skipped, info becomes
``SUCCESSFUL`` and errors ``FAILED``; the status of the same key is read first
and one with the same state and description is not created again.

Flux always calls api.bitbucket.org. fluxd does so for bitbucket.org addresses
and calls ``{host}/2.0`` for any other host, so an API gateway can stand in.
"""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar, Final
from urllib.parse import quote, urlsplit

from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import SEVERITY_ERROR, SEVERITY_INFO
from fluxd.notify.providers.commit_status import (
    CommitStatus,
    CommitStatusProvider,
    parse_git_address,
    status_name,
)
from fluxd.notify.transport import exchange

BITBUCKET_STATES: Final = {SEVERITY_INFO: "SUCCESSFUL", SEVERITY_ERROR: "FAILED"}
_CLOUD_HOSTS: Final = frozenset({"bitbucket.org", "www.bitbucket.org"})


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class BitbucketProvider(CommitStatusProvider):
    provider_type: ClassVar[str] = "bitbucket"
    token_purpose: ClassVar[str] = "<username>:<app-password>"
    states: ClassVar[dict[str, str]] = BITBUCKET_STATES

    def validate_credentials(self) -> None:
        self.require_token(self.token_purpose)
        if len(self.config.token.split(":")) != 2:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="invalid token format, expected to be <user>:<password>",
            )

    def validate_address(self) -> None:
        self._repository_api()

    def _repository_api(self) -> str:
        address = parse_git_address(self.config.address, provider_type=self.provider_type)
        segments = address.path.split("/")
        if len(segments) != 2 or not all(segments):
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason=f"invalid repository id {address.path!r}: expected <owner>/<repository>",
            )
        host = urlsplit(address.host).hostname or ""
        api = "https://api.bitbucket.org/2.0" if host in _CLOUD_HOSTS else f"{address.host}/2.0"
        owner, repository = (quote(segment, safe="") for segment in segments)
        return f"{api}/repositories/{owner}/{repository}"

    async def write(self, status: CommitStatus) -> None:
        username, _, password = self.config.token.partition(":")
        headers = {"Authorization": basic_auth(username, password), "Accept": "application/json"}
        key = sha1_hex(status.key)
        builds = f"{self._repository_api()}/commit/{status.sha}/statuses/build"
        existing = None
        try:
            reply = await exchange(
                self.session,
                config=self.config,
                method="GET",
                url=f"{builds}/{key}",
                headers=headers,
            )
            existing = reply.json()
        except DeliveryError as error:
            if error.status != 404:
                raise
        if (
            isinstance(existing, dict)
            and existing.get("state") == status.state
            and existing.get("description") == status.description
        ):
            return
        await exchange(
            self.session,
            config=self.config,
            url=builds,
            payload={
                "state": status.state,
                "key": key,
                "name": status_name(status.event),
                "description": status.description,
                "url": "https://bitbucket.org",
            },
            headers=headers,
        )

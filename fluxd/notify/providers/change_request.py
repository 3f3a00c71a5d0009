"""What the pull/merge request comment providers share: which request, which comment, what text.

Flux's ``githubpullrequestcomment``, ``gitlabmergerequestcomment`` and
``giteapullrequestcomment`` keep one comment per Provider and object on the
change request named by the event's ``change_request`` metadata (from the
object's ``event.toolkit.fluxcd.io/change_request`` annotation); events
without it are not theirs. The comment carries a hidden marker
``<!-- <prefix>:<provider uid>/<Kind>/<namespace>/<name> -->``; the provider
finds the comment of its own user holding that marker among the first 100 and
edits it, or creates it. The body is Flux's Markdown "Flux Status" post.
Events that only update a commit status are skipped, as Flux skips them for
every type but the commit status and generic ones (``ChatProvider``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import SEVERITY_ERROR, Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.providers.commit_status import (
    RepositoryAddress,
    parse_repository_address,
    require_repository_address,
)
from fluxd.notify.transport import exchange

META_CHANGE_REQUEST: Final = "change_request"
PR_COMMENT_KEY_PREFIX: Final = "flux-pr-comment-key"
MR_COMMENT_KEY_PREFIX: Final = "flux-mr-comment-key"
# Emoji presentation (VS16), as Flux writes them.
_ERROR_MARK: Final = "\N{WARNING SIGN}\ufe0f"
_INFO_MARK: Final = "\N{INFORMATION SOURCE}\ufe0f"


def markdown_post(event: Event) -> str:
    """Flux's ``formatMarkdownPost``: heading, severity mark and object, message, metadata."""
    mark = _ERROR_MARK if event.severity == SEVERITY_ERROR else _INFO_MARK
    involved = event.involved_object
    lines = "".join(
        f"* `{key}`: {value}\n"
        for key, value in sorted(event.metadata.items())
        if key != META_CHANGE_REQUEST
    )
    return (
        f"## Flux Status\n\n{mark} {involved.kind}/{involved.namespace}/{involved.name}"
        f"\n\n{event.message}\n\nMetadata:\n{lines}"
    )


def comment_marker(event: Event, *, prefix: str, provider_uid: str) -> str:
    involved = event.involved_object
    key = f"{provider_uid}/{involved.kind}/{involved.namespace}/{involved.name}"
    return f"<!-- {prefix}:{key} -->"


def change_request_number(event: Event, *, provider_type: str) -> int | None:
    """The request number of ``event``; ``None`` when it has none (not for this provider)."""
    raw = event.metadata.get(META_CHANGE_REQUEST)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise DeliveryError(
            provider_type=provider_type,
            reason=f"invalid {META_CHANGE_REQUEST!r} metadata value {raw!r}",
            retryable=False,
        ) from None


class ChangeRequestCommentProvider(ChatProvider):
    """One comment per object on a change request; subclasses speak the forge's API."""

    comment_key_prefix: ClassVar[str] = PR_COMMENT_KEY_PREFIX
    token_purpose: ClassVar[str] = "a token allowed to read and write comments"
    edit_method: ClassVar[str] = "PATCH"

    _login: str | None = None

    def validate(self) -> None:
        require_repository_address(self.config.address, provider_type=self.provider_type)
        self.require_token(self.token_purpose)
        self.validate_address()
        if not self.config.uid:
            # The comment marker holds it: without one, comments could not be found again.
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="provider UID cannot be empty"
            )

    def validate_address(self) -> None:
        self.repository()

    def repository(self) -> RepositoryAddress:
        return parse_repository_address(self.config.address, provider_type=self.provider_type)

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def user_url(self) -> str:
        """Where the forge says who the token belongs to."""
        raise NotImplementedError

    def login_of(self, user: Any) -> str:
        return str(user.get("login", "")) if isinstance(user, dict) else ""

    def comments_url(self, number: int) -> str:
        raise NotImplementedError

    def comment_url(self, number: int, comment_id: object) -> str:
        raise NotImplementedError

    def author_of(self, comment: dict[str, Any]) -> str:
        return self.login_of(comment.get("user"))

    def listing_query(self) -> str:
        """How the forge is asked for the first 100 comments, oldest first."""
        raise NotImplementedError

    async def login(self) -> str:
        """The token's user, asked once: comments of other users are never edited."""
        if self._login is None:
            reply = await exchange(
                self.session,
                config=self.config,
                method="GET",
                url=self.user_url(),
                headers=self.headers(),
            )
            login = self.login_of(reply.json())
            if not login:
                raise DeliveryError(
                    provider_type=self.provider_type,
                    reason="the forge named no user for the token",
                    retryable=False,
                )
            self._login = login
        return self._login

    async def post(self, event: Event) -> None:
        number = change_request_number(event, provider_type=self.provider_type)
        if number is None:
            return
        marker = comment_marker(event, prefix=self.comment_key_prefix, provider_uid=self.config.uid)
        body = f"{marker}\n\n{markdown_post(event)}"
        login = await self.login()
        headers = self.headers()
        listing = await exchange(
            self.session,
            config=self.config,
            method="GET",
            url=self.comments_url(number) + self.listing_query(),
            headers=headers,
        )
        comments = listing.json()
        for comment in comments if isinstance(comments, list) else ():
            if (
                isinstance(comment, dict)
                and self.author_of(comment) == login
                and marker in str(comment.get("body", ""))
            ):
                await exchange(
                    self.session,
                    config=self.config,
                    method=self.edit_method,
                    url=self.comment_url(number, comment.get("id")),
                    payload={"body": body},
                    headers=headers,
                )
                return
        await exchange(
            self.session,
            config=self.config,
            url=self.comments_url(number),
            payload={"body": body},
            headers=headers,
        )

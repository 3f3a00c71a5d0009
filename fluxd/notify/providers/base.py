"""What every provider is, and the message pieces the chat providers share.

A provider turns an ``Event`` into one service's request. They all present the
same face to the delivery queue: ``send(event)`` that either returns or raises
``DeliveryError``, plus the rate limits the service imposes, so the queue can
pace robots (DingTalk, WeCom, Feishu) instead of being refused by them.
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol
from urllib.parse import urlsplit

import aiohttp

from fluxd.notify.config import ProviderConfig
from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import SEVERITY_ERROR, Event


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``messages`` sends in any ``period_seconds`` window."""

    messages: int
    period_seconds: float


class Provider(Protocol):
    """A destination for notifications."""

    config: ProviderConfig
    rate_limits: tuple[RateLimit, ...]

    async def send(self, event: Event) -> None:
        """Deliver ``event`` once; raise ``DeliveryError`` if it did not arrive."""
        ...


class HttpProvider:
    """Base for providers that speak HTTP through a shared ``aiohttp`` session."""

    provider_type: ClassVar[str] = ""
    default_rate_limits: ClassVar[tuple[RateLimit, ...]] = ()

    def __init__(self, *, config: ProviderConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.rate_limits = self.default_rate_limits

    def validate(self) -> None:
        """Raise ``ProviderConfigError`` when the config cannot work; called once at build."""
        if not self.config.address:
            raise ProviderConfigError(provider_type=self.provider_type, reason="no address")
        if not is_http_url(self.config.address):
            # The address is not quoted: it often carries a token (robot webhooks).
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="the address is not a valid http(s) URL",
            )

    def require_token(self, purpose: str) -> None:
        if not self.config.token:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason=f"the Secret has no 'token' ({purpose})"
            )

    async def send(self, event: Event) -> None:
        raise NotImplementedError


class ChatProvider(HttpProvider):
    """A provider that posts messages for people to read.

    Events that only update a Git commit status mean nothing in a chat, so
    chat providers skip them, as Flux's do.
    """

    async def send(self, event: Event) -> None:
        if event.is_commit_status_update():
            return
        await self.post(event)

    async def post(self, event: Event) -> None:
        raise NotImplementedError


# Robot answers that mean "slow down", worth another attempt: 130101 DingTalk
# "sending too fast", 45009 WeCom "api freq out of limit", 9499 and 11232
# Feishu "too many requests" / "frequency limited".
_RETRYABLE_ROBOT_CODES: Final = frozenset({130101, 45009, 9499, 11232})


def check_robot_answer(answer: object, *, provider_type: str, code_key: str) -> None:
    """Raise unless a robot's JSON answer carries a zero ``code_key``."""
    if not isinstance(answer, dict):
        raise DeliveryError(
            provider_type=provider_type, reason="the robot answered without JSON", retryable=False
        )
    code = answer.get(code_key, 0)
    if code in (0, None):
        return
    message = answer.get("errmsg") or answer.get("msg") or "no message"
    raise DeliveryError(
        provider_type=provider_type,
        reason=f"the robot refused the message: {code_key} {code}: {message}",
        retryable=code in _RETRYABLE_ROBOT_CODES,
    )


def is_http_url(address: str) -> bool:
    """True for an absolute http(s) URL with a host, a valid port and no whitespace."""
    if any(char.isspace() for char in address):
        return False
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def basic_authorization(username: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP basic auth."""
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def is_error(event: Event) -> bool:
    return event.severity == SEVERITY_ERROR


def severity_emoji(event: Event) -> str:
    """The marks Flux's Lark and Telegram messages start with."""
    return "\N{POLICE CARS REVOLVING LIGHT}" if is_error(event) else "\N{DIZZY SYMBOL}"


def metadata_items(event: Event) -> list[tuple[str, str]]:
    """Event metadata in a stable order, so two sends of one event look alike."""
    return sorted(event.metadata.items())


def markdown_text(event: Event) -> str:
    """A Markdown body shared by the robots: bold message, then ``key: value`` lines."""
    lines = [f"**{event.message}**", ""]
    lines.extend(f"- {key}: {value}" for key, value in metadata_items(event))
    return "\n".join(lines).rstrip()


# Metadata naming a pull request: meaningful to comment providers only.
META_CHANGE_REQUEST: Final = "change_request"


def markdown_status_post(event: Event) -> str:
    """Flux's Markdown status post (Zulip, comments): heading, object, message, metadata."""
    emoji = "\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16}"
    if is_error(event):
        emoji = "\N{WARNING SIGN}\N{VARIATION SELECTOR-16}"
    obj = event.involved_object
    metadata = "".join(
        f"* `{key}`: {value}\n"
        for key, value in metadata_items(event)
        if key != META_CHANGE_REQUEST
    )
    return (
        f"## Flux Status\n\n{emoji} {obj.kind}/{obj.namespace}/{obj.name}\n\n"
        f"{event.message}\n\nMetadata:\n{metadata}"
    )


def markdown_title(event: Event) -> str:
    return f"{severity_emoji(event)} {event.involved_object.display_name()}"


def split_camel_case(text: str) -> list[str]:
    """``"ReconciliationSucceeded"`` → ``["Reconciliation", "Succeeded"]``, ``"PDFLoader"`` →
    ``["PDF", "Loader"]``, splitting at changes of character class as Flux does."""
    runs: list[list[str]] = []
    last_class = ""
    for char in text:
        char_class = _char_class(char)
        if runs and char_class == last_class:
            runs[-1].append(char)
        else:
            runs.append([char])
        last_class = char_class
    for index in range(len(runs) - 1):
        if runs[index][0].isupper() and runs[index + 1][0].islower():
            runs[index + 1].insert(0, runs[index].pop())
    return ["".join(run) for run in runs if run]


def _char_class(char: str) -> str:
    if char.islower():
        return "lower"
    if char.isupper():
        return "upper"
    if unicodedata.category(char) == "Nd":
        return "digit"
    return "other"


def truncate_utf8(text: str, *, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")

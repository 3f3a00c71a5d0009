"""The ``/hook/<digest>`` handler over real HTTP: what each kind of request gets back."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fluxd.metrics import WEBHOOKS
from fluxd.receiver import ReceiverEntry, ReceiverWebhook

TOKEN = "s3cret-token"
PATH = "/hook/" + "a" * 64
LIMIT = 1024


def receiver(*, suspend: bool = False, events: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "gitea",
        "events": events if events is not None else ["push"],
        "resources": [{"kind": "GitRepository", "name": "repo"}],
        "secretRef": {"name": "token"},
    }
    if suspend:
        spec["suspend"] = True
    return {"metadata": {"name": "hook", "namespace": "flux-system"}, "spec": spec}


@dataclass
class Directory:
    entries: dict[str, ReceiverEntry] = field(default_factory=dict)
    lookups: int = 0

    async def find(self, path: str) -> ReceiverEntry | None:
        self.lookups += 1
        return self.entries.get(path)


@dataclass
class Trigger:
    answer: bool = True
    calls: list[ReceiverEntry] = field(default_factory=list)
    requests: list[Mapping[str, Any]] = field(default_factory=list)

    async def __call__(self, entry: ReceiverEntry, variables: Mapping[str, Any]) -> bool:
        self.calls.append(entry)
        self.requests.append(variables)
        return self.answer


def signed(body: bytes, *, event: str = "push", token: str = TOKEN) -> dict[str, str]:
    signature = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Signature": signature,
        "X-GitHub-Event": event,
    }


@dataclass
class Hook:
    client: TestClient[web.Request, web.Application]
    directory: Directory
    trigger: Trigger

    async def post(
        self, body: bytes, headers: dict[str, str], path: str = PATH
    ) -> tuple[int, bytes]:
        async with self.client.post(path, data=body, headers=headers) as response:
            return response.status, await response.read()


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    directory = Directory({PATH: ReceiverEntry(receiver=receiver(), token=TOKEN)})
    trigger = Trigger()
    handler = ReceiverWebhook(directory=directory, trigger=trigger, body_limit=LIMIT)
    app = web.Application()
    app.router.add_route("*", "/hook/{digest}", handler.__call__)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Hook(client, directory, trigger)


def outcome_count(outcome: str) -> float:
    return float(WEBHOOKS.labels(outcome)._value.get())


PUSH = json.dumps({"ref": "refs/heads/master", "after": "f" * 40}).encode()


async def test_signed_push_is_accepted_and_triggers_once(hook: Hook) -> None:
    before = outcome_count("accepted")
    assert await hook.post(PUSH, signed(PUSH)) == (200, b"")
    assert [entry.name for entry in hook.trigger.calls] == ["hook"]
    assert outcome_count("accepted") == before + 1


@pytest.mark.parametrize(
    ("body", "headers", "expected", "outcome"),
    [
        pytest.param(PUSH, signed(PUSH, token="wrong"), 401, "unauthorized", id="wrong-signature"),
        pytest.param(PUSH, {"X-Gitea-Event": "push"}, 401, "unauthorized", id="unsigned"),
        pytest.param(
            PUSH, signed(PUSH, event="issues"), 403, "forbidden", id="event-not-subscribed"
        ),
        pytest.param(b"{not json", signed(b"{not json"), 400, "bad_request", id="signed-garbage"),
        pytest.param(
            b"x" * (LIMIT + 1), signed(b"x" * (LIMIT + 1)), 413, "too_large", id="over-the-limit"
        ),
    ],
)
async def test_refused_requests_get_a_bare_status_and_trigger_nothing(
    hook: Hook, body: bytes, headers: dict[str, str], expected: int, outcome: str
) -> None:
    before = outcome_count(outcome)
    status, answer = await hook.post(body, headers)
    assert (status, answer) == (expected, b"")
    assert hook.trigger.calls == []
    assert outcome_count(outcome) == before + 1


async def test_chunked_body_over_the_limit_is_refused(hook: Hook) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * (LIMIT // 2)

    async with hook.client.post(
        PATH, data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
    assert hook.trigger.calls == []


async def test_only_post_is_allowed(hook: Hook) -> None:
    async with hook.client.get(PATH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
    # The method is refused before the path is even looked up.
    assert hook.directory.lookups == 0


async def test_unknown_path_is_not_found(hook: Hook) -> None:
    assert await hook.post(PUSH, signed(PUSH), path="/hook/" + "0" * 64) == (404, b"")


async def test_suspended_receiver_answers_unavailable(hook: Hook) -> None:
    hook.directory.entries[PATH] = ReceiverEntry(receiver=receiver(suspend=True), token=TOKEN)
    assert (await hook.post(PUSH, signed(PUSH)))[0] == 503
    assert hook.trigger.calls == []


async def test_receiver_whose_token_is_gone_answers_unavailable(hook: Hook) -> None:
    hook.directory.entries[PATH] = ReceiverEntry(receiver=receiver(), token="", ready=False)
    assert (await hook.post(PUSH, signed(PUSH)))[0] == 503


async def test_ping_is_acknowledged_without_reconciling(hook: Hook) -> None:
    assert (await hook.post(PUSH, signed(PUSH, event="ping")))[0] == 200
    assert hook.trigger.calls == []


async def test_failed_reconcile_request_answers_500_so_the_sender_can_retry(hook: Hook) -> None:
    hook.trigger.answer = False
    assert (await hook.post(PUSH, signed(PUSH)))[0] == 500


async def test_gitea_form_delivery_is_accepted(hook: Hook) -> None:
    raw = urlencode({"payload": PUSH.decode()}).encode()
    headers = signed(PUSH)  # Gitea signs the JSON in the payload field, not the form
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert (await hook.post(raw, headers))[0] == 200


async def test_the_json_body_is_what_resource_filters_read_as_req(hook: Hook) -> None:
    assert (await hook.post(PUSH, signed(PUSH)))[0] == 200
    assert hook.trigger.requests == [{"req": json.loads(PUSH)}]


async def test_a_form_delivery_gives_resource_filters_an_empty_req(hook: Hook) -> None:
    raw = urlencode({"payload": PUSH.decode()}).encode()
    headers = signed(PUSH)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert (await hook.post(raw, headers))[0] == 200
    assert hook.trigger.requests == [{"req": {}}]


async def test_a_json_body_that_is_no_object_fails_a_filtered_receiver(hook: Hook) -> None:
    filtered = receiver()
    filtered["spec"]["resourceFilter"] = "req.ref == 'refs/heads/main'"
    hook.directory.entries[PATH] = ReceiverEntry(receiver=filtered, token=TOKEN)
    body = b'["refs/heads/main"]'
    assert (await hook.post(body, signed(body)))[0] == 500
    assert hook.trigger.calls == []

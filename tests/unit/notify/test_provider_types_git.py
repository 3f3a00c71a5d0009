"""Every Git forge Provider type against a local stand-in of its REST API.

Runs the rows of ``provider_cases.git``: a Provider and Secret as a user
writes them, built by fluxd's own code, sends an info and an error event; the
row's check asserts what the forge received. Further tests pin the parts a
single exchange cannot show: statuses not written twice, one comment per
object edited in place, ``spec.commitStatusExpr``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from fluxd.controllers.notification import event_from
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder, Recorded
from fluxd.notify import (
    DeliveryError,
    ProviderConfig,
    ProviderConfigError,
    build_provider,
    route,
)
from fluxd.notify.event import Event
from fluxd.notify.providers import CHANGE_REQUEST_TYPES, azureeventhub, googlepubsub
from tests.unit.notify.notify_services import Service, make_event, start
from tests.unit.notify.provider_cases import Captured, ProviderCase
from tests.unit.notify.provider_cases.git import CASES

PROVIDER_UID = "0c9c2e41-5b7e-4a51-9d3a-1f2e3d4c5b6a"
REVISION = "main@sha1:" + "3f1c5a7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a"


@dataclass
class Forge:
    """A local HTTP service that records every request and answers through ``respond``."""

    respond: Callable[[Captured], tuple[int, str]]
    captured: list[Captured] = field(default_factory=list)

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        captured = Captured(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=body,
        )
        self.captured.append(captured)
        status, text = self.respond(captured)
        return web.Response(status=status, text=text, content_type="application/json")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def serve(forge: Forge) -> AsyncIterator[Service]:
    service = await start(forge.handle)
    try:
        yield service
    finally:
        await service.server.close()


def provider_object(provider_type: str, address: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": "forge", "namespace": "flux-system", "uid": PROVIDER_UID},
        "spec": {"type": provider_type, "address": address, **spec},
    }


def event_for(provider_type: str, *, severity: str, commit_status: bool) -> Event:
    metadata = {"revision": REVISION} if commit_status else {}
    if provider_type in CHANGE_REQUEST_TYPES:
        metadata["change_request"] = "7"
    if severity == "error":
        return make_event(
            severity="error",
            reason="ReconciliationFailed",
            message="kustomize build failed",
            metadata=metadata,
        )
    return make_event(metadata=metadata)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.provider_type) for case in CASES])
@pytest.mark.parametrize("severity", ["info", "error"])
async def test_forge_receives_what_its_api_documents(
    case: ProviderCase,
    severity: str,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forge = Forge(respond=lambda _: case.reply)
    async for service in serve(forge):
        address, secret = service.url(case.path), dict(case.secret)
        if case.provider_type == "googlepubsub":
            # The address is a project id; the API is reached at the local server instead.
            monkeypatch.setattr(googlepubsub, "PUBSUB_ENDPOINT", service.url(""))
            address = case.path
        if case.provider_type == "azureeventhub":
            # The connection string names the local server, which speaks plain HTTP.
            monkeypatch.setattr(azureeventhub, "SCHEME", "http")
            host = service.url("").partition("://")[2].rstrip("/")
            secret = {key: value.replace("{host}", host) for key, value in secret.items()}
        config = ProviderConfig.from_objects(
            provider_object(case.provider_type, address, case.spec), secret=secret
        )
        provider = build_provider(config, session=session)
        await provider.send(
            event_for(case.provider_type, severity=severity, commit_status=case.commit_status)
        )
        case.check(forge.captured)


def test_every_git_type_has_a_case() -> None:
    from fluxd.notify.providers import COMMIT_STATUS_TYPES

    covered = {case.provider_type for case in CASES}
    wanted = COMMIT_STATUS_TYPES | CHANGE_REQUEST_TYPES
    wanted |= {"githubdispatch", "googlepubsub", "azureeventhub"}
    assert wanted <= covered


def _methods(captured: list[Captured]) -> list[str]:
    return [request.method for request in captured]


# -- statuses are not written twice -------------------------------------------------------

SHA = REVISION.rpartition(":")[2]
DEFAULT_KEY = "kustomization/realm-ix/0c9c2e41"
DESCRIPTION = "reconciliation succeeded"

# What each forge answers when the commit already carries the status an info event writes.
EXISTING: dict[str, tuple[str, dict[str, str], str]] = {
    # Gitea takes a state as "state" and lists it back as "status".
    "gitea": (
        "/org/app",
        {"token": "t0ken-value"},
        json.dumps([{"context": DEFAULT_KEY, "status": "success", "description": DESCRIPTION}]),
    ),
    "github": (
        "/org/app",
        {"token": "t0ken-value"},
        json.dumps([{"context": DEFAULT_KEY, "state": "success", "description": DESCRIPTION}]),
    ),
    "gitlab": (
        "/platform/infra/app",
        {"token": "t0ken-value"},
        json.dumps(
            [{"sha": SHA, "status": "success", "name": DEFAULT_KEY, "description": DESCRIPTION}]
        ),
    ),
    "bitbucket": (
        "/team/app",
        {"token": "flux-bot:app-password"},
        json.dumps({"state": "SUCCESSFUL", "description": DESCRIPTION}),
    ),
    "bitbucketserver": (
        "/scm/OPS/app.git",
        {"token": "t0ken-value"},
        json.dumps(
            {
                "key": hashlib.sha1(DEFAULT_KEY.encode(), usedforsecurity=False).hexdigest(),
                "state": "SUCCESSFUL",
                "description": DESCRIPTION,
                "name": f"kustomization/realm-ix [{DESCRIPTION}]",
            }
        ),
    ),
    "azuredevops": (
        "/acme/shop/_git/app",
        {"token": "t0ken-value"},
        json.dumps(
            {
                "count": 1,
                "value": [
                    {
                        "state": "succeeded",
                        "description": DESCRIPTION,
                        "context": {"genre": "fluxcd", "name": DEFAULT_KEY},
                    }
                ],
            }
        ),
    ),
}


async def send_once(
    session: aiohttp.ClientSession,
    forge: Forge,
    provider_type: str,
    path: str,
    secret: Mapping[str, str],
    event: Event,
    spec: Mapping[str, Any] | None = None,
) -> None:
    async for service in serve(forge):
        config = ProviderConfig.from_objects(
            provider_object(provider_type, service.url(path), spec or {}), secret=dict(secret)
        )
        await build_provider(config, session=session).send(event)


@pytest.mark.parametrize("provider_type", sorted(EXISTING))
async def test_an_identical_status_is_not_written_again(
    provider_type: str, session: aiohttp.ClientSession
) -> None:
    path, secret, existing = EXISTING[provider_type]
    forge = Forge(respond=lambda request: (200, existing if request.method == "GET" else "{}"))
    event = make_event(metadata={"revision": REVISION})
    await send_once(session, forge, provider_type, path, secret, event)
    assert _methods(forge.captured) == ["GET"]

    # The same status, now failed, is a change: it is written.
    failed = make_event(
        severity="error", reason="ReconciliationFailed", metadata={"revision": REVISION}
    )
    forge.captured.clear()
    await send_once(session, forge, provider_type, path, secret, failed)
    assert _methods(forge.captured) == ["GET", "POST"]


@pytest.mark.parametrize("provider_type", ["bitbucket", "bitbucketserver"])
async def test_bitbucket_without_a_status_of_that_key_creates_it(
    provider_type: str, session: aiohttp.ClientSession
) -> None:
    path, secret, _ = EXISTING[provider_type]
    forge = Forge(
        respond=lambda request: (
            (404, '{"error": "no such build status"}') if request.method == "GET" else (201, "{}")
        )
    )
    await send_once(
        session, forge, provider_type, path, secret, make_event(metadata={"revision": REVISION})
    )
    assert _methods(forge.captured) == ["GET", "POST"]


@pytest.mark.parametrize(
    ("provider_type", "path", "secret", "written"),
    [
        pytest.param(
            provider_type,
            path,
            secret,
            "pending" if provider_type == "gitea" else None,
            id=provider_type,
        )
        for provider_type, (path, secret, _) in sorted(EXISTING.items())
    ],
)
async def test_progressing_events_are_pending_on_gitea_and_skipped_elsewhere(
    provider_type: str,
    path: str,
    secret: Mapping[str, str],
    written: str | None,
    session: aiohttp.ClientSession,
) -> None:
    forge = Forge(respond=lambda _: (200, "[]"))
    progressing = make_event(
        reason="Progressing", message="Reconciliation in progress", metadata={"revision": REVISION}
    )
    await send_once(session, forge, provider_type, path, secret, progressing)
    posts = [request for request in forge.captured if request.method == "POST"]
    assert [json.loads(post.body)["state"] for post in posts] == ([written] if written else [])


async def test_a_refused_status_fails_with_the_forge_message(
    session: aiohttp.ClientSession,
) -> None:
    forge = Forge(respond=lambda _: (401, '{"message": "401 Unauthorized"}'))
    with pytest.raises(DeliveryError) as failure:
        await send_once(
            session,
            forge,
            "gitlab",
            "/platform/app",
            {"token": "t0ken-value"},
            make_event(metadata={"revision": REVISION}),
        )
    assert "401 Unauthorized" in str(failure.value)
    assert not failure.value.retryable


# -- one comment per object on a change request ------------------------------------------

COMMENT_TYPES: dict[str, tuple[str, str, str, str]] = {
    # type: (user JSON, comments path, edit method, edited comment path)
    "githubpullrequestcomment": (
        '{"login": "flux-bot"}',
        "/api/v3/repos/org/app/issues/7/comments",
        "PATCH",
        "/api/v3/repos/org/app/issues/comments/{id}",
    ),
    "giteapullrequestcomment": (
        '{"login": "flux-bot"}',
        "/api/v1/repos/org/app/issues/7/comments",
        "PATCH",
        "/api/v1/repos/org/app/issues/comments/{id}",
    ),
    "gitlabmergerequestcomment": (
        '{"username": "flux-bot"}',
        "/api/v4/projects/org/app/merge_requests/7/notes",
        "PUT",
        "/api/v4/projects/org/app/merge_requests/7/notes/{id}",
    ),
}


def comment(comment_id: int, author: str, body: str, *, provider_type: str) -> dict[str, Any]:
    who = "author" if provider_type == "gitlabmergerequestcomment" else "user"
    name = "username" if provider_type == "gitlabmergerequestcomment" else "login"
    return {"id": comment_id, who: {name: author}, "body": body}


@pytest.mark.parametrize("provider_type", sorted(COMMENT_TYPES))
async def test_the_comment_of_this_provider_and_object_is_edited_in_place(
    provider_type: str, session: aiohttp.ClientSession
) -> None:
    user, comments_path, edit_method, edited_path = COMMENT_TYPES[provider_type]
    prefix = "flux-mr-comment-key" if provider_type.startswith("gitlab") else "flux-pr-comment-key"
    marker = f"<!-- {prefix}:{PROVIDER_UID}/Kustomization/flux-system/realm-ix -->"
    listing = [
        # Someone else quoting the marker is not edited, nor is our comment of another object.
        comment(11, "reviewer", f"{marker}\n\nquoted", provider_type=provider_type),
        comment(12, "flux-bot", marker.replace("realm-ix", "other"), provider_type=provider_type),
        comment(13, "flux-bot", f"{marker}\n\n## Flux Status\n\nold", provider_type=provider_type),
    ]

    def respond(request: Captured) -> tuple[int, str]:
        if request.path.endswith("/user"):
            return 200, user
        if request.method == "GET":
            return 200, json.dumps(listing)
        return 200, "{}"

    forge = Forge(respond=respond)
    event = make_event(metadata={"revision": REVISION, "change_request": "7"})
    await send_once(session, forge, provider_type, "/org/app", {"token": "t0ken-value"}, event)
    lookup, listed, edit = forge.captured
    assert lookup.path.endswith("/user")
    assert listed.path == comments_path
    assert (edit.method, edit.path) == (edit_method, edited_path.format(id=13))
    body = json.loads(edit.body)["body"]
    assert body.startswith(f"{marker}\n\n## Flux Status\n\n") and "Reconciliation finished" in body


@pytest.mark.parametrize("provider_type", sorted(COMMENT_TYPES))
async def test_events_without_a_change_request_are_not_commented(
    provider_type: str, session: aiohttp.ClientSession
) -> None:
    forge = Forge(respond=lambda _: (200, "[]"))
    event = make_event(metadata={"revision": REVISION})
    await send_once(session, forge, provider_type, "/org/app", {"token": "t0ken-value"}, event)
    assert forge.captured == []


# -- spec.commitStatusExpr ------------------------------------------------------------------

DOCUMENTED_EXPR = (
    "(event.involvedObject.kind + '/' + event.involvedObject.name + '/' + event.metadata.foo"
    " + '/' + provider.metadata.uid.split('-').first().value()).lowerAscii()"
)


@pytest.mark.parametrize(
    ("expression", "key"),
    [
        pytest.param(DOCUMENTED_EXPR, "kustomization/realm-ix/bar/0c9c2e41", id="documented"),
        pytest.param(
            "alert.metadata.name + ':' + provider.spec.type", "github-status:gitlab", id="alert"
        ),
    ],
)
async def test_commit_status_expr_names_the_status(
    expression: str, key: str, session: aiohttp.ClientSession
) -> None:
    forge = Forge(respond=lambda _: (200, "[]"))
    alert = {
        "metadata": {"name": "github-status", "namespace": "flux-system"},
        "spec": {
            "providerRef": {"name": "forge"},
            "eventSources": [{"kind": "Kustomization", "name": "*"}],
            "eventMetadata": {"foo": "Bar"},
        },
    }
    async for service in serve(forge):
        provider = provider_object(
            "gitlab", service.url("/platform/app"), {"commitStatusExpr": expression}
        )
        (dispatch,) = route(
            make_event(metadata={"revision": REVISION}),
            alerts=[alert],
            providers={("flux-system", "forge"): provider},
        )
        config = ProviderConfig.from_objects(provider, secret={"token": "t0ken-value"})
        await build_provider(config, session=session).send(dispatch.notification)
    listing, post = forge.captured
    assert listing.query == {"name": key}
    assert json.loads(post.body)["name"] == key


@pytest.mark.parametrize(
    ("provider_type", "expression", "reason"),
    [
        pytest.param("github", "event.", "failed to compile expression", id="syntax"),
        pytest.param(
            "gitea", "self.metadata.name", "undeclared reference to 'self'", id="undeclared"
        ),
        pytest.param(
            "slack",
            "event.reason",
            "spec.commitStatusExpr is only supported for the 'github', 'gitlab'",
            id="not-a-git-type",
        ),
    ],
)
def test_a_commit_status_expr_that_cannot_work_refuses_the_provider(
    provider_type: str, expression: str, reason: str, session: aiohttp.ClientSession
) -> None:
    provider = provider_object(
        provider_type, "https://git.example/org/app", {"commitStatusExpr": expression}
    )
    config = ProviderConfig.from_objects(provider, secret={"token": "t0ken-value"})
    with pytest.raises(ProviderConfigError) as refused:
        build_provider(config, session=session)
    assert reason in str(refused.value)


async def test_a_commit_status_expr_that_yields_no_string_sends_nothing(
    session: aiohttp.ClientSession,
) -> None:
    forge = Forge(respond=lambda _: (200, "[]"))
    with pytest.raises(DeliveryError) as failure:
        await send_once(
            session,
            forge,
            "github",
            "/org/app",
            {"token": "t0ken-value"},
            make_event(metadata={"revision": REVISION}),
            spec={"commitStatusExpr": "size(event.message)"},
        )
    assert "failed to evaluate CEL expression as string" in str(failure.value)
    assert not failure.value.retryable and forge.captured == []


# -- configuration refused at load -----------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_type", "address", "listing"),
    [
        pytest.param(
            "gitlab",
            "ssh://git@{host}:2222/platform/app.git",
            f"/api/v4/projects/platform%2Fapp/repository/commits/{SHA}/statuses",
            id="gitlab-ssh",
        ),
        pytest.param(
            "gitea",
            "git@{host}:org/app.git",
            f"/api/v1/repos/org/app/statuses/{SHA}",
            id="gitea-scp-like",
        ),
    ],
)
async def test_ssh_repository_addresses_reach_the_https_api(
    provider_type: str,
    address: str,
    listing: str,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ProviderConfig.from_objects(
        provider_object(provider_type, address.format(host="forge.example"), {}),
        secret={"token": "t0ken-value"},
    )
    provider = build_provider(config, session=session)
    sent: list[str] = []

    async def exchange_spy(*args: Any, url: str, **kwargs: Any) -> Any:
        sent.append(url)
        raise DeliveryError(provider_type=provider_type, reason="stop", retryable=False)

    # Nothing listens on forge.example: the first request's URL is all this needs.
    for module in ("commit_status", "gitlab"):
        monkeypatch.setattr(f"fluxd.notify.providers.{module}.exchange", exchange_spy)
    with pytest.raises(DeliveryError):
        await provider.send(make_event(metadata={"revision": REVISION}))
    assert [url.partition("?")[0] for url in sent] == [f"https://forge.example{listing}"]


@pytest.mark.parametrize(
    ("provider_type", "address", "secret", "reason"),
    [
        pytest.param(
            "bitbucket",
            "https://bitbucket.org/team/app",
            {"token": "only-a-password"},
            "expected to be <user>:<password>",
            id="bitbucket-token-format",
        ),
        pytest.param(
            "bitbucket",
            "https://bitbucket.org/team/sub/app",
            {"token": "user:password"},
            "invalid repository id 'team/sub/app'",
            id="bitbucket-repository-id",
        ),
        pytest.param(
            "bitbucketserver",
            "ssh://git@bitbucket.example:7999/ops/app.git",
            {"token": "t0ken-value"},
            "http(s) clone URL",
            id="bitbucketserver-ssh",
        ),
        pytest.param(
            "bitbucketserver",
            "https://bitbucket.example/scm/OPS/app.git",
            {"username": "flux"},
            "expected to be one of username/password or API Token",
            id="bitbucketserver-credentials",
        ),
        pytest.param(
            "azuredevops",
            "https://dev.azure.com/acme/app",
            {"token": "t0ken-value"},
            "invalid repository id 'acme/app'",
            id="azuredevops-address",
        ),
        pytest.param(
            "azuredevops",
            "https://dev.azure.com/acme/shop/_git/app",
            {},
            "managed identity is not available",
            id="azuredevops-no-token",
        ),
        pytest.param(
            "githubdispatch",
            "https://github.com/org",
            {"token": "t0ken-value"},
            "repository URL",
            id="githubdispatch-address",
        ),
        pytest.param(
            "gitlabmergerequestcomment",
            "https://gitlab.example/org/app",
            {},
            "the Secret has no 'token'",
            id="gitlab-comment-token",
        ),
        pytest.param(
            "googlepubsub",
            "gitops-prod",
            {},
            "workload identity is not available",
            id="pubsub-without-key",
        ),
        pytest.param(
            "googlepubsub",
            "gitops-prod",
            {"token": json.dumps({"type": "authorized_user", "refresh_token": "r"})},
            "credentials of type 'authorized_user' are not available",
            id="pubsub-user-credentials",
        ),
        pytest.param(
            "googlepubsub",
            "gitops-prod",
            {
                "token": json.dumps(
                    {"type": "service_account", "client_email": "a@b", "private_key": "nope"}
                )
            },
            "not a usable RSA key",
            id="pubsub-broken-key",
        ),
        pytest.param(
            "azureeventhub",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s",
            {},
            "names no event hub (EntityPath)",
            id="eventhub-without-hub",
        ),
        pytest.param(
            "azureeventhub",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;"
            "SharedAccessKey=s;EntityPath=h",
            {"token": "eyJhbGciOi"},
            "jwt token and SAS authentication cannot be set at the same time",
            id="eventhub-sas-and-jwt",
        ),
        pytest.param(
            "azureeventhub",
            "flux-events",
            {},
            "managed identity is not available",
            id="eventhub-managed-identity",
        ),
    ],
)
def test_a_provider_that_cannot_work_is_refused_when_loaded(
    provider_type: str,
    address: str,
    secret: Mapping[str, str],
    reason: str,
    session: aiohttp.ClientSession,
) -> None:
    config = ProviderConfig.from_objects(
        provider_object(provider_type, address, {"channel": "flux-events"}), secret=dict(secret)
    )
    with pytest.raises(ProviderConfigError) as refused:
        build_provider(config, session=session)
    assert reason in str(refused.value)


async def test_event_hub_with_a_jwt_sends_it_as_bearer_to_the_namespace(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    forge = Forge(respond=lambda _: (201, ""))
    sent: list[str] = []

    async def exchange_spy(*args: Any, url: str, headers: Mapping[str, str], **kwargs: Any) -> Any:
        sent.append(url)
        assert headers["Authorization"] == "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
        raise DeliveryError(provider_type="azureeventhub", reason="stop", retryable=False)

    monkeypatch.setattr("fluxd.notify.providers.azureeventhub.exchange", exchange_spy)
    config = ProviderConfig.from_objects(
        provider_object("azureeventhub", "flux-events", {"channel": "gitops"}),
        secret={"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
    )
    with pytest.raises(DeliveryError):
        await build_provider(config, session=session).send(make_event())
    assert sent == [
        "https://gitops.servicebus.windows.net/flux-events/messages?timeout=60&api-version=2014-01"
    ]
    assert forge.captured == []


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=case.provider_type)
        for case in CASES
        if case.provider_type in CHANGE_REQUEST_TYPES
        or case.provider_type in ("githubdispatch", "googlepubsub", "azureeventhub")
    ],
)
async def test_commit_status_updates_reach_only_the_commit_status_types(
    case: ProviderCase, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    forge = Forge(respond=lambda _: case.reply)
    monkeypatch.setattr(azureeventhub, "SCHEME", "http")
    async for service in serve(forge):
        monkeypatch.setattr(googlepubsub, "PUBSUB_ENDPOINT", service.url(""))
        host = service.url("").partition("://")[2].rstrip("/")
        secret = {key: value.replace("{host}", host) for key, value in case.secret.items()}
        config = ProviderConfig.from_objects(
            provider_object(case.provider_type, service.url(case.path), case.spec), secret=secret
        )
        update = make_event(
            metadata={"revision": REVISION, "change_request": "7", "commit_status": "update"}
        )
        await build_provider(config, session=session).send(update)
    assert forge.captured == []


# -- the change request of fluxd's own objects ----------------------------------------------


@dataclass
class EventsApi:
    """Takes Event creates, as the API server would."""

    created: list[dict[str, Any]] = field(default_factory=list)

    async def create(self, resource: Any, body: dict[str, Any], **_: Any) -> Any:
        self.created.append(body)
        return body


async def test_the_change_request_annotation_of_an_object_reaches_its_events() -> None:
    api = EventsApi()
    recorder = EventRecorder(
        cast(Kube, api),
        instance="test",
        annotation_prefix=lambda regarding: str(regarding.get("apiVersion", "")).split("/")[0],
    )
    recorded: list[Recorded] = []
    recorder.add_sink(recorded.append)
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "preview-42",
            "namespace": "flux-system",
            "annotations": {
                "event.toolkit.fluxcd.io/change_request": "42",
                "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
            },
        },
    }
    await recorder.normal(
        kustomization,
        "ReconciliationSucceeded",
        "Applied revision: main@sha1:" + "a" * 40,
        metadata={"revision": "main@sha1:" + "a" * 40},
    )
    event = event_from(recorded[0])
    assert event.metadata == {"change_request": "42", "revision": "main@sha1:" + "a" * 40}
    # In the cluster, the copied annotation keeps its own group, as Flux's recorder writes it.
    assert api.created[0]["metadata"]["annotations"] == {
        "event.toolkit.fluxcd.io/change_request": "42",
        "kustomize.toolkit.fluxcd.io/revision": "main@sha1:" + "a" * 40,
    }


async def test_a_comment_provider_edits_nothing_when_the_forge_names_no_user(
    session: aiohttp.ClientSession,
) -> None:
    forge = Forge(respond=lambda _: (200, "{}"))
    event = make_event(metadata={"change_request": "7"})
    with pytest.raises(DeliveryError) as failure:
        await send_once(
            session, forge, "giteapullrequestcomment", "/org/app", {"token": "t0ken"}, event
        )
    assert "named no user" in str(failure.value)
    assert [request.path for request in forge.captured] == ["/api/v1/user"]


def test_a_comment_provider_without_a_uid_is_refused(session: aiohttp.ClientSession) -> None:
    provider = provider_object("githubpullrequestcomment", "https://github.com/org/app", {})
    del provider["metadata"]["uid"]
    config = ProviderConfig.from_objects(provider, secret={"token": "t0ken"})
    with pytest.raises(ProviderConfigError, match="provider UID cannot be empty"):
        build_provider(config, session=session)

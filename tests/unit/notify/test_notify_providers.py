"""Providers against local services that check requests as the real ones do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from fluxd.notify import ProviderConfig, build_provider
from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import Event
from tests.unit.notify.notify_services import Handler, StartService, make_event

SHA = "0123456789abcdef0123456789abcdef01234567"


def provider_object(provider_type: str, *, address: str = "", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": "chat", "namespace": "flux-system", "uid": "4a1b2c3d-1111-2222"},
        "spec": {"type": provider_type, "address": address, **spec},
    }


def config_for(
    provider_type: str, *, address: str = "", secret: dict[str, str] | None = None, **spec: Any
) -> ProviderConfig:
    return ProviderConfig.from_objects(
        provider_object(provider_type, address=address, **spec), secret=secret
    )


async def send(
    session: aiohttp.ClientSession, config: ProviderConfig, event: Event | None = None
) -> None:
    provider = build_provider(config, session=session)
    await provider.send(event or make_event())


# --- DingTalk -----------------------------------------------------------------------------

DINGTALK_SECRET = "SECf00dbabe"


async def dingtalk_robot(request: web.Request, body: bytes) -> web.StreamResponse:
    """DingTalk's check: timestamp within an hour, sign = b64(HMAC(secret, ts\\nsecret))."""
    if request.query.get("access_token") != "robot-token":
        return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
    timestamp = request.query.get("timestamp", "")
    sign = request.query.get("sign", "")
    if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > 3_600_000:
        return web.json_response({"errcode": 310000, "errmsg": "invalid timestamp"})
    expected = base64.b64encode(
        hmac.new(
            DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    if not hmac.compare_digest(sign, expected):
        return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
    payload = json.loads(body)
    if payload.get("msgtype") != "markdown" or not payload["markdown"].get("title"):
        return web.json_response({"errcode": 40035, "errmsg": "missing markdown"})
    return web.json_response({"errcode": 0, "errmsg": "ok"})


async def test_dingtalk_signed_markdown_is_accepted(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    robot = await start_service(dingtalk_robot)
    config = config_for(
        "dingtalk",
        secret={
            "address": robot.url("/robot/send?access_token=robot-token"),
            "token": DINGTALK_SECRET,
        },
    )
    await send(session, config, make_event(severity="error", message="kustomize build failed"))

    [request] = robot.received
    text = request.json()["markdown"]["text"]
    assert "kustomize build failed" in text
    assert "revision: master@sha1:" in text


async def test_dingtalk_wrong_secret_is_a_permanent_failure_without_leaking_it(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    robot = await start_service(dingtalk_robot)
    config = config_for(
        "dingtalk",
        secret={
            "address": robot.url("/robot/send?access_token=robot-token"),
            "token": "SECwrongwrong",
        },
    )
    with pytest.raises(DeliveryError) as caught:
        await send(session, config)
    assert not caught.value.retryable
    assert "310000" in str(caught.value)
    assert "SECwrongwrong" not in str(caught.value)
    assert "robot-token" not in str(caught.value)


# --- Feishu / Lark ------------------------------------------------------------------------

FEISHU_SECRET = "feishu-signing-secret"


async def feishu_bot(request: web.Request, body: bytes) -> web.StreamResponse:
    """Feishu's check: body timestamp (s) within an hour, sign = b64(HMAC(ts\\nsecret, ""))."""
    payload = json.loads(body)
    timestamp = str(payload.get("timestamp", ""))
    expected = base64.b64encode(
        hmac.new(f"{timestamp}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    fresh = timestamp.isdigit() and abs(int(timestamp) - time.time()) < 3600
    if not fresh or not hmac.compare_digest(str(payload.get("sign", "")), expected):
        return web.json_response({"code": 19021, "msg": "sign match fail", "data": {}})
    return web.json_response({"code": 0, "msg": "success", "data": {}})


@pytest.mark.parametrize("provider_type", ["feishu", "lark"])
async def test_feishu_body_signature_is_accepted(
    provider_type: str, start_service: StartService, session: aiohttp.ClientSession
) -> None:
    bot = await start_service(feishu_bot)
    config = config_for(
        provider_type,
        secret={"address": bot.url("/open-apis/bot/v2/hook/abc"), "token": FEISHU_SECRET},
    )
    await send(session, config, make_event(severity="error", message="health check failed"))

    card = bot.received[0].json()["card"]
    assert card["header"]["template"] == "red"
    assert card["header"]["title"]["content"].endswith("kustomization/realm-ix.flux-system")
    assert "health check failed" in card["elements"][0]["text"]["content"]


async def test_feishu_bad_signature_fails_permanently(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    bot = await start_service(feishu_bot)
    config = config_for(
        "feishu", secret={"address": bot.url("/open-apis/bot/v2/hook/abc"), "token": "nope"}
    )
    with pytest.raises(DeliveryError) as caught:
        await send(session, config)
    assert not caught.value.retryable
    assert "19021" in str(caught.value)


# --- WeCom --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "retryable"),
    [
        pytest.param(45009, True, id="frequency-limit-is-retried"),
        pytest.param(93000, False, id="invalid-webhook-is-permanent"),
    ],
)
async def test_wecom_errcode_decides_failure(
    errcode: int, retryable: bool, start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def robot(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"errcode": errcode, "errmsg": "refused"})

    service = await start_service(robot)
    config = config_for("wecom", secret={"address": service.url("/cgi-bin/webhook/send?key=k")})
    with pytest.raises(DeliveryError) as caught:
        await send(session, config)
    assert caught.value.retryable is retryable


async def test_wecom_markdown_is_cut_to_the_robot_limit(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def robot(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    service = await start_service(robot)
    config = config_for("wecom", secret={"address": service.url("/cgi-bin/webhook/send?key=k")})
    await send(session, config, make_event(message="配置错误" * 2000))

    content = service.received[0].json()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.startswith("### ")


# --- Gitea commit status ------------------------------------------------------------------

GITEA_TOKEN = "gitea-pat-123456"


def gitea_api(statuses: list[dict[str, Any]]) -> Handler:
    """Gitea's commit status API for repository k3s/k3s-private."""
    path = f"/api/v1/repos/k3s/k3s-private/statuses/{SHA}"

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"token {GITEA_TOKEN}":
            return web.json_response({"message": "token is required"}, status=401)
        if request.path != path:
            return web.json_response({"message": "not found"}, status=404)
        if request.method == "GET":
            # Gitea lists a status's state under "status" (it is posted as "state").
            listed = [
                {"id": index, "status": status["state"], "creator": {"login": "k3s"}}
                | {key: status[key] for key in ("target_url", "description", "context")}
                for index, status in enumerate(statuses, start=1)
            ]
            return web.json_response(list(reversed(listed)))
        status = json.loads(body)
        if status["state"] not in {"pending", "success", "error", "failure", "warning"}:
            return web.json_response({"message": "invalid state"}, status=422)
        statuses.append(status)
        return web.json_response(status, status=201)

    return handle


@pytest.mark.parametrize(
    ("severity", "reason", "state", "description"),
    [
        pytest.param("info", "ReconciliationSucceeded", "success", "reconciliation succeeded"),
        pytest.param("error", "HealthCheckFailed", "failure", "health check failed"),
        pytest.param("info", "Progressing", "pending", "progressing"),
    ],
)
async def test_gitea_status_reflects_the_event(
    severity: str,
    reason: str,
    state: str,
    description: str,
    start_service: StartService,
    session: aiohttp.ClientSession,
) -> None:
    statuses: list[dict[str, Any]] = []
    gitea = await start_service(gitea_api(statuses))
    # The user's GitRepository URL, pointing at the local Gitea.
    config = config_for(
        "gitea", address=gitea.url("/k3s/k3s-private.git"), secret={"token": GITEA_TOKEN}
    )
    event = make_event(
        severity=severity, reason=reason, metadata={"revision": f"master@sha1:{SHA}"}
    )
    await send(session, config, event)

    assert statuses == [
        {
            "state": state,
            "target_url": "",
            "description": description,
            "context": "kustomization/realm-ix/4a1b2c3d",
        }
    ]


async def test_gitea_does_not_repeat_an_identical_status(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    statuses: list[dict[str, Any]] = []
    gitea = await start_service(gitea_api(statuses))
    config = config_for(
        "gitea", address=gitea.url("/k3s/k3s-private"), secret={"token": GITEA_TOKEN}
    )
    event = make_event(metadata={"revision": f"master@sha1:{SHA}"})
    await send(session, config, event)
    await send(session, config, event)
    await send(
        session,
        config,
        make_event(
            severity="error", reason="BuildFailed", metadata={"revision": f"master@sha1:{SHA}"}
        ),
    )

    assert [status["state"] for status in statuses] == ["success", "failure"]


async def test_gitea_rejected_token_is_permanent(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    gitea = await start_service(gitea_api([]))
    config = config_for(
        "gitea", address=gitea.url("/k3s/k3s-private"), secret={"token": "bad-token"}
    )
    with pytest.raises(DeliveryError) as caught:
        await send(session, config, make_event(metadata={"revision": f"master@sha1:{SHA}"}))
    assert caught.value.status == 401
    assert not caught.value.retryable
    assert "bad-token" not in str(caught.value)


async def test_commit_status_without_revision_fails_permanently(
    session: aiohttp.ClientSession,
) -> None:
    config = config_for(
        "gitea", address="http://127.0.0.1:9/k3s/k3s-private", secret={"token": GITEA_TOKEN}
    )
    with pytest.raises(DeliveryError) as caught:
        await send(session, config, make_event(metadata={}))
    assert not caught.value.retryable


# --- GitHub commit status -----------------------------------------------------------------


async def test_github_enterprise_status_and_progressing_skipped(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def github(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer ghp_token":
            return web.json_response({"message": "Bad credentials"}, status=401)
        if request.method == "GET":
            return web.json_response([])
        return web.json_response(json.loads(body), status=201)

    service = await start_service(github)
    config = config_for(
        "github", address=service.url("/my-org/my-repo"), secret={"token": "ghp_token"}
    )
    await send(session, config, make_event(reason="Progressing", metadata={"revision": SHA}))
    assert service.received == []

    await send(session, config, make_event(metadata={"revision": f"main@sha1:{SHA}"}))
    post = service.received[-1]
    assert post.path == f"/api/v3/repos/my-org/my-repo/statuses/{SHA}"
    assert post.json()["state"] == "success"


# --- Generic webhooks ---------------------------------------------------------------------


async def test_generic_hmac_signs_the_exact_body(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def receiver(request: web.Request, body: bytes) -> web.StreamResponse:
        algorithm, _, digest = request.headers.get("X-Signature", "").partition("=")
        expected = hmac.new(b"hmac-key", body, hashlib.sha256).hexdigest()
        if algorithm != "sha256" or not hmac.compare_digest(digest, expected):
            return web.Response(status=401)
        return web.Response(status=202)

    service = await start_service(receiver)
    config = config_for(
        "generic-hmac",
        address=service.url("/flux"),
        secret={"token": "hmac-key", "headers": "X-Team: platform\nAuthorization: Bearer x\n"},
    )
    await send(session, config)

    [request] = service.received
    assert request.headers["Gotk-Component"] == "kustomize-controller"
    assert request.headers["X-Team"] == "platform"
    event = request.json()
    assert event["involvedObject"]["kind"] == "Kustomization"
    assert event["involvedObject"]["namespace"] == "flux-system"
    assert event["severity"] == "info"
    assert event["reason"] == "ReconciliationSucceeded"
    assert event["timestamp"] == "2024-05-01T12:00:00Z"
    assert event["metadata"] == {"revision": "master@sha1:" + "a" * 40}


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        pytest.param(500, True, id="server-error"),
        pytest.param(503, True, id="unavailable"),
        pytest.param(429, True, id="too-many-requests"),
        pytest.param(400, False, id="bad-request"),
        pytest.param(404, False, id="not-found"),
    ],
)
async def test_http_status_decides_retry(
    status: int, retryable: bool, start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def broken(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=status, text="nope")

    service = await start_service(broken)
    with pytest.raises(DeliveryError) as caught:
        await send(session, config_for("generic", address=service.url("/hook?token=s3cr3t")))
    assert caught.value.retryable is retryable
    assert caught.value.status == status
    assert "s3cr3t" not in str(caught.value)


# --- Slack, Discord, Telegram -------------------------------------------------------------


async def test_slack_api_refusal_is_reported(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def slack(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer xoxb-1":
            return web.json_response({"ok": False, "error": "not_authed"})
        if json.loads(body).get("channel") != "general":
            return web.json_response({"ok": False, "error": "channel_not_found"})
        return web.json_response({"ok": True})

    service = await start_service(slack)
    good = config_for(
        "slack",
        address=service.url("/api/chat.postMessage"),
        channel="general",
        secret={"token": "xoxb-1"},
    )
    await send(session, good, make_event(severity="error"))
    attachment = service.received[0].json()["attachments"][0]
    assert attachment["color"] == "danger"
    assert attachment["author_name"] == "kustomization/realm-ix.flux-system"
    assert service.received[0].json()["username"] == "kustomize-controller"

    wrong_channel = config_for(
        "slack",
        address=service.url("/api/chat.postMessage"),
        channel="random",
        secret={"token": "xoxb-1"},
    )
    with pytest.raises(DeliveryError, match="channel_not_found"):
        await send(session, wrong_channel)


async def test_discord_posts_to_slack_endpoint(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def discord(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=200 if request.path.endswith("/slack") else 404)

    service = await start_service(discord)
    await send(session, config_for("discord", secret={"address": service.url("/api/webhooks/1/t")}))
    assert service.received[0].path == "/api/webhooks/1/t/slack"


async def test_telegram_sends_to_chat_thread_and_hides_token(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def telegram(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.path != "/bot123:ABC/sendMessage":
            return web.json_response({"ok": False, "description": "Unauthorized"}, status=401)
        return web.json_response({"ok": True, "result": {}})

    service = await start_service(telegram)
    config = config_for(
        "telegram", address=service.url("/"), channel="-100123:42", secret={"token": "123:ABC"}
    )
    await send(session, config, make_event(message="applied 2 objects (v1.2)"))
    payload = service.received[0].json()
    assert payload["chat_id"] == "-100123"
    assert payload["message_thread_id"] == "42"
    assert payload["parse_mode"] == "MarkdownV2"
    assert "applied 2 objects \\(v1\\.2\\)" in payload["text"]

    wrong = config_for(
        "telegram", address=service.url("/"), channel="-100123", secret={"token": "999:XYZ"}
    )
    with pytest.raises(DeliveryError) as caught:
        await send(session, wrong)
    assert "999:XYZ" not in str(caught.value)


@pytest.mark.parametrize("provider_type", ["slack", "msteams", "googlechat", "dingtalk", "wecom"])
async def test_chat_providers_skip_commit_status_updates(
    provider_type: str, start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def chat(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"ok": True, "errcode": 0})

    service = await start_service(chat)
    config = config_for(provider_type, secret={"address": service.url("/hook")})
    await send(session, config, make_event(metadata={"commit_status": "update"}))
    assert service.received == []


# --- Configuration ------------------------------------------------------------------------


def test_secret_values_override_the_spec_and_stay_out_of_repr() -> None:
    config = ProviderConfig.from_objects(
        provider_object(
            "slack",
            address="https://spec.example",
            username="spec-user",
            proxy="http://spec-proxy:3128",
            timeout="1m30s",
        ),
        secret={
            "address": b"https://hooks.example/T/B/secret-path",
            "username": "bot",
            "token": b"xoxb-secret",
        },
        cert_secret={"ca.crt": b"-----BEGIN CERTIFICATE-----"},
        proxy_secret={"address": "http://proxy:8080", "username": "u", "password": "p@ss"},
    )
    assert config.address == "https://hooks.example/T/B/secret-path"
    assert config.username == "bot"
    assert config.proxy == "http://u:p%40ss@proxy:8080"
    assert config.timeout == 90.0
    assert config.key == "flux-system/chat"
    shown = repr(config)
    assert "xoxb-secret" not in shown and "secret-path" not in shown and "p@ss" not in shown


@pytest.mark.parametrize(
    ("provider", "secret", "complaint"),
    [
        pytest.param(
            provider_object("pagerduty", address="https://x"), {}, "unsupported", id="unknown-type"
        ),
        pytest.param(
            provider_object("telegram"), {"token": "1:A"}, "channel", id="telegram-without-channel"
        ),
        pytest.param(
            provider_object("generic-hmac", address="https://x"), {}, "token", id="hmac-without-key"
        ),
        pytest.param(
            provider_object("gitea", address="https://gitea.example/only-owner"),
            {"token": "t"},
            "repository URL",
            id="gitea-address-without-repo",
        ),
        pytest.param(provider_object("slack"), {}, "no address", id="no-address"),
        pytest.param(
            provider_object("generic", address="http://exa mple.invalid/x"),
            {},
            "not a valid http",
            id="address-with-space",
        ),
        pytest.param(
            provider_object("generic", address="http://hooks.example:99999/x"),
            {},
            "not a valid http",
            id="address-port-out-of-range",
        ),
        pytest.param(
            provider_object("discord"),
            {"address": "hooks.example/T/secret-path"},
            "not a valid http",
            id="address-without-scheme",
        ),
        pytest.param(
            provider_object("slack", address="https://x"),
            {"headers": "- a\n- b"},
            "headers",
            id="headers-not-a-map",
        ),
        pytest.param(
            provider_object("slack", address="https://x", timeout="soon"),
            {},
            "duration",
            id="bad-timeout",
        ),
    ],
)
async def test_unusable_provider_is_refused_when_built(
    provider: dict[str, Any],
    secret: dict[str, str],
    complaint: str,
    session: aiohttp.ClientSession,
) -> None:
    with pytest.raises(ProviderConfigError, match=complaint):
        build_provider(ProviderConfig.from_objects(provider, secret=secret), session=session)

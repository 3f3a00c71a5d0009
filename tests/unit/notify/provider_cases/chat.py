"""Chat, incident and alerting Provider types: what each service receives from fluxd.

The runner (tests/unit/notify/test_provider_types.py) sends ``INFO`` then
``ERROR`` through each Provider and hands ``check`` every request the service
received, in order. Checks assert the request as the service documents it:
method, path, authentication, and the payload fields Flux fills.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import replace
from typing import Any, Final
from urllib.parse import parse_qs

from testenv.notifypeers import ALERTMANAGER_PASSWORD, ALERTMANAGER_USER
from tests.unit.notify.notify_services import make_event
from tests.unit.notify.provider_cases import Captured, ProviderCase

# The Alert that routed the events (Flux's events always come through one).
ALERT_UID: Final = "0e6f1c9a-5a4b-4c1d-9f00-alert"
ALERT: Final[dict[str, Any]] = {
    "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
    "kind": "Alert",
    "metadata": {
        "name": "on-call",
        "namespace": "flux-system",
        "uid": ALERT_UID,
    },
}
INFO: Final = replace(make_event(), alert=ALERT)
ERROR: Final = replace(
    make_event(severity="error", reason="ReconciliationFailed", message="Reconciliation failed"),
    alert=ALERT,
)
OBJECT: Final = "kustomization/realm-ix.flux-system"
REVISION: Final = INFO.metadata["revision"]
SHA: Final = REVISION.rpartition(":")[2]
UID: Final = INFO.involved_object.uid
TIMESTAMP: Final = "2024-05-01T12:00:00Z"
TOKEN: Final = "s3cr3t-t0ken"


def body_of(request: Captured) -> Any:
    return json.loads(request.body)


def sent(captured: list[Captured], *, method: str = "POST", count: int = 2) -> list[Any]:
    """The JSON bodies of the ``count`` requests, after checking they all used ``method``."""
    assert [request.method for request in captured] == [method] * count, captured
    return [body_of(request) for request in captured]


def assert_header(captured: list[Captured], name: str, value: str) -> None:
    for request in captured:
        assert request.headers.get(name) == value, (name, request.headers.get(name))


# --- Already implemented types -------------------------------------------------------------


def check_slack(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert_header(captured, "Authorization", f"Bearer {TOKEN}")
    assert info["channel"] == "general" and info["username"] == "flux"
    attachment = info["attachments"][0]
    assert attachment["author_name"] == OBJECT and attachment["text"] == INFO.message
    assert attachment["color"] == "good" and error["attachments"][0]["color"] == "danger"
    assert attachment["fields"] == [{"title": "revision", "value": REVISION, "short": False}]


def check_discord(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert {request.path for request in captured} == {"/api/webhooks/1/abc/slack"}
    assert info["attachments"][0]["text"] == INFO.message
    assert error["attachments"][0]["color"] == "danger"


def check_googlechat(captured: list[Captured]) -> None:
    info, error = sent(captured)
    header = info["cards"][0]["header"]
    assert header == {"title": OBJECT, "subtitle": "kustomize-controller"}
    error_text = error["cards"][0]["sections"][0]["widgets"][0]["textParagraph"]["text"]
    assert error_text == '<font color="#ff0000">Reconciliation failed</font>'


def check_telegram(captured: list[Captured]) -> None:
    info, _ = sent(captured)
    assert {request.path for request in captured} == {f"/bot{TOKEN}/sendMessage"}
    assert info["chat_id"] == "@fluxops" and info["parse_mode"] == "MarkdownV2"
    assert "Reconciliation finished" in info["text"]


def check_generic(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert_header(captured, "Gotk-Component", "kustomize-controller")
    assert_header(captured, "X-Team", "platform")
    assert info == INFO.to_json_dict() and error == ERROR.to_json_dict()


def check_generic_hmac(captured: list[Captured]) -> None:
    sent(captured)
    for request in captured:
        digest = hmac.new(TOKEN.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers.get("X-Signature") == f"sha256={digest}"


def check_lark(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert info["msg_type"] == "interactive"
    assert OBJECT in json.dumps(info, ensure_ascii=False)
    assert "Reconciliation failed" in json.dumps(error, ensure_ascii=False)


def check_dingtalk(captured: list[Captured]) -> None:
    info, _ = sent(captured)
    assert info["msgtype"] == "markdown"
    assert "Reconciliation finished" in info["markdown"]["text"]
    for request in captured:
        timestamp, sign = request.query["timestamp"], request.query["sign"]
        digest = hmac.new(TOKEN.encode(), f"{timestamp}\n{TOKEN}".encode(), hashlib.sha256)
        assert sign == base64.b64encode(digest.digest()).decode()


def check_wecom(captured: list[Captured]) -> None:
    info, _ = sent(captured)
    assert {request.query.get("key") for request in captured} == {"robot-key"}
    assert info["msgtype"] == "markdown"
    assert "Reconciliation finished" in info["markdown"]["content"]


def check_feishu(captured: list[Captured]) -> None:
    info, _ = sent(captured)
    key = f"{info['timestamp']}\n{TOKEN}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert info["sign"] == expected
    assert "Reconciliation finished" in json.dumps(info, ensure_ascii=False)


def check_gitea(captured: list[Captured]) -> None:
    posts = [request for request in captured if request.method == "POST"]
    assert [request.path for request in posts] == [f"/api/v1/repos/k3s/fleet/statuses/{SHA}"] * 2
    assert_header(posts, "Authorization", f"token {TOKEN}")
    assert [body_of(request)["state"] for request in posts] == ["success", "failure"]


def check_github(captured: list[Captured]) -> None:
    posts = [request for request in captured if request.method == "POST"]
    assert [request.path for request in posts] == [f"/api/v3/repos/my-org/fleet/statuses/{SHA}"] * 2
    assert_header(posts, "Authorization", f"Bearer {TOKEN}")
    assert [body_of(request)["state"] for request in posts] == ["success", "failure"]


# --- Microsoft Teams ----------------------------------------------------------------------


def check_msteams_workflow(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert info["type"] == "message"
    attachment = info["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["msteams"] == {"width": "Full"}
    title, message, facts = card["body"][0]["items"]
    assert title == {
        "type": "TextBlock",
        "text": OBJECT,
        "size": "large",
        "weight": "bolder",
        "wrap": True,
    }
    assert message == {"type": "TextBlock", "text": INFO.message, "wrap": True}
    assert facts == {"type": "FactSet", "facts": [{"title": "revision", "value": REVISION}]}
    error_message = error["attachments"][0]["content"]["body"][0]["items"][1]
    assert error_message["color"] == "attention"


def check_msteams_connector(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert info["@type"] == "MessageCard" and info["summary"] == OBJECT
    assert info["themeColor"] == "0076D7" and error["themeColor"] == "FF0000"
    assert info["sections"][0]["facts"] == [{"name": "revision", "value": REVISION}]


# --- Types added with their Flux payloads ---------------------------------------------------


def check_rocket(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert info["channel"] == "ops" and info["username"] == "flux"
    attachment = info["attachments"][0]
    assert attachment["color"] == "#0076D7" and error["attachments"][0]["color"] == "#FF0000"
    assert attachment["author_name"] == OBJECT and attachment["mrkdwn_in"] == ["text"]
    assert attachment["fields"] == [{"title": "revision", "value": REVISION, "short": False}]


def check_webex(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert_header(captured, "Authorization", f"Bearer {TOKEN}")
    assert info["roomId"] == "Y2lzY29zcGFyazovL3VzL1JPT00v"
    assert info["markdown"] == (
        f"\N{WHITE HEAVY CHECK MARK} **{OBJECT}**\nReconciliation finished\n"
        f">**revision**: {REVISION}\n"
    )
    assert error["markdown"].startswith("\N{BOMB} ")


def check_matrix(captured: list[Captured]) -> None:
    info, error = sent(captured, method="PUT")
    assert_header(captured, "Authorization", f"Bearer {TOKEN}")
    prefix = "/_matrix/client/r0/rooms/!room:example.org/send/m.room.message/"
    transaction_ids = [request.path.removeprefix(prefix) for request in captured]
    assert all(request.path.startswith(prefix) for request in captured)
    assert all(len(txn) == 40 for txn in transaction_ids) and len(set(transaction_ids)) == 2
    assert info == {
        "msgtype": "m.text",
        "body": f"\N{DIZZY SYMBOL} {OBJECT}\nReconciliation finished\n- revision: {REVISION}\n",
    }
    assert error["body"].startswith("\N{POLICE CARS REVOLVING LIGHT} ")


def check_opsgenie(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert_header(captured, "Authorization", f"GenieKey {TOKEN}")
    assert info["message"] == "Kustomization/realm-ix"
    assert info["description"] == "Reconciliation finished"
    assert info["details"] == {"revision": REVISION, "severity": "info"}
    alias_key = f"{PROVIDER_UID}/Kustomization/flux-system/realm-ix/ReconciliationSucceeded"
    assert info["alias"] == hashlib.sha256(alias_key.encode()).hexdigest()
    assert error["details"]["severity"] == "error" and error["alias"] != info["alias"]


def check_alertmanager(captured: list[Captured]) -> None:
    """``captured`` holds the real Alertmanager's answer to ``GET /api/v2/alerts``."""
    (listing,) = captured
    alerts = {alert["labels"]["alertname"]: alert for alert in body_of(listing)}
    assert set(alerts) == {
        "FluxKustomizationReconciliationsucceeded",
        "FluxKustomizationReconciliationfailed",
    }
    info = alerts["FluxKustomizationReconciliationsucceeded"]
    assert info["labels"] == {
        "alertname": "FluxKustomizationReconciliationsucceeded",
        "severity": "info",
        "reason": "ReconciliationSucceeded",
        "kind": "Kustomization",
        "name": "realm-ix",
        "namespace": "flux-system",
        "reportingcontroller": "kustomize-controller",
        "revision": REVISION,
    }
    assert info["annotations"] == {"message": "Reconciliation finished"}
    assert info["startsAt"].startswith("2024-05-01T12:00:00")
    assert info["status"]["state"] == "active"


def check_grafana(captured: list[Captured]) -> None:
    info, _ = sent(captured)
    assert_header(captured, "Authorization", f"Bearer {TOKEN}")
    assert {request.path for request in captured} == {"/api/annotations"}
    assert info == {
        "when": 1714564800,
        "text": OBJECT,
        "tags": [
            "flux",
            "kustomize-controller",
            f"revision: {REVISION.replace(':', '|')}",
            "kind: Kustomization",
            "name: realm-ix",
            "namespace: flux-system",
        ],
    }


def check_pagerduty(captured: list[Captured]) -> None:
    # info: resolve + change event; error: trigger.
    resolve, change, trigger = sent(captured, count=3)
    assert [request.path for request in captured] == [
        "/v2/enqueue",
        "/v2/change/enqueue",
        "/v2/enqueue",
    ]
    assert resolve == {"routing_key": "R0UT1NGK3Y", "event_action": "resolve", "dedup_key": UID}
    details = {"message": "Reconciliation finished", "metadata": {"revision": REVISION}}
    assert change == {
        "routing_key": "R0UT1NGK3Y",
        "payload": {
            "summary": "reconciliation succeeded: kustomization/realm-ix",
            "source": "Flux kustomize-controller",
            "timestamp": TIMESTAMP,
            "custom_details": details,
        },
    }
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == UID
    assert trigger["payload"] == {
        "summary": "reconciliation failed: kustomization/realm-ix",
        "source": "Flux kustomize-controller",
        "severity": "error",
        "timestamp": TIMESTAMP,
        "component": "realm-ix",
        "group": "Kustomization",
        "custom_details": {"message": "Reconciliation failed", "metadata": {"revision": REVISION}},
    }


def check_datadog(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert {request.path for request in captured} == {"/api/v1/events"}
    assert_header(captured, "DD-API-KEY", TOKEN)
    assert info == {
        "title": "Events from the Kustomization realm-ix/flux-system",
        "text": "Reconciliation finished",
        "tags": [
            "flux_reporting_controller:kustomize-controller",
            "flux_reason:reconciliationsucceeded",
            "kube_kind:kustomization",
            "kube_name:realm-ix",
            "kube_namespace:flux-system",
            f"revision:{REVISION}",
        ],
        "source_type_name": "fluxcd",
        "date_happened": 1714564800,
        "alert_type": "info",
    }
    assert error["alert_type"] == "error"


def _envelope_items(request: Captured) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    header, item_header, item = request.body.rstrip(b"\n").split(b"\n")
    assert item_header and json.loads(item_header)["length"] == len(item)
    return json.loads(header), json.loads(item_header), json.loads(item)


def check_sentry(captured: list[Captured]) -> None:
    assert [request.method for request in captured] == ["POST", "POST"]
    assert {request.path for request in captured} == {"/api/42/envelope/"}
    for request in captured:
        assert request.headers["Content-Type"] == "application/x-sentry-envelope"
        auth = request.headers["X-Sentry-Auth"]
        assert auth.startswith("Sentry sentry_version=7, ") and "sentry_key=publickey" in auth
    _, info_type, transaction = _envelope_items(captured[0])
    assert info_type["type"] == "transaction"
    assert transaction["transaction"] == "Kustomization: flux-system/realm-ix"
    assert transaction["environment"] == "production"
    assert transaction["tags"]["flux_reason"] == "ReconciliationSucceeded"
    assert transaction["tags"]["revision"] == REVISION
    _, error_type, error = _envelope_items(captured[1])
    assert error_type["type"] == "event"
    assert error["level"] == "error" and error["message"] == "Reconciliation failed"
    assert error["server_name"] == "kustomize-controller"
    assert error["contexts"] == {"metadata": {"revision": REVISION}}


def check_zulip(captured: list[Captured]) -> None:
    assert [request.method for request in captured] == ["POST", "POST"]
    assert {request.path for request in captured} == {"/api/v1/messages"}
    basic = base64.b64encode(b"flux-bot@zulip.example.com:" + TOKEN.encode()).decode()
    assert_header(captured, "Authorization", f"Basic {basic}")
    forms = [parse_qs(request.body.decode()) for request in captured]
    for request in captured:
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert forms[0]["type"] == ["stream"] and forms[0]["to"] == ["deploys"]
    assert forms[0]["topic"] == ["production"]
    assert forms[0]["content"] == [
        "## Flux Status\n\n\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16} "
        "Kustomization/flux-system/realm-ix\n\nReconciliation finished\n\n"
        f"Metadata:\n* `revision`: {REVISION}\n"
    ]
    assert forms[1]["content"][0].startswith(
        "## Flux Status\n\n\N{WARNING SIGN}\N{VARIATION SELECTOR-16} "
    )


def check_nats(captured: list[Captured]) -> None:
    """``captured`` holds the messages a subscriber got from the real NATS server."""
    assert [(message.method, message.path) for message in captured] == [
        ("MSG", "flux.events"),
        ("MSG", "flux.events"),
    ]
    assert [body_of(message) for message in captured] == [
        INFO.to_json_dict(),
        ERROR.to_json_dict(),
    ]


def check_zoom(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert_header(captured, "Authorization", TOKEN)
    assert {request.query.get("format") for request in captured} == {"full"}
    assert info == {
        "content": {
            "head": {"text": OBJECT, "sub_head": {"text": "info"}},
            "body": [
                {"type": "message", "text": "Reconciliation finished"},
                {"type": "fields", "items": [{"key": "revision", "value": REVISION}]},
            ],
        }
    }
    assert error["content"]["head"]["sub_head"] == {"text": "error"}


def check_incidentio(captured: list[Captured]) -> None:
    info, error = sent(captured)
    assert_header(captured, "Authorization", f"Bearer {TOKEN}")
    assert info == {
        "title": f"{OBJECT}: ReconciliationSucceeded",
        "status": "resolved",
        "deduplication_key": UID,
        "description": "Reconciliation finished",
        "metadata": {
            "revision": REVISION,
            "severity": "info",
            "reason": "ReconciliationSucceeded",
            "reportingController": "kustomize-controller",
        },
    }
    assert error["status"] == "firing" and error["deduplication_key"] == UID


def protobuf_fields(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields by number: ints for varint/fixed, bytes for the rest."""
    fields: dict[int, list[Any]] = {}
    position = 0

    def varint() -> int:
        nonlocal position
        value, shift = 0, 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while position < len(data):
        tag = varint()
        number, wire_type = tag >> 3, tag & 7
        value: Any
        if wire_type == 0:
            value = varint()
        elif wire_type == 1:
            value = struct.unpack_from("<Q", data, position)[0]
            position += 8
        elif wire_type == 5:
            value = struct.unpack_from("<I", data, position)[0]
            position += 4
        else:
            assert wire_type == 2, f"unexpected wire type {wire_type}"
            length = varint()
            value = data[position : position + length]
            position += length
        fields.setdefault(number, []).append(value)
    return fields


def otlp_attributes(raw: list[bytes]) -> list[tuple[str, str]]:
    pairs = []
    for key_value in raw:
        fields = protobuf_fields(key_value)
        (any_value,) = fields[2]
        pairs.append((fields[1][0].decode(), protobuf_fields(any_value)[1][0].decode()))
    return pairs


def otlp_span(request: Captured) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
    """The one span of an ``ExportTraceServiceRequest``, and its ``ResourceSpans``."""
    (resource_spans,) = protobuf_fields(request.body)[1]
    resource_fields = protobuf_fields(resource_spans)
    (scope_spans,) = resource_fields[2]
    scope_fields = protobuf_fields(scope_spans)
    assert protobuf_fields(scope_fields[1][0]) == {1: [b"flux:notification-controller"]}
    (span,) = scope_fields[2]
    return protobuf_fields(span), resource_fields


def check_otel(captured: list[Captured]) -> None:
    assert [request.method for request in captured] == ["POST", "POST"]
    assert {request.path for request in captured} == {"/v1/traces"}
    assert_header(captured, "Authorization", f"Bearer {TOKEN}")
    assert_header(captured, "X-Scope-OrgID", "tenant-1")
    assert_header(captured, "Content-Type", "application/x-protobuf")
    span, resource_spans = otlp_span(captured[0])
    (resource,) = resource_spans[1]
    assert otlp_attributes(protobuf_fields(resource)[1]) == [
        ("service.instance.id", ALERT_UID),
        ("service.name", "flux-system/on-call"),
        ("service.namespace", "flux-system"),
    ]
    assert resource_spans[3] == [b"https://opentelemetry.io/schemas/1.34.0"]
    expected_trace = hashlib.sha256(f"{ALERT_UID}:{REVISION}".encode()).digest()[:16]
    assert span[1] == [expected_trace] and len(span[2][0]) == 8
    assert span[5] == [b"Kustomization: flux-system/realm-ix"]
    assert span[6] == [1]  # SPAN_KIND_INTERNAL
    assert span[7] == [1714564800 * 10**9] and span[8][0] >= span[7][0]
    assert otlp_attributes(span[9]) == [
        ("object.uid", UID),
        ("object.kind", "Kustomization"),
        ("object.name", "realm-ix"),
        ("object.namespace", "flux-system"),
        ("revision", REVISION),
    ]
    assert protobuf_fields(span[15][0]) == {3: [1]}  # STATUS_CODE_OK, no description
    error_span, _ = otlp_span(captured[1])
    assert error_span[1] == [expected_trace]  # one revision, one trace
    assert protobuf_fields(error_span[15][0]) == {2: [b"Reconciliation failed"], 3: [2]}


# The Provider's metadata.uid the runner gives every Provider (Opsgenie hashes it).
PROVIDER_UID: Final = "4a1b2c3d-1111-2222"

CASES: tuple[ProviderCase, ...] = (
    ProviderCase(
        "slack",
        "/api/chat.postMessage",
        check_slack,
        secret={"token": TOKEN},
        spec={"channel": "general", "username": "flux"},
        reply=(200, '{"ok": true}'),
    ),
    ProviderCase("discord", "/api/webhooks/1/abc", check_discord),
    ProviderCase("msteams", "/workflows/invoke", check_msteams_workflow),
    ProviderCase("googlechat", "/v1/spaces/AAA/messages", check_googlechat),
    ProviderCase(
        "telegram",
        "",
        check_telegram,
        secret={"token": TOKEN},
        spec={"channel": "@fluxops"},
        reply=(200, '{"ok": true}'),
    ),
    ProviderCase("generic", "/hooks/flux", check_generic, secret={"headers": "X-Team: platform"}),
    ProviderCase("generic-hmac", "/hooks/flux", check_generic_hmac, secret={"token": TOKEN}),
    ProviderCase("lark", "/open-apis/bot/v2/hook/abc", check_lark, reply=(200, '{"code": 0}')),
    ProviderCase(
        "dingtalk",
        "/robot/send",
        check_dingtalk,
        secret={"token": TOKEN},
        reply=(200, '{"errcode": 0}'),
    ),
    ProviderCase(
        "wecom", "/cgi-bin/webhook/send?key=robot-key", check_wecom, reply=(200, '{"errcode": 0}')
    ),
    ProviderCase(
        "feishu",
        "/open-apis/bot/v2/hook/abc",
        check_feishu,
        secret={"token": TOKEN},
        reply=(200, '{"code": 0}'),
    ),
    ProviderCase(
        "gitea",
        "/k3s/fleet",
        check_gitea,
        secret={"token": TOKEN},
        reply=(201, "[]"),
        commit_status=True,
    ),
    ProviderCase(
        "github",
        "/my-org/fleet",
        check_github,
        secret={"token": TOKEN},
        reply=(201, "[]"),
        commit_status=True,
    ),
    ProviderCase(
        "rocket", "/hooks/abc/def", check_rocket, spec={"channel": "ops", "username": "flux"}
    ),
    ProviderCase(
        "webex",
        "/v1/messages",
        check_webex,
        secret={"token": TOKEN},
        spec={"channel": "Y2lzY29zcGFyazovL3VzL1JPT00v"},
    ),
    ProviderCase(
        "matrix", "", check_matrix, secret={"token": TOKEN}, spec={"channel": "!room:example.org"}
    ),
    ProviderCase(
        "opsgenie",
        "/v2/alerts",
        check_opsgenie,
        secret={"token": TOKEN},
        reply=(202, '{"result": "Request will be processed"}'),
    ),
    ProviderCase(
        "alertmanager",
        "/api/v2/alerts",
        check_alertmanager,
        secret={"username": ALERTMANAGER_USER, "password": ALERTMANAGER_PASSWORD},
    ),
    ProviderCase("grafana", "/api/annotations", check_grafana, secret={"token": TOKEN}),
    ProviderCase(
        "pagerduty",
        "/ignored/path",
        check_pagerduty,
        spec={"channel": "R0UT1NGK3Y"},
        reply=(202, '{"status": "success"}'),
    ),
    ProviderCase(
        "datadog",
        "/ignored/path",
        check_datadog,
        secret={"token": TOKEN},
        reply=(202, '{"status": "ok"}'),
    ),
    # The DSN carries the project's key, so it is the Secret's address; the runner
    # puts the local server's host:port in place of {hostport}.
    ProviderCase(
        "sentry",
        "",
        check_sentry,
        secret={"address": "http://publickey@{hostport}/42"},
        spec={"channel": "production"},
    ),
    ProviderCase(
        "zulip",
        "/ignored/path",
        check_zulip,
        secret={"username": "flux-bot@zulip.example.com", "password": TOKEN},
        spec={"channel": "deploys/production"},
    ),
    ProviderCase(
        "nats",
        "",
        check_nats,
        secret={"username": "fluxd", "password": TOKEN},
        spec={"channel": "flux.events"},
    ),
    ProviderCase("zoom", "/v2/im/chat/webhooks/abc", check_zoom, secret={"token": TOKEN}),
    ProviderCase(
        "otel", "", check_otel, secret={"headers": "X-Scope-OrgID: tenant-1", "token": TOKEN}
    ),
    ProviderCase(
        "incident.io", "/v2/alert_events/http/01ABC", check_incidentio, secret={"token": TOKEN}
    ),
)

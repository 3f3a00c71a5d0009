"""Provider cases of the Git forges and cloud services: what each forge's REST API receives.

Each check reads the state the status should have from the description the
provider wrote ("reconciliation succeeded" or "reconciliation failed"), so one
check serves the info and the error event alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.notify.provider_cases import Captured, ProviderCase

TOKEN: Final = "forge-token-0123456789"
SHA_PATTERN: Final = "[0-9a-f]{40}"
# The default status key: kind/name/<first block of the Provider uid>, lower case.
DEFAULT_KEY: Final = re.compile(r"^kustomization/[a-z0-9.-]+/[0-9a-z]+$")
SUCCEEDED: Final = "reconciliation succeeded"
FAILED: Final = "reconciliation failed"


def _body(request: Captured) -> Any:
    return json.loads(request.body)


def _header(request: Captured, name: str) -> str:
    lowered = {key.lower(): value for key, value in request.headers.items()}
    return lowered.get(name.lower(), "")


def _state(description: str, *, succeeded: str, failed: str) -> str:
    assert description in (SUCCEEDED, FAILED), description
    return succeeded if description == SUCCEEDED else failed


def _methods(captured: list[Captured]) -> list[str]:
    return [request.method for request in captured]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def check_gitea(captured: list[Captured]) -> None:
    listing, post = captured
    assert re.fullmatch(f"/api/v1/repos/org/app/statuses/{SHA_PATTERN}", listing.path)
    assert listing.method == "GET" and listing.query == {"page": "1", "limit": "50"}
    assert post.method == "POST" and post.path == listing.path
    for request in captured:
        assert _header(request, "Authorization") == f"token {TOKEN}"
    body = _body(post)
    assert body["state"] == _state(body["description"], succeeded="success", failed="failure")
    assert DEFAULT_KEY.match(body["context"]) and body["target_url"] == ""


def check_github(captured: list[Captured]) -> None:
    listing, post = captured
    # A host other than github.com is GitHub Enterprise: the API lives under /api/v3.
    assert re.fullmatch(f"/api/v3/repos/org/app/commits/{SHA_PATTERN}/statuses", listing.path)
    assert listing.method == "GET" and listing.query == {"per_page": "50"}
    sha = listing.path.split("/")[-2]
    assert post.method == "POST" and post.path == f"/api/v3/repos/org/app/statuses/{sha}"
    for request in captured:
        assert _header(request, "Authorization") == f"Bearer {TOKEN}"
    body = _body(post)
    assert body["state"] == _state(body["description"], succeeded="success", failed="failure")
    assert DEFAULT_KEY.match(body["context"])


def check_gitlab(captured: list[Captured]) -> None:
    listing, post = captured
    # The project id is the whole path, nested group included, as one escaped segment.
    project = "/api/v4/projects/platform/infra/app"
    assert listing.method == "GET"
    assert re.fullmatch(f"{project}/repository/commits/{SHA_PATTERN}/statuses", listing.path)
    sha = listing.path.split("/")[-2]
    assert post.method == "POST" and post.path == f"{project}/statuses/{sha}"
    for request in captured:
        assert _header(request, "PRIVATE-TOKEN") == TOKEN
    body = _body(post)
    assert set(body) == {"state", "name", "description"}
    assert body["state"] == _state(body["description"], succeeded="success", failed="failed")
    assert DEFAULT_KEY.match(body["name"]) and listing.query == {"name": body["name"]}


def check_bitbucket(captured: list[Captured]) -> None:
    lookup, post = captured
    builds = f"/2.0/repositories/team/app/commit/{SHA_PATTERN}/statuses/build"
    assert lookup.method == "GET" and re.fullmatch(f"{builds}/[0-9a-f]{{40}}", lookup.path)
    assert post.method == "POST" and post.path == lookup.path.rpartition("/")[0]
    for request in captured:
        assert _header(request, "Authorization") == _basic("flux-bot", "app-password")
    body = _body(post)
    assert body["state"] == _state(body["description"], succeeded="SUCCESSFUL", failed="FAILED")
    # The key is the SHA-1 of the status key (Bitbucket keys hold 40 characters at most).
    assert body["key"] == lookup.path.rpartition("/")[2]
    assert body["name"] == "kustomization/realm-ix" and body["url"] == "https://bitbucket.org"


def check_bitbucketserver(captured: list[Captured]) -> None:
    lookup, post = captured
    builds = f"/bitbucket/rest/api/latest/projects/OPS/repos/app/commits/{SHA_PATTERN}/builds"
    assert lookup.method == "GET" and re.fullmatch(builds, lookup.path)
    assert post.method == "POST" and post.path == lookup.path
    for request in captured:
        assert _header(request, "Authorization") == _basic("flux", "s3cret-password")
        assert _header(request, "x-atlassian-token") == "no-check"
        assert _header(request, "x-requested-with") == "XMLHttpRequest"
    body = _body(post)
    assert lookup.query == {"key": body["key"]} and re.fullmatch("[0-9a-f]{40}", body["key"])
    description = body["description"]
    assert body["state"] == _state(description, succeeded="SUCCESSFUL", failed="FAILED")
    # The server shows the name only, so Flux puts the description in it.
    assert body["name"] == f"kustomization/realm-ix [{description}]"
    assert body["url"].endswith("/bitbucket/scm/OPS/app.git")


def check_azuredevops(captured: list[Captured]) -> None:
    listing, post = captured
    statuses = f"/acme/shop/_apis/git/repositories/app/commits/{SHA_PATTERN}/statuses"
    assert listing.method == "GET" and re.fullmatch(statuses, listing.path)
    assert post.method == "POST" and post.path == listing.path
    for request in captured:
        # A personal access token is basic auth with an empty user name.
        assert _header(request, "Authorization") == _basic("", TOKEN)
        assert _header(request, "Accept") == "application/json;api-version=6.0-preview.1"
    assert _header(post, "Content-Type") == "application/json; charset=utf-8"
    body = _body(post)
    assert body["state"] == _state(body["description"], succeeded="succeeded", failed="error")
    assert body["context"]["genre"] == "fluxcd" and DEFAULT_KEY.match(body["context"]["name"])


def check_githubdispatch(captured: list[Captured]) -> None:
    (dispatch,) = captured
    assert dispatch.method == "POST" and dispatch.path == "/api/v3/repos/org/app/dispatches"
    assert _header(dispatch, "Authorization") == f"Bearer {TOKEN}"
    body = _body(dispatch)
    assert set(body) == {"event_type", "client_payload"}
    payload = body["client_payload"]
    involved = payload["involvedObject"]
    assert body["event_type"] == f"{involved['kind']}/{involved['name']}.{involved['namespace']}"
    # The payload is Flux's event JSON.
    assert payload["severity"] in ("info", "error") and payload["message"]
    assert payload["reason"] and payload["reportingController"]


def _comment_marker(body: str, prefix: str) -> None:
    marker, _, post = body.partition("\n\n")
    assert re.fullmatch(f"<!-- {prefix}:[0-9a-f-]+/Kustomization/flux-system/realm-ix -->", marker)
    heading, mark_and_object, message, metadata = post.split("\n\n", 3)
    assert heading == "## Flux Status" and message
    # Flux marks errors with a warning sign and the rest with an information sign.
    assert mark_and_object in (
        "\N{WARNING SIGN}\ufe0f Kustomization/flux-system/realm-ix",
        "\N{INFORMATION SOURCE}\ufe0f Kustomization/flux-system/realm-ix",
    )
    # The request number is not repeated among the metadata.
    assert metadata.startswith("Metadata:\n") and "change_request" not in metadata


def check_githubpullrequestcomment(captured: list[Captured]) -> None:
    user, listing, create = captured
    assert (user.method, user.path) == ("GET", "/api/v3/user")
    assert (listing.method, listing.path) == ("GET", "/api/v3/repos/org/app/issues/7/comments")
    assert listing.query == {"sort": "created", "direction": "asc", "per_page": "100"}
    assert (create.method, create.path) == ("POST", "/api/v3/repos/org/app/issues/7/comments")
    for request in captured:
        assert _header(request, "Authorization") == f"Bearer {TOKEN}"
    _comment_marker(_body(create)["body"], "flux-pr-comment-key")


def check_giteapullrequestcomment(captured: list[Captured]) -> None:
    user, listing, create = captured
    assert (user.method, user.path) == ("GET", "/api/v1/user")
    assert (listing.method, listing.path) == ("GET", "/api/v1/repos/org/app/issues/7/comments")
    assert listing.query == {"page": "1", "limit": "100"}
    assert (create.method, create.path) == ("POST", "/api/v1/repos/org/app/issues/7/comments")
    for request in captured:
        assert _header(request, "Authorization") == f"token {TOKEN}"
    _comment_marker(_body(create)["body"], "flux-pr-comment-key")


def check_gitlabmergerequestcomment(captured: list[Captured]) -> None:
    user, listing, create = captured
    notes = "/api/v4/projects/platform/infra/app/merge_requests/7/notes"
    assert (user.method, user.path) == ("GET", "/api/v4/user")
    assert (listing.method, listing.path) == ("GET", notes)
    assert listing.query == {"sort": "asc", "order_by": "created_at", "per_page": "100"}
    assert (create.method, create.path) == ("POST", notes)
    for request in captured:
        assert _header(request, "PRIVATE-TOKEN") == TOKEN
    _comment_marker(_body(create)["body"], "flux-mr-comment-key")


# Cloud services: not at {base}{path}. The runner reaches the local server by
# pointing the googlepubsub module's PUBSUB_ENDPOINT at it, and for
# azureeventhub by formatting {host} in the Secret and speaking plain HTTP.
PUBSUB_PROJECT: Final = "gitops-prod"
PUBSUB_TOPIC: Final = "flux-events"
_PUBSUB_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBSUB_CREDENTIALS: Final = json.dumps(
    {
        "type": "service_account",
        "project_id": PUBSUB_PROJECT,
        "private_key_id": "4f1c2d",
        "private_key": _PUBSUB_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": "flux@gitops-prod.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
)
EVENTHUB_KEY: Final = "c2VjcmV0LXNhcy1rZXk="
# One answer serves every request of a comment case: it names the token's user
# (GitHub and Gitea "login", GitLab "username") and, being no list, holds no comments.
COMMENT_REPLY: Final = (200, '{"login": "flux-bot", "username": "flux-bot", "id": 1}')


def check_googlepubsub(captured: list[Captured]) -> None:
    (publish,) = captured
    assert publish.method == "POST"
    assert publish.path == f"/v1/projects/{PUBSUB_PROJECT}/topics/{PUBSUB_TOPIC}:publish"
    scheme, _, token = _header(publish, "Authorization").partition(" ")
    assert scheme == "Bearer"
    # A self-signed JWT of the service account, verifiable with its public key.
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == "4f1c2d"
    claims = jwt.decode(token, _PUBSUB_KEY.public_key(), algorithms=["RS256"])
    assert claims["iss"] == claims["sub"] == "flux@gitops-prod.iam.gserviceaccount.com"
    assert "https://www.googleapis.com/auth/pubsub" in claims["scope"].split()
    assert claims["exp"] > claims["iat"]
    (message,) = _body(publish)["messages"]
    event = json.loads(base64.b64decode(message["data"]))
    assert event["involvedObject"]["kind"] == "Kustomization" and event["message"]
    assert message["attributes"] == {"cluster": "edge-7", "team": "platform"}


def check_azureeventhub(captured: list[Captured]) -> None:
    (send,) = captured
    assert (send.method, send.path) == ("POST", "/flux-events/messages")
    assert send.query == {"timeout": "60", "api-version": "2014-01"}
    assert _header(send, "Content-Type") == "application/atom+xml;type=entry;charset=utf-8"
    scheme, _, signature = _header(send, "Authorization").partition(" ")
    assert scheme == "SharedAccessSignature"
    fields = {name: values[0] for name, values in parse_qs(signature).items()}
    assert fields["skn"] == "RootManageSharedAccessKey"
    resource = unquote(fields["sr"])
    assert resource.endswith("/flux-events")
    # Azure's SAS: HMAC-SHA256 of the encoded resource URI and the expiry, with the key.
    signed = f"{quote(resource, safe='')}\n{fields['se']}".encode()
    expected = hmac.new(EVENTHUB_KEY.encode(), signed, hashlib.sha256).digest()
    assert base64.b64decode(fields["sig"]) == expected
    event = _body(send)
    assert event["involvedObject"]["name"] == "realm-ix" and event["severity"] in ("info", "error")


CASES: tuple[ProviderCase, ...] = (
    ProviderCase(
        "gitea",
        "/org/app.git",
        check_gitea,
        secret={"token": TOKEN},
        reply=(200, "[]"),
        commit_status=True,
    ),
    ProviderCase(
        "github",
        "/org/app",
        check_github,
        secret={"token": TOKEN},
        reply=(201, "[]"),
        commit_status=True,
    ),
    ProviderCase(
        "gitlab",
        "/platform/infra/app.git",
        check_gitlab,
        secret={"token": TOKEN},
        reply=(201, "[]"),
        commit_status=True,
    ),
    ProviderCase(
        "bitbucket",
        "/team/app.git",
        check_bitbucket,
        secret={"token": "flux-bot:app-password"},
        reply=(201, "{}"),
        commit_status=True,
    ),
    ProviderCase(
        "bitbucketserver",
        "/bitbucket/scm/OPS/app.git",
        check_bitbucketserver,
        secret={"password": "s3cret-password"},
        spec={"username": "flux"},
        reply=(200, "{}"),
        commit_status=True,
    ),
    ProviderCase(
        "azuredevops",
        "/acme/shop/_git/app",
        check_azuredevops,
        secret={"token": TOKEN},
        reply=(200, '{"count": 0, "value": []}'),
        commit_status=True,
    ),
    ProviderCase(
        "githubdispatch",
        "/org/app",
        check_githubdispatch,
        secret={"token": TOKEN},
        reply=(204, ""),
    ),
    ProviderCase(
        "githubpullrequestcomment",
        "/org/app",
        check_githubpullrequestcomment,
        secret={"token": TOKEN},
        reply=COMMENT_REPLY,
    ),
    ProviderCase(
        "giteapullrequestcomment",
        "/org/app",
        check_giteapullrequestcomment,
        secret={"token": TOKEN},
        reply=COMMENT_REPLY,
    ),
    ProviderCase(
        "googlepubsub",
        PUBSUB_PROJECT,
        check_googlepubsub,
        secret={"token": PUBSUB_CREDENTIALS, "headers": "team: platform\ncluster: edge-7\n"},
        spec={"channel": PUBSUB_TOPIC},
        reply=(200, '{"messageIds": ["3141"]}'),
    ),
    ProviderCase(
        "azureeventhub",
        "",
        check_azureeventhub,
        secret={
            "address": "Endpoint=sb://{host}/;SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={EVENTHUB_KEY};EntityPath=flux-events"
        },
        reply=(201, ""),
    ),
    ProviderCase(
        "gitlabmergerequestcomment",
        "/platform/infra/app",
        check_gitlabmergerequestcomment,
        secret={"token": TOKEN},
        reply=COMMENT_REPLY,
    ),
)

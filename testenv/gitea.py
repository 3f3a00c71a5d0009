"""Gitea's webhook deliveries, byte for byte: push payloads and the headers that sign them.

Used by the tests and the demo to call fluxd's receivers exactly as a real
Gitea would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid


def gitea_push(*, repository: str = "k3s/k3s-private", after: str | None = None) -> bytes:
    """A push event body as Gitea sends it (abridged to the fields Gitea always includes)."""
    owner, name = repository.split("/")
    commit = after or hashlib.sha1(uuid.uuid4().bytes).hexdigest()
    html = f"http://gitea-svc.default.svc.cluster.local:3000/{repository}"
    user = {"id": 1, "login": owner, "full_name": "", "email": f"{owner}@example.com"}
    payload = {
        "ref": "refs/heads/master",
        "before": "0" * 40,
        "after": commit,
        "compare_url": f"{html}/compare/{'0' * 40}...{commit}",
        "commits": [
            {
                "id": commit,
                "message": "realm: new ix endpoint\n",
                "url": f"{html}/commit/{commit}",
                "author": {"name": owner, "email": f"{owner}@example.com", "username": owner},
                "committer": {"name": owner, "email": f"{owner}@example.com", "username": owner},
                "timestamp": "2024-05-01T10:00:00Z",
                "added": [],
                "removed": [],
                "modified": ["realm/ix/realm_ix.toml"],
            }
        ],
        "total_commits": 1,
        "head_commit": None,
        "repository": {
            "id": 7,
            "owner": user,
            "name": name,
            "full_name": repository,
            "private": True,
            "html_url": html,
            "clone_url": f"{html}.git",
            "default_branch": "master",
        },
        "pusher": user,
        "sender": user,
    }
    return json.dumps(payload, indent=2).encode()


def gitea_headers(body: bytes, *, secret: str, event: str = "push") -> dict[str, str]:
    """The headers Gitea puts on a webhook delivery signed with ``secret``.

    tests/e2e/test_gitea.py checks these names against a real Gitea's delivery.
    """
    sha256 = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    delivery = str(uuid.uuid4())
    return {
        "Content-Type": "application/json",
        "User-Agent": "Go-http-client/1.1",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Event": event,
        "X-Gitea-Event-Type": event,
        "X-Gitea-Hook-Installation-Target-Type": "repository",
        "X-Gitea-Signature": sha256,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "X-GitHub-Event-Type": event,
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-Gogs-Delivery": delivery,
        "X-Gogs-Event": event,
        "X-Gogs-Event-Type": event,
        "X-Gogs-Signature": sha256,
        "X-Hub-Signature": f"sha1={sha1}",
        "X-Hub-Signature-256": f"sha256={sha256}",
    }

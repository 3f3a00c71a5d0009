"""Gitea pull request comment, as Flux's ``giteapullrequestcomment`` provider keeps it.

``GET /api/v1/user`` names the token's user; the pull request's comments are
listed with ``GET /api/v1/repos/{owner}/{repo}/issues/{number}/comments``
(page 1, 100), ours is edited with ``PATCH /api/v1/repos/{owner}/{repo}/issues/comments/{id}``
or created with ``POST .../issues/{number}/comments``; ``Authorization: token <token>``
(``write:issue``).
"""

from __future__ import annotations

from typing import ClassVar

from fluxd.notify.providers.change_request import ChangeRequestCommentProvider


class GiteaPullRequestCommentProvider(ChangeRequestCommentProvider):
    provider_type: ClassVar[str] = "giteapullrequestcomment"
    token_purpose: ClassVar[str] = "a Gitea access token with write:issue"

    def _api(self) -> str:
        return f"{self.repository().base_url}/api/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.config.token}", "Accept": "application/json"}

    def user_url(self) -> str:
        return f"{self._api()}/user"

    def listing_query(self) -> str:
        return "?page=1&limit=100"

    def comments_url(self, number: int) -> str:
        return f"{self._api()}/repos/{self.repository().api_path()}/issues/{number}/comments"

    def comment_url(self, number: int, comment_id: object) -> str:
        return f"{self._api()}/repos/{self.repository().api_path()}/issues/comments/{comment_id}"

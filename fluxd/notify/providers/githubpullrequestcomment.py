"""GitHub pull request comment, as Flux's ``githubpullrequestcomment`` provider keeps it.

``GET /user`` names the token's user; the pull request's comments are listed
with ``GET /repos/{owner}/{repo}/issues/{number}/comments`` (oldest first,
100), ours is edited with ``PATCH /repos/{owner}/{repo}/issues/comments/{id}``
or created with ``POST .../issues/{number}/comments``. Token only: GitHub App
credentials are not available.
"""

from __future__ import annotations

from typing import ClassVar

from fluxd.notify.providers.change_request import ChangeRequestCommentProvider
from fluxd.notify.providers.github import github_api_base, github_headers


class GitHubPullRequestCommentProvider(ChangeRequestCommentProvider):
    provider_type: ClassVar[str] = "githubpullrequestcomment"
    token_purpose: ClassVar[str] = "a GitHub token allowed to read and write pull request comments"

    def _api(self) -> str:
        return github_api_base(self.repository())

    def headers(self) -> dict[str, str]:
        return github_headers(self.config.token)

    def user_url(self) -> str:
        return f"{self._api()}/user"

    def listing_query(self) -> str:
        return "?sort=created&direction=asc&per_page=100"

    def comments_url(self, number: int) -> str:
        return f"{self._api()}/repos/{self.repository().api_path()}/issues/{number}/comments"

    def comment_url(self, number: int, comment_id: object) -> str:
        return f"{self._api()}/repos/{self.repository().api_path()}/issues/comments/{comment_id}"

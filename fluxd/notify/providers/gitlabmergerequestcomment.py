"""GitLab merge request comment, as Flux's ``gitlabmergerequestcomment`` provider keeps it.

``GET /api/v4/user`` names the token's user; the merge request's notes are
listed with ``GET /api/v4/projects/{id}/merge_requests/{iid}/notes`` (oldest
first, 100), ours is edited with ``PUT .../notes/{note_id}`` or created with
``POST .../notes``; ``PRIVATE-TOKEN`` (``api`` scope), the project id being the
whole address path as for commit statuses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.providers.change_request import (
    MR_COMMENT_KEY_PREFIX,
    ChangeRequestCommentProvider,
)
from fluxd.notify.providers.commit_status import parse_git_address
from fluxd.notify.providers.gitlab import gitlab_headers, gitlab_project_api


class GitLabMergeRequestCommentProvider(ChangeRequestCommentProvider):
    provider_type: ClassVar[str] = "gitlabmergerequestcomment"
    token_purpose: ClassVar[str] = "a GitLab access token with the api scope"
    comment_key_prefix: ClassVar[str] = MR_COMMENT_KEY_PREFIX
    edit_method: ClassVar[str] = "PUT"

    def validate_address(self) -> None:
        parse_git_address(self.config.address, provider_type=self.provider_type)

    def _project(self) -> str:
        return gitlab_project_api(
            parse_git_address(self.config.address, provider_type=self.provider_type)
        )

    def headers(self) -> dict[str, str]:
        return gitlab_headers(self.config.token)

    def user_url(self) -> str:
        address = parse_git_address(self.config.address, provider_type=self.provider_type)
        return f"{address.host}/api/v4/user"

    def login_of(self, user: Any) -> str:
        return str(user.get("username", "")) if isinstance(user, dict) else ""

    def author_of(self, comment: dict[str, Any]) -> str:
        return self.login_of(comment.get("author"))

    def listing_query(self) -> str:
        return "?sort=asc&order_by=created_at&per_page=100"

    def comments_url(self, number: int) -> str:
        return f"{self._project()}/merge_requests/{number}/notes"

    def comment_url(self, number: int, comment_id: object) -> str:
        return f"{self._project()}/merge_requests/{number}/notes/{comment_id}"

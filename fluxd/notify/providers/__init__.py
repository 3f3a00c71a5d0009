"""Providers by Flux ``spec.type``, and the one way to build one from its config.

``build_provider`` checks the config once (missing token, channel, bad
repository address → ``ProviderConfigError``), so a broken Provider is
reported when it is loaded rather than on every event.
"""

from __future__ import annotations

from typing import Final

import aiohttp

from fluxd.notify.config import ProviderConfig
from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.providers.alertmanager import AlertmanagerProvider
from fluxd.notify.providers.azuredevops import AzureDevOpsProvider
from fluxd.notify.providers.azureeventhub import AzureEventHubProvider
from fluxd.notify.providers.base import HttpProvider, Provider, RateLimit
from fluxd.notify.providers.bitbucket import BitbucketProvider
from fluxd.notify.providers.bitbucketserver import BitbucketServerProvider
from fluxd.notify.providers.datadog import DatadogProvider
from fluxd.notify.providers.dingtalk import DingTalkProvider
from fluxd.notify.providers.discord import DiscordProvider
from fluxd.notify.providers.feishu import FeishuProvider, LarkProvider
from fluxd.notify.providers.generic import GenericProvider
from fluxd.notify.providers.generic_hmac import GenericHmacProvider
from fluxd.notify.providers.gitea import GiteaProvider
from fluxd.notify.providers.giteapullrequestcomment import GiteaPullRequestCommentProvider
from fluxd.notify.providers.github import GitHubProvider
from fluxd.notify.providers.githubdispatch import GitHubDispatchProvider
from fluxd.notify.providers.githubpullrequestcomment import GitHubPullRequestCommentProvider
from fluxd.notify.providers.gitlab import GitLabProvider
from fluxd.notify.providers.gitlabmergerequestcomment import GitLabMergeRequestCommentProvider
from fluxd.notify.providers.googlechat import GoogleChatProvider
from fluxd.notify.providers.googlepubsub import GooglePubSubProvider
from fluxd.notify.providers.grafana import GrafanaProvider
from fluxd.notify.providers.incidentio import IncidentioProvider
from fluxd.notify.providers.matrix import MatrixProvider
from fluxd.notify.providers.msteams import MSTeamsProvider
from fluxd.notify.providers.nats import NatsProvider
from fluxd.notify.providers.opsgenie import OpsgenieProvider
from fluxd.notify.providers.otel import OtelProvider
from fluxd.notify.providers.pagerduty import PagerDutyProvider
from fluxd.notify.providers.rocket import RocketProvider
from fluxd.notify.providers.sentry import SentryProvider
from fluxd.notify.providers.slack import SlackProvider
from fluxd.notify.providers.telegram import TelegramProvider
from fluxd.notify.providers.webex import WebexProvider
from fluxd.notify.providers.wecom import WeComProvider
from fluxd.notify.providers.zoom import ZoomProvider
from fluxd.notify.providers.zulip import ZulipProvider

PROVIDER_TYPES: Final[dict[str, type[HttpProvider]]] = {
    provider.provider_type: provider
    for provider in (
        SlackProvider,
        DiscordProvider,
        MSTeamsProvider,
        GoogleChatProvider,
        TelegramProvider,
        GenericProvider,
        GenericHmacProvider,
        GiteaProvider,
        GitHubProvider,
        DingTalkProvider,
        WeComProvider,
        FeishuProvider,
        LarkProvider,
        GitLabProvider,
        BitbucketProvider,
        BitbucketServerProvider,
        AzureDevOpsProvider,
        GitHubDispatchProvider,
        GitHubPullRequestCommentProvider,
        GitLabMergeRequestCommentProvider,
        GiteaPullRequestCommentProvider,
        GooglePubSubProvider,
        AzureEventHubProvider,
        RocketProvider,
        WebexProvider,
        MatrixProvider,
        OpsgenieProvider,
        AlertmanagerProvider,
        GrafanaProvider,
        PagerDutyProvider,
        DatadogProvider,
        SentryProvider,
        ZulipProvider,
        NatsProvider,
        ZoomProvider,
        IncidentioProvider,
        OtelProvider,
    )
}

COMMIT_STATUS_TYPES: Final = frozenset(
    provider.provider_type
    for provider in (
        GiteaProvider,
        GitHubProvider,
        GitLabProvider,
        BitbucketProvider,
        BitbucketServerProvider,
        AzureDevOpsProvider,
    )
)

_COMMIT_STATUS_EXPR_ORDER: Final = (
    "github",
    "gitlab",
    "gitea",
    "bitbucketserver",
    "bitbucket",
    "azuredevops",
)

# Types that comment on the change request named by the event's change_request metadata.
CHANGE_REQUEST_TYPES: Final = frozenset(
    provider.provider_type
    for provider in (
        GitHubPullRequestCommentProvider,
        GitLabMergeRequestCommentProvider,
        GiteaPullRequestCommentProvider,
    )
)


def build_provider(config: ProviderConfig, *, session: aiohttp.ClientSession) -> Provider:
    """The provider for ``config.provider_type``, validated."""
    factory = PROVIDER_TYPES.get(config.provider_type)
    if factory is None:
        raise ProviderConfigError(
            provider_type=config.provider_type,
            reason=f"unsupported type; supported: {', '.join(sorted(PROVIDER_TYPES))}",
        )
    if config.commit_status_expr and config.provider_type not in COMMIT_STATUS_TYPES:
        # Flux's CRD rule, with its message.
        raise ProviderConfigError(
            provider_type=config.provider_type,
            reason="spec.commitStatusExpr is only supported for the "
            + ", ".join(f"'{name}'" for name in _COMMIT_STATUS_EXPR_ORDER)
            + " provider types",
        )
    provider = factory(config=config, session=session)
    provider.validate()
    config.ssl_context()  # a bad ca.crt is a config error, found now rather than per send
    return provider


__all__ = [
    "CHANGE_REQUEST_TYPES",
    "COMMIT_STATUS_TYPES",
    "PROVIDER_TYPES",
    "Provider",
    "RateLimit",
    "build_provider",
]

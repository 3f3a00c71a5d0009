"""Receivers without a cluster: webhook path, the path index, reconcile requests and bursts."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, cast

import pytest
import structlog

from fluxd import aio
from fluxd.controllers.outcomes import Reconciled, Stalled, Transient
from fluxd.controllers.receiver import ReceiverReconciler
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube
from fluxd.kube.resources import SECRET
from fluxd.receiver import RECEIVER, ReceiverEntry, ReceiverIndex, ReconcileRequests
from fluxd.receiver.requests import TRAILING_REQUESTS
from tests.unit.notifyctl.notifyctl_fakes import (
    GIT_REPOSITORY,
    FakeClock,
    FakeKube,
    RecordedEvents,
    secret,
)

NS = "flux-system"
TOKEN = "t0ken"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def receiver_object(
    name: str = "gitea", *, resources: list[dict[str, Any]] | None = None, ready: bool = True
) -> dict[str, Any]:
    path = "/hook/" + hashlib.sha256(f"{TOKEN}{name}{NS}".encode()).hexdigest()
    return {
        "apiVersion": RECEIVER.api_version,
        "kind": "Receiver",
        "metadata": {"name": name, "namespace": NS, "uid": "u-1", "generation": 1},
        "spec": {
            "type": "gitea",
            "resources": resources
            if resources is not None
            else [{"kind": "GitRepository", "name": "repo"}],
            "secretRef": {"name": "hook-token"},
        },
        "status": {
            "webhookPath": path,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def git_repository(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": labels or {}}}


# -- the reconciler -------------------------------------------------------------


async def test_reconciler_publishes_flux_webhook_path(kube: FakeKube) -> None:
    kube.add(SECRET, secret(NS, "hook-token", {"token": TOKEN}))
    index = ReceiverIndex(kube=cast(Kube, kube))
    reconciler = ReceiverReconciler(kube=cast(Kube, kube), index=index)
    obj = receiver_object()
    # The API has the Receiver, but not yet the status this reconcile is about to write.
    kube.add(RECEIVER, {**obj, "status": {}})

    outcome = await reconciler.reconcile(obj)

    path = obj["status"]["webhookPath"]
    assert isinstance(outcome, Reconciled)
    assert outcome.status == {"webhookPath": path}
    assert outcome.message == f"Receiver initialized for path: {path}"
    assert outcome.events[0].message == "Reconciliation finished, next run in 10m0s"
    found = await index.find(path)
    assert found is not None and found.token == TOKEN


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            None, "unable to read token from secret 'flux-system/hook-token'", id="no-secret"
        ),
        pytest.param({"other": "x"}, "required field 'token'", id="no-token-key"),
    ],
)
async def test_reconciler_without_token_fails_and_clears_the_path(
    kube: FakeKube, data: dict[str, str] | None, expected: str
) -> None:
    if data is not None:
        kube.add(SECRET, secret(NS, "hook-token", data))
    index = ReceiverIndex(kube=cast(Kube, kube))
    reconciler = ReceiverReconciler(kube=cast(Kube, kube), index=index)
    index.put("/hook/old", ReceiverEntry(receiver=receiver_object(), token="old"))

    with pytest.raises(Transient) as failure:
        await reconciler.reconcile(receiver_object())

    assert failure.value.reason == "TokenNotFound"
    assert expected in failure.value.message
    assert failure.value.status == {"webhookPath": None}
    assert len(index) == 0


# -- the index ------------------------------------------------------------------


async def test_index_refreshes_from_the_api_on_a_miss_at_most_once_per_interval(
    kube: FakeKube, clock: FakeClock
) -> None:
    kube.add(SECRET, secret(NS, "hook-token", {"token": TOKEN}))
    obj = receiver_object()
    kube.add(RECEIVER, obj)
    index = ReceiverIndex(kube=cast(Kube, kube), refresh_interval=5, max_age=30, clock=clock)

    entry = await index.find(obj["status"]["webhookPath"])
    assert entry is not None and entry.name == "gitea" and entry.ready

    for _ in range(50):  # a flood of unknown paths
        assert await index.find("/hook/" + "0" * 64) is None
    assert kube.lists == 1
    clock.advance(6)
    await index.find("/hook/" + "0" * 64)
    assert kube.lists == 2


async def test_index_skips_a_path_whose_token_changed(kube: FakeKube) -> None:
    kube.add(SECRET, secret(NS, "hook-token", {"token": "rotated"}))
    obj = receiver_object()
    kube.add(RECEIVER, obj)
    index = ReceiverIndex(kube=cast(Kube, kube))
    assert await index.find(obj["status"]["webhookPath"]) is None


async def test_index_sees_a_receiver_being_suspended(kube: FakeKube, clock: FakeClock) -> None:
    index = ReceiverIndex(kube=cast(Kube, kube), clock=clock)
    obj = receiver_object()
    kube.add(RECEIVER, obj)
    index.put("/hook/p", ReceiverEntry(receiver=obj, token=TOKEN))
    suspended = {**obj, "spec": {**obj["spec"], "suspend": True}}

    index.observe(suspended)

    entry = await index.find("/hook/p")
    assert entry is not None and entry.suspended


# -- reconcile requests ---------------------------------------------------------


def requests_for(
    kube: FakeKube, recorded: RecordedEvents, clock: aio.Clock | None = None
) -> ReconcileRequests:
    return ReconcileRequests(
        kube=cast(Kube, kube),
        recorder=recorded.recorder,
        window=2.0,
        no_cross_namespace_refs=True,
        clock=clock or aio.FakeClock(),
    )


def trailing_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == TRAILING_REQUESTS]


async def test_accepted_hook_annotates_the_target(kube: FakeKube, recorded: RecordedEvents) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo"))
    requests = requests_for(kube, recorded)

    assert await requests(ReceiverEntry(receiver=receiver_object(), token=TOKEN), {})

    annotations = kube.objects[("gitrepositories", NS, "repo")]["metadata"]["annotations"]
    assert annotations[REQUESTED_AT].endswith("Z")
    assert recorded.events == []


async def test_wildcard_annotates_every_labelled_target_in_the_namespace(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("a", {"team": "edge"}))
    kube.add(GIT_REPOSITORY, git_repository("b", {"team": "edge"}))
    kube.add(GIT_REPOSITORY, git_repository("c", {"team": "core"}))
    resources = [{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "edge"}}]
    requests = requests_for(kube, recorded)

    await requests(ReceiverEntry(receiver=receiver_object(resources=resources), token=TOKEN), {})

    assert sorted(name for _, _, name, _ in kube.patches) == ["a", "b"]


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param([{"kind": "GitRepository", "name": "gone"}], "not found", id="missing-object"),
        pytest.param(
            [{"kind": "GitRepository", "name": "*"}],
            "matchLabels field not set",
            id="bare-wildcard",
        ),
        pytest.param(
            [{"kind": "GitRepository", "name": "*", "matchLabels": {"x": "y"}}],
            "no 'GitRepository' resources found",
            id="no-match",
        ),
        pytest.param(
            [{"kind": "Widget", "name": "w"}], "apiVersion must be specified", id="unknown-kind"
        ),
        pytest.param(
            [{"kind": "GitRepository", "name": "repo", "namespace": "other"}],
            "cross-namespace references are not allowed",
            id="cross-namespace-refused",
        ),
    ],
)
async def test_target_problems_are_events_on_the_receiver_not_failures(
    kube: FakeKube,
    recorded: RecordedEvents,
    resources: list[dict[str, Any]],
    expected: str,
) -> None:
    requests = requests_for(kube, recorded)

    assert await requests(
        ReceiverEntry(receiver=receiver_object(resources=resources), token=TOKEN), {}
    )

    events = recorded.of("Receiver", "gitea")
    assert len(events) == 1
    assert events[0].type == "Warning" and expected in events[0].message


async def test_resource_filter_requests_only_the_targets_it_accepts(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("api", {"team": "edge"}))
    kube.add(GIT_REPOSITORY, git_repository("web", {"team": "edge"}))
    resources = [{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "edge"}}]
    obj = receiver_object(resources=resources)
    obj["spec"]["resourceFilter"] = "res.metadata.name == req.repository.name"
    requests = requests_for(kube, recorded)

    assert await requests(
        ReceiverEntry(receiver=obj, token=TOKEN), {"req": {"repository": {"name": "web"}}}
    )

    assert [name for _, _, name, _ in kube.patches] == ["web"]
    assert recorded.events == []


async def test_resource_filter_reads_a_named_target_s_metadata(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo", {"team": "core"}))
    obj = receiver_object()
    obj["spec"]["resourceFilter"] = (
        "res.kind == 'GitRepository' && res.metadata.labels.team == 'edge'"
    )
    requests = requests_for(kube, recorded)

    assert await requests(ReceiverEntry(receiver=obj, token=TOKEN), {})

    assert kube.patches == []


async def test_resource_filter_that_fails_on_a_request_fails_the_delivery(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo"))
    obj = receiver_object()
    obj["spec"]["resourceFilter"] = "req.tag.contains(res.metadata.name)"
    requests = requests_for(kube, recorded)

    assert not await requests(ReceiverEntry(receiver=obj, token=TOKEN), {"req": {"action": "push"}})

    assert kube.patches == []
    assert "failed to evaluate" in recorded.of("Receiver", "gitea")[0].message


async def test_a_resource_s_own_filter_stacks_on_the_resource_filter(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("api", {"team": "edge", "env": "prod"}))
    kube.add(GIT_REPOSITORY, git_repository("web", {"team": "edge", "env": "prod"}))
    kube.add(GIT_REPOSITORY, git_repository("web-dev", {"team": "edge", "env": "dev"}))
    resources = [
        {
            "kind": "GitRepository",
            "name": "*",
            "matchLabels": {"team": "edge"},
            "filter": "res.metadata.labels.env == 'prod'",
        }
    ]
    obj = receiver_object(resources=resources)
    obj["spec"]["resourceFilter"] = "res.metadata.name.startsWith(req.app)"
    requests = requests_for(kube, recorded)

    assert await requests(ReceiverEntry(receiver=obj, token=TOKEN), {"req": {"app": "web"}})

    assert [name for _, _, name, _ in kube.patches] == ["web"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"resourceFilter": "res.metadata.name =="},
            "invalid resourceFilter expression: ",
            id="syntax",
        ),
        pytest.param(
            {"resourceFilter": "claims.sub == 'x'"},
            "invalid resourceFilter expression: ",
            id="undeclared-variable",
        ),
        pytest.param(
            {"resources": [{"kind": "GitRepository", "name": "repo", "filter": "res.("}]},
            'invalid filter expression for resources[0] (kind="GitRepository", name="repo"): ',
            id="resource-filter",
        ),
    ],
)
async def test_reconciler_stalls_a_receiver_with_an_invalid_filter(
    kube: FakeKube, spec: dict[str, Any], message: str
) -> None:
    kube.add(SECRET, secret(NS, "hook-token", {"token": TOKEN}))
    index = ReceiverIndex(kube=cast(Kube, kube))
    reconciler = ReceiverReconciler(kube=cast(Kube, kube), index=index)
    obj = receiver_object()
    obj["spec"].update(spec)
    index.put(obj["status"]["webhookPath"], ReceiverEntry(receiver=obj, token=TOKEN))

    with pytest.raises(Stalled) as failure:
        await reconciler.reconcile(obj)

    assert failure.value.reason == "InvalidCELExpression"
    assert failure.value.message.startswith(message)
    assert len(index) == 0  # deliveries meet the API's not-ready copy: 503


async def test_api_failure_is_reported_as_a_failed_request(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo"))
    kube.fail_patch_with = kube_errors.Forbidden("forbidden", status=403)
    requests = requests_for(kube, recorded)

    assert not await requests(ReceiverEntry(receiver=receiver_object(), token=TOKEN), {})
    assert "cannot annotate" in recorded.of("Receiver", "gitea")[0].message


async def test_a_burst_of_pushes_patches_once_now_and_once_after_the_window(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo"))
    clock = aio.FakeClock()
    requests = requests_for(kube, recorded, clock)
    entry = ReceiverEntry(receiver=receiver_object(), token=TOKEN)

    for _ in range(10):
        await requests(entry, {})
    assert len(kube.patches) == 1
    await clock.run_for(1.9)
    assert len(kube.patches) == 1
    await clock.run_for(0.1)
    assert len(kube.patches) == 2
    # Nothing is left running between bursts.
    assert trailing_tasks() == []


async def test_stopping_cancels_a_pending_trailing_patch(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo"))
    clock = aio.FakeClock()
    requests = requests_for(kube, recorded, clock)
    entry = ReceiverEntry(receiver=receiver_object(), token=TOKEN)
    await requests(entry, {})
    await requests(entry, {})
    assert len(trailing_tasks()) == 1

    await requests.aclose()

    assert trailing_tasks() == []
    await clock.run_for(5)
    assert len(kube.patches) == 1


async def test_a_crash_writing_a_trailing_patch_is_logged_with_the_task_name(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    kube.add(GIT_REPOSITORY, git_repository("repo"))
    clock = aio.FakeClock()
    requests = requests_for(kube, recorded, clock)
    entry = ReceiverEntry(receiver=receiver_object(), token=TOKEN)
    await requests(entry, {})
    await requests(entry, {})
    kube.fail_patch_with = cast(kube_errors.KubeError, RuntimeError("bug"))

    with structlog.testing.capture_logs() as logs:
        await clock.run_for(2)

    assert any(
        log["event"] == "task crashed, restarting" and log["task"] == TRAILING_REQUESTS
        for log in logs
    )
    await requests.aclose()


async def test_a_generic_oidc_receiver_needs_no_secret_and_gets_flux_s_path(
    kube: FakeKube,
) -> None:
    index = ReceiverIndex(kube=cast(Kube, kube))
    reconciler = ReceiverReconciler(kube=cast(Kube, kube), index=index)
    obj = receiver_object("ci")
    obj["spec"]["type"] = "generic-oidc"
    del obj["spec"]["secretRef"]
    obj["spec"]["oidcProviders"] = [
        {
            "issuerURL": "https://token.actions.githubusercontent.com",
            "validations": [{"expression": "claims.repository_owner == 'acme'", "message": "m"}],
        }
    ]
    kube.add(RECEIVER, {**obj, "status": {}})

    outcome = await reconciler.reconcile(obj)

    # Flux: sha256 of token + name + namespace, with an empty token.
    path = "/hook/" + hashlib.sha256(f"ci{NS}".encode()).hexdigest()
    assert outcome.status == {"webhookPath": path}
    found = await index.find(path)
    assert found is not None and found.token == ""


async def test_reconciler_stalls_a_receiver_whose_oidc_settings_do_not_fit(
    kube: FakeKube,
) -> None:
    kube.add(SECRET, secret(NS, "hook-token", {"token": TOKEN}))
    reconciler = ReceiverReconciler(
        kube=cast(Kube, kube), index=ReceiverIndex(kube=cast(Kube, kube))
    )
    obj = receiver_object()
    obj["spec"]["type"] = "generic-oidc"

    with pytest.raises(Stalled) as failure:
        await reconciler.reconcile(obj)

    assert failure.value.reason == "ValidationFailed"
    assert failure.value.message == "generic-oidc receiver requires at least one oidcProvider"

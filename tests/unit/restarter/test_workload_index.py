"""Finding the workloads a changed object restarts, remembering digests, filtering objects."""

from __future__ import annotations

import pytest

from fluxd.restarter import (
    ConfigFilter,
    ConfigKey,
    ConfigKind,
    DigestCache,
    InvalidLabelSelector,
    WorkloadIndex,
    WorkloadKey,
    WorkloadKind,
    parse_label_selector,
)
from tests.unit.restarter.restarter_objects import SECRET_NAME, container, workload

AUTO = {"reloader.stakater.com/auto": "true"}
SECRET = ConfigKey("edge", ConfigKind.SECRET, SECRET_NAME)


def key(name: str, namespace: str = "edge") -> WorkloadKey:
    return WorkloadKey(namespace, WorkloadKind.DEPLOYMENT, name)


def unused(name: str, **annotations: str) -> dict[str, object]:
    return workload(name, annotations=annotations, containers=[container("app")], volumes=[])


class TestWorkloadIndex:
    def test_finds_users_lists_and_searches(self) -> None:
        index = WorkloadIndex()
        index.upsert(workload("auto", annotations=AUTO))
        index.upsert(workload("plain"))
        index.upsert(unused("listed", **{"secret.reloader.stakater.com/reload": "realm-.*"}))
        index.upsert(workload("searching", annotations={"reloader.stakater.com/search": "true"}))
        index.upsert(workload("elsewhere", namespace="other", annotations=AUTO))
        assert index.affected(SECRET) == [key("auto"), key("listed")]
        matched = index.affected(SECRET, config_annotations={"reloader.stakater.com/match": "true"})
        assert matched == [key("auto"), key("listed"), key("searching")]

    def test_ignored_object_restarts_nothing(self) -> None:
        index = WorkloadIndex()
        index.upsert(workload("auto", annotations=AUTO))
        ignored = {"reloader.stakater.com/ignore": "true"}
        assert index.affected(SECRET, config_annotations=ignored) == []

    def test_update_and_delete_are_reflected(self) -> None:
        index = WorkloadIndex()
        index.upsert(workload("realm-ix", annotations=AUTO))
        assert index.affected(SECRET) == [key("realm-ix")]
        # The user removed the volume: the Secret no longer restarts it.
        index.upsert(workload("realm-ix", annotations=AUTO, containers=[container()], volumes=[]))
        assert index.affected(SECRET) == []
        index.upsert(workload("realm-ix", annotations=AUTO))
        index.remove(key("realm-ix"))
        assert index.affected(SECRET) == []
        assert len(index) == 0

    def test_auto_reload_all_restarts_unannotated_users(self) -> None:
        index = WorkloadIndex(auto_reload_all=True)
        index.upsert(workload("plain"))
        index.upsert(workload("opted-out", annotations={"reloader.stakater.com/auto": "false"}))
        assert index.affected(SECRET) == [key("plain")]

    def test_profile_keeps_names_not_objects(self) -> None:
        index = WorkloadIndex()
        index.upsert(workload("realm-ix", annotations=AUTO))
        profile = index.profile(key("realm-ix"))
        assert profile is not None
        assert profile.references == {(ConfigKind.SECRET, SECRET_NAME)}


class TestDigestCache:
    def test_observe_returns_the_previous_digest(self) -> None:
        cache = DigestCache()
        assert cache.observe(SECRET, "d1") is None
        assert cache.observe(SECRET, "d2") == "d1"
        assert cache.get(SECRET) == "d2"
        cache.forget(SECRET)
        assert cache.get(SECRET) is None and len(cache) == 0


@pytest.mark.parametrize(
    ("config_filter", "labels", "namespace_labels", "admitted"),
    [
        pytest.param(ConfigFilter(), None, None, True, id="default-everything"),
        pytest.param(
            ConfigFilter(namespaces=frozenset({"edge"})), None, None, True, id="listed-ns"
        ),
        pytest.param(
            ConfigFilter(namespaces=frozenset({"prod"})), None, None, False, id="unlisted-ns"
        ),
        pytest.param(
            ConfigFilter(ignored_namespaces=frozenset({"edge"})), None, None, False, id="ignored-ns"
        ),
        pytest.param(
            ConfigFilter(namespace_selector=parse_label_selector(["reloader:enabled"])),
            None,
            {"reloader": "enabled"},
            True,
            id="ns-selector-legacy-colon",
        ),
        pytest.param(
            ConfigFilter(namespace_selector=parse_label_selector("reloader=enabled")),
            None,
            {},
            False,
            id="ns-selector-miss",
        ),
        pytest.param(
            ConfigFilter(resource_selector=parse_label_selector("app.kubernetes.io/part-of=realm")),
            {"app.kubernetes.io/part-of": "realm"},
            None,
            True,
            id="resource-selector",
        ),
        pytest.param(
            ConfigFilter(resource_selector=parse_label_selector("reload")),
            {},
            None,
            False,
            id="resource-selector-exists",
        ),
        pytest.param(
            ConfigFilter(ignored_kinds=frozenset({ConfigKind.SECRET})), None, None, False, id="kind"
        ),
    ],
)
def test_config_filter(
    config_filter: ConfigFilter,
    labels: dict[str, str] | None,
    namespace_labels: dict[str, str] | None,
    admitted: bool,
) -> None:
    result = config_filter.admits(SECRET, labels=labels, namespace_labels=namespace_labels)
    assert result is admitted


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param("env=prod", {"env": "prod"}, True, id="equals"),
        pytest.param("env==prod", {"env": "dev"}, False, id="double-equals"),
        pytest.param("env!=prod", {}, True, id="not-equals-absent"),
        pytest.param("env in (prod, stage)", {"env": "stage"}, True, id="in"),
        pytest.param("env notin (prod)", {"env": "prod"}, False, id="notin"),
        pytest.param("!legacy", {"legacy": "1"}, False, id="not-exists"),
        pytest.param("team:*", {"team": "x"}, True, id="legacy-wildcard"),
        pytest.param("team=*", {}, False, id="wildcard-needs-key"),
        pytest.param("env=prod,team", {"env": "prod"}, False, id="all-must-hold"),
        pytest.param("", {}, True, id="empty-matches-all"),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is matches


def test_label_selector_errors_name_the_selector() -> None:
    with pytest.raises(InvalidLabelSelector, match="env in prod"):
        parse_label_selector("env in prod")

"""Reloader's decision table: which annotation restarts what, in which order."""

from __future__ import annotations

import pytest

from fluxd.restarter import (
    ConfigKind,
    RestarterAnnotations,
    Trigger,
    decide,
)
from tests.unit.restarter.restarter_objects import SECRET_NAME, container, workload

AUTO = "reloader.stakater.com/auto"
SECRET_AUTO = "secret.reloader.stakater.com/auto"
CONFIGMAP_AUTO = "configmap.reloader.stakater.com/auto"
SECRET_RELOAD = "secret.reloader.stakater.com/reload"
CONFIGMAP_RELOAD = "configmap.reloader.stakater.com/reload"
SECRET_EXCLUDE = "secrets.exclude.reloader.stakater.com/reload"
SEARCH = "reloader.stakater.com/search"
MATCH = "reloader.stakater.com/match"
IGNORE = "reloader.stakater.com/ignore"

Case = tuple[dict[str, str], dict[str, str], dict[str, str], bool, bool]


def case(
    own: dict[str, str] | None = None,
    *,
    template: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
    used: bool = True,
    auto_reload_all: bool = False,
) -> Case:
    return own or {}, template or {}, config or {}, used, auto_reload_all


@pytest.mark.parametrize(
    ("given", "trigger"),
    [
        pytest.param(case({AUTO: "true"}), Trigger.AUTO, id="auto"),
        pytest.param(case({AUTO: "True"}), Trigger.AUTO, id="auto-go-bool-True"),
        pytest.param(case({AUTO: "1"}), Trigger.AUTO, id="auto-go-bool-1"),
        pytest.param(case({AUTO: "yes"}), None, id="auto-yes-is-not-a-go-bool"),
        pytest.param(case({AUTO: "false"}), None, id="auto-false"),
        pytest.param(case({SECRET_AUTO: "true"}), Trigger.TYPED_AUTO, id="typed-auto"),
        pytest.param(case({CONFIGMAP_AUTO: "true"}), None, id="typed-auto-other-kind"),
        pytest.param(case(template={AUTO: "true"}), Trigger.AUTO, id="auto-on-pod-template"),
        pytest.param(
            case({CONFIGMAP_RELOAD: "x"}, template={AUTO: "true"}),
            Trigger.AUTO,
            id="other-kind-keys-on-workload-fall-back-to-template",
        ),
        pytest.param(
            case({SECRET_RELOAD: "other"}, template={AUTO: "true"}),
            None,
            id="workload-metadata-shadows-template",
        ),
        pytest.param(case({SECRET_RELOAD: SECRET_NAME}), Trigger.RELOAD_LIST, id="list-exact"),
        pytest.param(
            case({SECRET_RELOAD: SECRET_NAME}, used=False),
            Trigger.RELOAD_LIST,
            id="list-restarts-even-unused",
        ),
        pytest.param(case({SECRET_RELOAD: "realm-.*"}), Trigger.RELOAD_LIST, id="list-regex"),
        pytest.param(case({SECRET_RELOAD: "realm"}), None, id="list-anchored-no-prefix"),
        pytest.param(case({SECRET_RELOAD: "config-ix"}), None, id="list-anchored-no-suffix"),
        pytest.param(
            case({SECRET_RELOAD: "tls , realm-config-ix"}), Trigger.RELOAD_LIST, id="list-trimmed"
        ),
        pytest.param(
            case({SECRET_RELOAD: "x|realm-config-ix"}),
            Trigger.RELOAD_LIST,
            id="list-alternation-anchored-on-outer-ends-like-go",
        ),
        pytest.param(case({CONFIGMAP_RELOAD: SECRET_NAME}), None, id="list-of-other-kind"),
        pytest.param(case({AUTO: "true"}, config={IGNORE: "true"}), None, id="ignored-object"),
        pytest.param(
            case({SECRET_RELOAD: SECRET_NAME}, config={IGNORE: "true"}),
            None,
            id="ignore-beats-list",
        ),
        pytest.param(
            case({AUTO: "true"}, config={IGNORE: "false"}), Trigger.AUTO, id="ignore-false"
        ),
        pytest.param(
            case({AUTO: "true", SECRET_EXCLUDE: "tls, realm-config-ix"}), None, id="excluded"
        ),
        pytest.param(
            case({SECRET_RELOAD: SECRET_NAME, SECRET_EXCLUDE: SECRET_NAME}),
            None,
            id="exclusion-beats-list",
        ),
        pytest.param(
            case({AUTO: "true", SECRET_EXCLUDE: "realm-.*"}),
            Trigger.AUTO,
            id="exclusion-is-exact-not-regex",
        ),
        pytest.param(
            case({AUTO: "true"}, template={SECRET_EXCLUDE: SECRET_NAME}),
            Trigger.AUTO,
            id="exclusion-only-read-from-workload",
        ),
        pytest.param(
            case({SEARCH: "true"}, config={MATCH: "true"}), Trigger.SEARCH_MATCH, id="search-match"
        ),
        pytest.param(case({SEARCH: "true"}), None, id="search-without-match"),
        pytest.param(
            case({SEARCH: "true"}, config={MATCH: "True"}), None, id="match-is-exact-true"
        ),
        pytest.param(
            case({SEARCH: "true"}, config={MATCH: "true"}, used=False), None, id="search-unused"
        ),
        pytest.param(case({AUTO: "true"}, used=False), None, id="auto-unused"),
        pytest.param(
            case({AUTO: "true", SECRET_RELOAD: SECRET_NAME}, used=False),
            Trigger.RELOAD_LIST,
            id="auto-unused-falls-through-to-list",
        ),
        pytest.param(case(auto_reload_all=True), Trigger.AUTO_RELOAD_ALL, id="auto-reload-all"),
        pytest.param(
            case({AUTO: "false"}, auto_reload_all=True), None, id="auto-reload-all-opt-out"
        ),
        pytest.param(case(), None, id="no-annotations"),
    ],
)
def test_decision_table(given: Case, trigger: Trigger | None) -> None:
    own, template, config, used, auto_reload_all = given
    target = workload(
        annotations=own,
        template_annotations=template,
        volumes=[] if not used else None,
        containers=[container("realm")] if not used else None,
    )
    decision = decide(
        target,
        config_kind=ConfigKind.SECRET,
        config_name=SECRET_NAME,
        config_annotations=config,
        auto_reload_all=auto_reload_all,
    )
    assert (decision.restart, decision.trigger) == (trigger is not None, trigger), decision.reason
    if decision.restart:
        assert decision.container == "realm"


def test_bad_regex_is_reported_and_skipped() -> None:
    target = workload(annotations={SECRET_RELOAD: "([, realm-config-ix"})
    decision = decide(
        target, config_kind=ConfigKind.SECRET, config_name=SECRET_NAME, config_annotations={}
    )
    assert decision.restart
    assert decision.problems and "([" in decision.problems[0]


def test_annotation_names_can_be_renamed() -> None:
    names = RestarterAnnotations(auto="example.com/auto")

    def restarts(target: dict[str, object]) -> bool:
        return decide(
            target,
            config_kind=ConfigKind.SECRET,
            config_name=SECRET_NAME,
            config_annotations={},
            names=names,
        ).restart

    assert restarts(workload(annotations={"example.com/auto": "true"}))
    assert not restarts(workload(annotations={AUTO: "true"}))


@pytest.mark.parametrize(
    ("own", "config", "trigger", "may_fall_back"),
    [
        pytest.param(
            {AUTO: "true", SECRET_RELOAD: SECRET_NAME},
            {},
            Trigger.RELOAD_LIST,
            True,
            id="list-before-auto",
        ),
        pytest.param(
            {SECRET_AUTO: "true", SECRET_RELOAD: "realm-.*"},
            {},
            Trigger.RELOAD_LIST,
            True,
            id="list-before-typed-auto",
        ),
        pytest.param(
            {SEARCH: "true", SECRET_RELOAD: SECRET_NAME},
            {MATCH: "true"},
            Trigger.RELOAD_LIST,
            True,
            id="list-before-search",
        ),
        pytest.param(
            {AUTO: "true", SEARCH: "true"},
            {MATCH: "true"},
            Trigger.SEARCH_MATCH,
            False,
            id="search-before-auto",
        ),
    ],
)
def test_reloader_order_decides_the_trigger(
    own: dict[str, str], config: dict[str, str], trigger: Trigger, may_fall_back: bool
) -> None:
    # Reloader v1.4 checks reload lists, then search/match, then auto; the
    # first rule that matches is the one reported.
    decision = decide(
        workload(annotations=own),
        config_kind=ConfigKind.SECRET,
        config_name=SECRET_NAME,
        config_annotations=config,
    )
    assert decision.restart and decision.trigger is trigger, decision.reason
    assert decision.auto is not may_fall_back


def test_list_match_restarts_the_first_container_when_auto_would_not() -> None:
    # The pod only uses the Secret through a volume no container mounts: auto
    # alone would not restart, the reload list puts the digest in the first one.
    target = workload(
        annotations={AUTO: "true", SECRET_RELOAD: SECRET_NAME},
        containers=[container("sidecar"), container("realm")],
    )
    decision = decide(
        target, config_kind=ConfigKind.SECRET, config_name=SECRET_NAME, config_annotations={}
    )
    assert (decision.restart, decision.trigger, decision.container) == (
        True,
        Trigger.RELOAD_LIST,
        "sidecar",
    )


def test_match_on_an_unused_object_stops_before_auto_reload_all() -> None:
    target = workload(annotations={SEARCH: "true"}, volumes=[], containers=[container("realm")])
    decision = decide(
        target,
        config_kind=ConfigKind.SECRET,
        config_name=SECRET_NAME,
        config_annotations={MATCH: "true"},
        auto_reload_all=True,
    )
    assert not decision.restart

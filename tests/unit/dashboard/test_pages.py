"""What the dashboard's pages show, from cached objects and the journal (no cluster, no browser)."""

from __future__ import annotations

from datetime import datetime

import pytest

from fluxd.dashboard import ConfigRef, Journal
from fluxd.dashboard.pages import overview
from fluxd.dashboard.views import (
    forge_links,
    inventory_tree,
    kustomization_rows,
    provenance,
    tree_text,
)
from fluxd.kube.events import Recorded
from tests.unit.dashboard.dashboard_objects import SHA_NEW, SHA_OLD, TOKEN, seed_state


def test_the_inventory_is_drawn_as_flux_tree_draws_it() -> None:
    state = seed_state()
    apps = state.kustomizations[0]
    assert tree_text(inventory_tree(apps, state.kustomizations)) == (
        "Kustomization/flux-system/apps\n"
        "├── Kustomization/flux-system/realm-ix\n"
        "│   ├── Secret/realm/realm-config-ix\n"
        "│   └── Deployment/realm/realm\n"
        "└── Namespace/realm"
    )


def test_a_kustomization_listing_itself_is_not_walked_forever() -> None:
    state = seed_state()
    looped = dict(state.kustomizations[0])
    looped["status"] = {
        "inventory": {
            "entries": [{"id": "flux-system_apps_kustomize.toolkit.fluxcd.io_Kustomization"}]
        }
    }
    assert tree_text(inventory_tree(looped, [looped])) == (
        "Kustomization/flux-system/apps\n└── Kustomization/flux-system/apps"
    )


def test_the_overview_shows_revisions_readiness_and_trees() -> None:
    page = overview(seed_state())
    assert f"master@sha1:{SHA_NEW}" in page
    assert "2026-12-01T10:05:00Z" in page  # the last fetch
    assert "Secret/realm/realm-config-ix" in page
    assert 'class="ready">True' in page
    assert [row.objects for row in kustomization_rows(seed_state().kustomizations)] == [2, 2]


def test_credentials_in_a_source_url_are_never_shown() -> None:
    page = overview(seed_state())
    assert TOKEN not in page
    assert "http://gitea.example:3000/k3s/k3s-private.git" in page


def test_messages_are_escaped() -> None:
    journal = Journal()
    journal.record_event(
        Recorded(
            regarding={"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
            type="Warning",
            reason="BuildFailed",
            message="<script>alert(1)</script>",
            action="Reconcile",
        )
    )
    page = overview(seed_state(journal))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_standby_replica_says_it_watches_nothing() -> None:
    assert 'id="standby"' in overview(seed_state(leading=False))
    assert 'id="standby"' not in overview(seed_state(leading=True))


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("restarted_at", "commit"),
    [
        pytest.param("2026-12-01T10:06:00Z", SHA_NEW, id="after-the-new-revision"),
        pytest.param("2026-12-01T09:30:00Z", SHA_OLD, id="before-the-new-revision"),
    ],
)
def test_a_restart_links_to_the_commit_applied_when_it_happened(
    restarted_at: str, commit: str
) -> None:
    state = seed_state()
    [origin] = provenance(
        ConfigRef("Secret", "realm", "realm-config-ix"),
        _at(restarted_at),
        state.kustomizations,
        state.sources,
    )
    assert origin.kustomization == "flux-system/realm-ix"
    assert origin.revision == f"master@sha1:{commit}"
    base = "http://gitea.example:3000/k3s/k3s-private"
    assert origin.commit_url == f"{base}/commit/{commit}"
    assert origin.path_url == f"{base}/src/commit/{commit}/realm/ix"


def test_a_config_no_kustomization_applied_has_no_origin() -> None:
    state = seed_state()
    found = provenance(
        ConfigRef("Secret", "realm", "made-by-hand"), 0.0, state.kustomizations, state.sources
    )
    assert found == []


@pytest.mark.parametrize(
    ("url", "links"),
    [
        pytest.param(
            "https://github.com/o/r.git",
            ("https://github.com/o/r/commit/c", "https://github.com/o/r/tree/c/p"),
            id="github",
        ),
        pytest.param(
            "https://gitlab.com/o/r",
            ("https://gitlab.com/o/r/-/commit/c", "https://gitlab.com/o/r/-/tree/c/p"),
            id="gitlab",
        ),
        pytest.param("ssh://git@host/o/r.git", ("", ""), id="ssh-has-no-web-link"),
    ],
)
def test_forge_links(url: str, links: tuple[str, str]) -> None:
    assert forge_links(url, "c", "./p") == links


def test_the_rings_keep_the_newest_records() -> None:
    journal = Journal()
    for index in range(60):
        journal.record_push(receiver=f"ns/r{index}", status=200, outcome="accepted")
    pushes = journal.pushes.newest_first()
    assert len(pushes) == 50
    assert pushes[0].receiver == "ns/r59"
    assert pushes[-1].receiver == "ns/r10"

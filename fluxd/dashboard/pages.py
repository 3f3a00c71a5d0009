"""The dashboard's HTML, rendered on the server from the views: no templates engine, no build.

Every value is escaped on its way into the page. Links are relative, so the
pages work behind ``kubectl port-forward`` and behind a path-prefixing proxy
(``kubectl proxy``'s ``.../services/fluxd:dashboard/proxy/``). The one script
is a few lines that listen on the live stream and swap the page's ``<main>``
for a freshly fetched copy when the daemon says something changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape
from string import Template
from urllib.parse import quote

from fluxd.api import meta
from fluxd.api.duration import format_duration
from fluxd.dashboard.journal import EventLine, Push
from fluxd.dashboard.views import (
    KustomizationRow,
    Readiness,
    RestartRow,
    SourceRow,
    State,
    TreeNode,
    kustomization_rows,
    restart_rows,
    source_rows,
    tree_text,
)

_SHELL = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #1d2330; }
header { display: flex; gap: 1em; align-items: baseline; border-bottom: 1px solid #ccd; }
header h1 { font-size: 1.3em; margin: .6em 0; }
h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25em .6em .25em 0; border-bottom: 1px solid #eef;
  vertical-align: top; }
td.message { max-width: 40em; overflow-wrap: anywhere; }
code, pre { font: 12px/1.35 ui-monospace, monospace; }
pre.tree { background: #f6f7fb; padding: .6em; overflow-x: auto; }
.ready { color: #11703a; } .failed { color: #b3261e; } .unknown { color: #7a6a00; }
.standby { background: #fff4d6; padding: .5em; }
.empty { color: #778; }
</style>
</head>
<body data-version="$version">
<header><h1><a href="$root">fluxd</a></h1><span id="replica">$replica</span></header>
<main>
$content
</main>
<script>
(() => {
  const live = new EventSource("$live");
  live.addEventListener("changed", async () => {
    const answer = await fetch(location.href, {cache: "no-store"});
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    document.querySelector("main").replaceWith(page.querySelector("main"));
    document.body.dataset.version = page.body.dataset.version;
  });
})();
</script>
</body>
</html>
""")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(at: float) -> str:
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    return f'<time datetime="{moment}">{moment}</time>'


def _ready(ready: Readiness) -> str:
    return f'<span class="{ready.css}">{_e(ready.status)}</span> {_e(ready.reason)}'


def _table(table_id: str, headers: Sequence[str], rows: Iterable[str], *, empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty" id="{table_id}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _link(url: str, text: str) -> str:
    if not url:
        return _e(text)
    return f'<a href="{_e(url)}" rel="noreferrer">{_e(text)}</a>'


def _tree_list(node: TreeNode) -> str:
    children = "".join(f"<li>{_tree_list(child)}</li>" for child in node.children)
    inner = f"<ul>{children}</ul>" if children else ""
    return f'<span class="node">{_e(node.label)}</span>{inner}'


def _source_row(row: SourceRow) -> str:
    return (
        f'<tr class="source" data-name="{_e(row.namespace)}/{_e(row.name)}">'
        f"<td>{_e(row.namespace)}/{_e(row.name)}</td><td><code>{_e(row.url)}</code></td>"
        f'<td>{_e(row.ref)}</td><td class="revision"><code>{_e(row.revision)}</code></td>'
        f"<td>{_e(row.fetched_at)}</td><td>{_ready(row.ready)}</td>"
        f'<td class="message">{_e(row.ready.message)}</td></tr>'
    )


def _kustomization_href(row: KustomizationRow, root: str) -> str:
    return f"{root}kustomizations/{quote(row.namespace, safe='')}/{quote(row.name, safe='')}"


def _kustomization_row(row: KustomizationRow, root: str) -> str:
    return (
        f'<tr class="kustomization" data-name="{_e(row.namespace)}/{_e(row.name)}">'
        f'<td><a href="{_e(_kustomization_href(row, root))}">{_e(row.namespace)}/{_e(row.name)}</a>'
        f"</td><td>{_e(row.source)}</td><td><code>{_e(row.path)}</code></td>"
        f'<td class="revision"><code>{_e(row.applied)}</code></td><td>{_ready(row.ready)}</td>'
        f'<td class="message">{_e(row.ready.message)}</td><td>{row.objects}</td></tr>'
        f'<tr class="inventory"><td colspan="7"><details open><summary>inventory</summary>'
        f'<pre class="tree">{_e(tree_text(row.tree))}</pre></details></td></tr>'
    )


def _push_row(push: Push) -> str:
    verdict = "accepted" if push.accepted else "refused"
    return (
        f'<tr class="push {verdict}"><td>{_when(push.at)}</td>'
        f"<td>{_e(push.receiver or '(no Receiver has this path)')}</td>"
        f"<td>{_e(push.event)}</td><td>{push.status}</td><td>{_e(push.outcome)}</td></tr>"
    )


def _restart_row(row: RestartRow) -> str:
    restart = row.restart
    configs = ", ".join(_e(config) for config in restart.configs)
    took = format_duration(round(restart.seconds, 3)) if restart.seconds is not None else ""
    outcome = "restarted" if restart.succeeded else f"failed: {restart.error}"
    origins = "<br>".join(
        f"Kustomization {_e(origin.kustomization)} applied "
        f"{_link(origin.commit_url, origin.revision or '(no revision)')} "
        f"from {_link(origin.path_url, origin.path)}"
        for origin in row.provenance
    )
    return (
        f'<tr class="restart" data-workload="{_e(restart.workload)}"><td>{_when(restart.at)}</td>'
        f"<td>{_e(restart.workload)}</td><td>{configs}</td><td>{_e(took)}</td>"
        f'<td class="message">{_e(outcome)}</td><td class="origin">{origins}</td></tr>'
    )


def _event_row(event: EventLine) -> str:
    css = "failed" if event.type == "Warning" else ""
    return (
        f'<tr class="event"><td>{_when(event.at)}</td><td class="{css}">{_e(event.type)}</td>'
        f"<td>{_e(event.regarding)}</td><td>{_e(event.reason)}</td>"
        f'<td class="message">{_e(event.message)}</td></tr>'
    )


def _page(state: State, *, title: str, content: str, root: str) -> str:
    replica = f"replica {_e(state.identity)}, " + ("leader" if state.leading else "standing by")
    if not state.leading:
        content = (
            '<p class="standby" id="standby">This replica does not hold the lease, so it '
            "watches nothing: open the dashboard of the leader to see the cluster.</p>" + content
        )
    return _SHELL.substitute(
        title=_e(title),
        version=state.journal.version,
        root=_e(root or "./"),
        live=_e(f"{root}live"),
        replica=replica,
        content=content,
    )


def overview(state: State) -> str:
    root = ""
    sources = _table(
        "sources",
        ("source", "URL", "ref", "revision", "last fetch", "ready", "message"),
        (_source_row(row) for row in source_rows(state.sources)),
        empty="No GitRepositories.",
    )
    kustomizations = _table(
        "kustomizations",
        ("Kustomization", "source", "path", "applied revision", "ready", "message", "objects"),
        (_kustomization_row(row, root) for row in kustomization_rows(state.kustomizations)),
        empty="No Kustomizations.",
    )
    pushes = _table(
        "pushes",
        ("when", "Receiver", "event", "status", "outcome"),
        (_push_row(push) for push in state.journal.pushes.newest_first()),
        empty="No webhook deliveries since the daemon started.",
    )
    restarts = _table(
        "restarts",
        ("when", "workload", "changed config", "took", "outcome", "config from"),
        (_restart_row(row) for row in restart_rows(state)),
        empty="No restarts since the daemon started.",
    )
    events = _table(
        "events",
        ("when", "type", "object", "reason", "message"),
        (_event_row(event) for event in state.journal.events.newest_first()),
        empty="No Events since the daemon started.",
    )
    content = (
        f"<h2>Sources</h2>{sources}<h2>Kustomizations</h2>{kustomizations}"
        f"<h2>Recent pushes</h2>{pushes}<h2>Restarts</h2>{restarts}"
        f"<h2>Recent Events</h2>{events}"
    )
    return _page(state, title="fluxd", content=content, root=root)


def kustomization_page(
    state: State, ks: KustomizationRow, conditions: Sequence[meta.Condition]
) -> str:
    # The page is /kustomizations/<namespace>/<name>: two levels below the root.
    root = "../../"
    rows = "".join(
        f'<tr class="condition"><td>{_e(c.get("type", ""))}</td><td>{_e(c.get("status", ""))}</td>'
        f'<td>{_e(c.get("reason", ""))}</td><td class="message">{_e(c.get("message", ""))}</td>'
        f"<td>{_e(c.get('lastTransitionTime', ''))}</td></tr>"
        for c in conditions
    )
    table = _table(
        "conditions",
        ("condition", "status", "reason", "message", "since"),
        [rows],
        empty="No conditions yet.",
    )
    content = (
        f'<h2 id="title">Kustomization {_e(ks.namespace)}/{_e(ks.name)}</h2>'
        f"<p>Source {_e(ks.source)}, path <code>{_e(ks.path)}</code>; applied "
        f'<code class="revision">{_e(ks.applied)}</code>, last attempted '
        f"<code>{_e(ks.attempted)}</code>; ready: {_ready(ks.ready)}.</p>"
        f"{table}<h2>Inventory</h2>"
        f'<pre class="tree" id="tree">{_e(tree_text(ks.tree))}</pre>'
        f'<div class="tree-list">{_tree_list(ks.tree)}</div>'
    )
    return _page(state, title=f"fluxd: {ks.namespace}/{ks.name}", content=content, root=root)

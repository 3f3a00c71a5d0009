"""A read-only web view of the daemon's GitOps state, served only when ``dashboard-addr`` is set.

Sources, Kustomizations (readiness, messages, inventory tree), recent webhook
pushes, restarts and Events, rendered on the server from the caches the
controllers already keep and the small rings of the ``Journal``; a live
stream refreshes an open page. Nothing from a Secret's data is ever shown.
"""

from __future__ import annotations

from fluxd.dashboard.app import Dashboard
from fluxd.dashboard.journal import ConfigRef, Journal
from fluxd.dashboard.views import State, StateSource

__all__ = ["ConfigRef", "Dashboard", "Journal", "State", "StateSource"]

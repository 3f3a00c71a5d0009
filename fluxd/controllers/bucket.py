"""The Bucket reconciler: every Bucket is Stalled, with a reason naming the kind.

fluxd cannot fetch from object storage, so a Bucket never gets an artifact.
Saying so on the object (Ready=False, Stalled=True, reason UnsupportedKind,
and a Warning Event) beats leaving it without a status: a Kustomization or
HelmChart using it then waits for a source that is not ready, as Flux's do,
and the user sees why.
"""

from __future__ import annotations

from fluxd.api.bucket import BUCKET, UNSUPPORTED_KIND_REASON
from fluxd.api.support import REFUSED_KINDS
from fluxd.controllers.manager import Components
from fluxd.controllers.outcomes import Reconciled, Stalled
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import EventRecorder
from fluxd.kube.resources import Resource
from fluxd.settings import Settings


class BucketReconciler(Reconciler):
    resource = Resource.of(BUCKET)
    # Nothing is ever stored for a Bucket, so there is nothing to clean up.
    finalizer = None

    async def reconcile(self, obj: Object) -> Reconciled:
        raise Stalled(UNSUPPORTED_KIND_REASON, REFUSED_KINDS[BUCKET.kind])


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    components.controllers.append(
        Controller(kube=kube, reconciler=BucketReconciler(), recorder=recorder, settings=settings)
    )

"""The Receiver reconciler: publish each Receiver's webhook path, as notification-controller does.

It reads the token from the Receiver's Secret, writes Flux's
``status.webhookPath`` (``/hook/`` + sha256(token + name + namespace)) and
puts the Receiver in the ``ReceiverIndex`` the webhook handler reads. A
``spec.resourceFilter`` or ``resources[].filter`` that does not compile
stalls it (``InvalidCELExpression``), as do OIDC settings that do not fit
the type (``ValidationFailed``). The rest of the receiver (handler,
checks per type, index, reconcile requests) is the ``fluxd.receiver`` package.
"""

from __future__ import annotations

from typing import Final

from fluxd.api import meta
from fluxd.api.duration import format_duration
from fluxd.apply.cel import ExpressionError
from fluxd.controllers.outcomes import EventNote, Reconciled, Stalled, Transient
from fluxd.controllers.runtime import Reconciler, spec_interval
from fluxd.kube.client import Kube, Object
from fluxd.kube.informer import Key, key_of
from fluxd.receiver import (
    RECEIVER,
    ReceiverEntry,
    ReceiverIndex,
    TokenError,
    read_secret,
    webhook_path,
)
from fluxd.receiver.oidc import OIDCSpecError, oidc_spec_problem
from fluxd.receiver.requests import receiver_filters

TOKEN_NOT_FOUND: Final = "TokenNotFound"


class ReceiverReconciler(Reconciler):
    """Publishes the webhook path of each Receiver, as notification-controller does."""

    resource = RECEIVER

    def __init__(self, *, kube: Kube, index: ReceiverIndex) -> None:
        self.kube = kube
        self.index = index

    async def reconcile(self, obj: Object) -> Reconciled:
        metadata = obj["metadata"]
        try:
            receiver_filters(obj.get("spec") or {})
        except ExpressionError as error:
            # Flux marks it terminal: nothing to retry until the spec changes.
            self.index.drop(key_of(obj))
            raise Stalled(meta.Reason.INVALID_CEL_EXPRESSION, str(error)) from None
        try:
            oidc_spec_problem(obj.get("spec") or {})
        except OIDCSpecError as error:
            self.index.drop(key_of(obj))
            raise Stalled(error.reason, error.message) from None
        try:
            secret = await read_secret(self.kube, obj)
        except TokenError as error:
            self.index.drop(key_of(obj))
            # Flux clears the path and retries with backoff; a Secret change retries at once.
            raise Transient(TOKEN_NOT_FOUND, str(error), status={"webhookPath": None}) from None
        token = secret["token"]
        path = webhook_path(
            token=token, name=metadata["name"], namespace=metadata.get("namespace", "")
        )
        self.index.put(path, ReceiverEntry(receiver=obj, token=token, ready=True, secret=secret))
        interval = format_duration(self.interval(obj))
        return Reconciled(
            meta.Reason.SUCCEEDED,
            f"Receiver initialized for path: {path}",
            status={"webhookPath": path},
            events=[
                EventNote(
                    "Normal",
                    meta.Reason.SUCCEEDED,
                    f"Reconciliation finished, next run in {interval}",
                )
            ],
        )

    def interval(self, obj: Object) -> float:
        return spec_interval(obj, default=600.0)

    def forget(self, key: Key) -> None:
        self.index.drop(key)

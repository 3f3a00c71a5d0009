"""The receiver: Flux's ``Receiver`` webhooks, from the HTTP request to the reconcile request.

A map of the package, in the order a request meets it:

- ``handler``: ``ReceiverWebhook``, the aiohttp handler for ``POST /hook/<digest>``;
  it decides the answer (status codes in its docstring).
- ``index``: ``ReceiverIndex``, webhook path → Receiver (and its Secret's token).
- ``verify``: one check per Receiver ``type`` (signatures, tokens, payloads,
  ``spec.events``), pure functions over headers and body; ``google`` checks
  the OIDC ID tokens of ``gcr`` (Pub/Sub push) against Google's keys, ``oidc``
  those of ``generic-oidc`` against discovered issuers; ``jwks`` fetches and
  caches their signing keys.
- ``requests``: ``ReconcileRequests``, which sets ``reconcile.fluxcd.io/requestedAt``
  on the listed resources ``spec.resourceFilter`` (CEL) accepts, coalescing bursts.

The reconciler that publishes ``status.webhookPath`` is a controller like the
others (``fluxd.controllers.receiver``); ``fluxd.controllers.notification``
wires it and the handler into the daemon.
"""

from __future__ import annotations

from fluxd.api.notification import receiver_webhook_path as webhook_path
from fluxd.receiver.handler import ReceiverEntry, ReceiverWebhook, WebhookOutcome
from fluxd.receiver.index import RECEIVER, ReceiverIndex, TokenError, read_secret
from fluxd.receiver.jwks import JsonWebKeys
from fluxd.receiver.requests import ReconcileRequests
from fluxd.receiver.verify import ReceiverVerdict, verify_receiver_request

__all__ = [
    "RECEIVER",
    "JsonWebKeys",
    "ReceiverEntry",
    "ReceiverIndex",
    "ReceiverVerdict",
    "ReceiverWebhook",
    "ReconcileRequests",
    "TokenError",
    "WebhookOutcome",
    "read_secret",
    "verify_receiver_request",
    "webhook_path",
]

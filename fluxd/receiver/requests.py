"""Acting on a genuine push: ``reconcile.fluxcd.io/requestedAt`` on each resource a Receiver lists.

````ReconcileRequests`` is the handler's ``ReconcileTrigger``. A resource is
named, or ``'*'`` with ``matchLabels`` (every labelled object of the kind).
``spec.resourceFilter`` and each entry's own ``filter`` are CEL expressions
over ``res`` (the resource's ``apiVersion``, ``kind`` and ``metadata``) and
``req`` (the JSON request body, ``{}`` when it is not JSON); only resources
both accept are requested. An expression that does not compile stalls the
Receiver (``receiver_filters``, called by its reconciler), so a delivery
only ever meets compiled ones.
A burst of pushes to one target is coalesced (the shared ``Coalescer`` in
leading mode): the first push patches at once, later ones within ``window``
collapse into one trailing patch, so the last push is always fetched and a
burst costs two fetches at most. Trailing patches are written by one
supervised task that runs only while some are pending, so nothing lingers
between bursts; ``aclose`` cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from fluxd.aio import Clock, Coalescer, supervise
from fluxd.api import meta
from fluxd.apply.cel import EvaluationError, Expression, ExpressionError
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object, PatchType
from fluxd.kube.events import EventRecorder
from fluxd.kube.resources import Resource
from fluxd.receiver.handler import ReceiverEntry
from fluxd.receiver.index import RECEIVER

log = structlog.get_logger("fluxd.receiver.requests")

REQUEST_FAILED: Final = "ReconcileRequestFailed"

# What a resourceFilter may name: the resource and the request body, as in Flux
# (and ``claims``, the verified token's, for generic-oidc Receivers).
FILTER_VARIABLES: Final = frozenset({"res", "req"})

# The name of the task that writes the trailing patches of coalesced pushes.
TRAILING_REQUESTS: Final = "receiver trailing reconcile requests"

# API versions Flux assumes when a Receiver's resource names only a kind.
DEFAULT_API_VERSIONS: Final[Mapping[str, str]] = {
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1beta2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1beta2",
}


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str
    name: str

    def describe(self) -> str:
        return f"{self.resource.kind}/{self.namespace}/{self.name}"


class ReconcileRequests:
    """Sets ``reconcile.fluxcd.io/requestedAt`` on a Receiver's resources.

    An instance is the HTTP handler's ``ReconcileTrigger``.
    """

    def __init__(
        self,
        *,
        kube: Kube,
        recorder: EventRecorder,
        window: float,
        no_cross_namespace_refs: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.kube = kube
        self.recorder = recorder
        self.no_cross_namespace_refs = no_cross_namespace_refs
        # The Receiver of the latest push to each target, kept for its trailing patch.
        self.coalescer: Coalescer[Target, Object] = Coalescer(
            window=window, leading=True, clock=clock
        )
        self._trailing: asyncio.Task[None] | None = None

    async def __call__(self, entry: ReceiverEntry, variables: Mapping[str, Any]) -> bool:
        """Request every listed resource ``spec.resourceFilter`` accepts; False on an API error."""
        receiver = {
            "apiVersion": RECEIVER.api_version,
            "kind": RECEIVER.kind,
            **entry.receiver,
        }
        try:
            filters = receiver_filters(entry.spec)
        except ExpressionError as error:
            await self._report(receiver, str(error))
            return False
        healthy = True
        for reference, accepts in zip(entry.spec.get("resources") or [], filters, strict=True):
            try:
                targets = await self._resolve(
                    reference, default_namespace=entry.namespace, metadata=bool(accepts)
                )
            except _TargetProblem as problem:
                await self._report(receiver, problem.message)
                continue
            except kube_errors.KubeError as error:
                await self._report(receiver, f"cannot list {reference.get('kind')}: {error}")
                healthy = False
                continue
            for target, metadata in targets:
                if accepts:
                    res = {
                        "apiVersion": target.resource.api_version,
                        "kind": target.resource.kind,
                        "metadata": metadata,
                    }
                    try:
                        # Both filters must accept; the first false one decides.
                        wanted = all(
                            expression.evaluate_bool({"req": {}, **variables, "res": res})
                            for expression in accepts
                        )
                    except EvaluationError as error:
                        # As Flux: the delivery fails (500), so the sender may retry.
                        await self._report(receiver, f"{target.describe()}: {error}")
                        healthy = False
                        continue
                    if not wanted:
                        log.debug("resourceFilter is false", target=target.describe())
                        continue
                healthy = await self._request(receiver, target) and healthy
        return healthy

    async def _resolve(
        self, reference: Mapping[str, Any], *, default_namespace: str, metadata: bool
    ) -> list[tuple[Target, Mapping[str, Any]]]:
        """The targets of one ``resources[]`` entry, with their metadata when ``metadata``."""
        kind = str(reference.get("kind", ""))
        api_version = str(reference.get("apiVersion") or DEFAULT_API_VERSIONS.get(kind, ""))
        if not api_version:
            raise _TargetProblem(f"apiVersion must be specified for kind '{kind}'")
        try:
            resource = await self.kube.resource_for(api_version, kind)
        except kube_errors.NotFound:
            raise _TargetProblem(f"the API server does not serve {kind} ({api_version})") from None
        namespace = str(reference.get("namespace") or default_namespace)
        if self.no_cross_namespace_refs and namespace != default_namespace:
            raise _TargetProblem(
                f"cannot reconcile {kind} in namespace '{namespace}': "
                "cross-namespace references are not allowed"
            )
        name = str(reference.get("name", ""))
        if name != "*":
            target = Target(resource, namespace, name)
            if not metadata:
                return [(target, {})]
            try:
                found = await self.kube.get(resource, name, namespace=namespace)
            except kube_errors.NotFound:
                raise _TargetProblem(f"{target.describe()} not found") from None
            return [(target, found.get("metadata") or {})]
        match_labels = reference.get("matchLabels")
        if not match_labels:
            raise _TargetProblem("matchLabels field not set when using wildcard '*' as name")
        selector = ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))
        items, _ = await self.kube.list_all(resource, namespace=namespace, label_selector=selector)
        if not items:
            raise _TargetProblem(
                f"no '{kind}' resources found with matching labels '{selector}' "
                f"in '{namespace}' namespace"
            )
        return [
            (Target(resource, namespace, str(item["metadata"]["name"])), item["metadata"])
            for item in items
        ]

    async def _request(self, receiver: Object, target: Target) -> bool:
        if self.coalescer.add(target, receiver, item_key=target):
            return await self._annotate(receiver, target)
        log.debug("reconcile request coalesced", target=target.describe())
        if self._trailing is None or self._trailing.done():
            # The request handler cannot own it: the patch is due after the answer is sent.
            self._trailing = asyncio.get_running_loop().create_task(
                supervise(TRAILING_REQUESTS, self._write_trailing), name=TRAILING_REQUESTS
            )
        return True

    async def _write_trailing(self) -> None:
        """Write each trailing patch when its window closes; return once none is pending."""
        while len(self.coalescer):
            for batch in await self.coalescer.wait_due():
                (receiver,) = batch.items
                await self._annotate(receiver, batch.key)

    async def _annotate(self, receiver: Object, target: Target) -> bool:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        patch = {"metadata": {"annotations": {meta.RECONCILE_REQUEST_ANNOTATION: now}}}
        try:
            await self.kube.patch(
                target.resource,
                target.name,
                patch,
                namespace=target.namespace,
                patch_type=PatchType.MERGE,
            )
        except kube_errors.NotFound:
            await self._report(receiver, f"{target.describe()} not found")
            return True
        except kube_errors.KubeError as error:
            await self._report(receiver, f"cannot annotate {target.describe()}: {error}")
            return False
        log.info(
            "reconcile requested",
            receiver=f"{receiver['metadata'].get('namespace')}/{receiver['metadata'].get('name')}",
            target=target.describe(),
        )
        return True

    async def _report(self, receiver: Object, message: str) -> None:
        metadata = receiver.get("metadata", {})
        log.warning(
            "cannot request a reconcile",
            receiver=f"{metadata.get('namespace')}/{metadata.get('name')}",
            error=message,
        )
        await self.recorder.record(
            receiver, type_="Warning", reason=REQUEST_FAILED, message=message
        )

    async def aclose(self) -> None:
        """Stop writing trailing patches (the daemon is stopping)."""
        task, self._trailing = self._trailing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@functools.lru_cache(maxsize=256)
def resource_filter(source: str, *, claims: bool = False) -> Expression:
    """Compile a ``resourceFilter`` or ``resources[].filter``: ``res``, ``req`` (``claims``)."""
    return Expression.parse(
        source, variables=FILTER_VARIABLES | {"claims"} if claims else FILTER_VARIABLES
    )


def receiver_filters(spec: Mapping[str, Any]) -> list[list[Expression]]:
    """The filters of each ``resources[]`` entry: ``resourceFilter``, then its own ``filter``.

    Raises ``ExpressionError`` with Flux's message for the first that does not compile.
    """
    source = str(spec.get("resourceFilter") or "")
    # Only generic-oidc Receivers have verified claims to read.
    claims = spec.get("type") == "generic-oidc"
    try:
        top = [resource_filter(source, claims=claims)] if source else []
    except ExpressionError as error:
        raise ExpressionError(f"invalid resourceFilter expression: {error}") from None
    filters: list[list[Expression]] = []
    for index, reference in enumerate(spec.get("resources") or []):
        own = str(reference.get("filter") or "")
        try:
            filters.append([*top, resource_filter(own, claims=claims)] if own else top)
        except ExpressionError as error:
            where = (
                f"resources[{index}] (kind={json.dumps(str(reference.get('kind', '')))}, "
                f"name={json.dumps(str(reference.get('name', '')))})"
            )
            raise ExpressionError(f"invalid filter expression for {where}: {error}") from None
    return filters


class _TargetProblem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

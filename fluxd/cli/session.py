"""One command's connection to the cluster, and the guard that turns failures into one line.

:func:`execute` connects with the global flags (``--kubeconfig``,
``--context``), runs the command's coroutine and maps every failure a user
can meet to a ``✗`` line and an exit code. The helpers here are the reads
every command shares: is a kind served, fetch one named object.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from fluxd.cli.failures import CommandError, CrdsMissing, ObjectNotFound, describe_kube_error
from fluxd.cli.kinds import CliKind
from fluxd.cli.terminal import Terminal
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import ConfigError, Kube, Object
from fluxd.kube.resources import Resource

DEFAULT_NAMESPACE = "flux-system"
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass
class Session:
    """What a command works with: the API, the terminal, and the global flags."""

    kube: Kube
    terminal: Terminal
    namespace: str
    timeout: float

    async def ensure_served(self, kind: CliKind) -> Resource:
        """The kind's Resource; CrdsMissing when the API server does not serve it."""
        try:
            await self.kube.resource_for(kind.api.api_version, kind.kind)
        except kube_errors.NotFound as error:
            raise CrdsMissing(crd=kind.api.crd_name) from error
        return Resource.of(kind.api)

    async def get_named(self, kind: CliKind, name: str, *, namespace: str | None = None) -> Object:
        """One object of ``kind``; ObjectNotFound (or CrdsMissing) when it is not there."""
        resource = await self.ensure_served(kind)
        where = namespace or self.namespace
        found = await self.kube.get_or_none(resource, name, namespace=where)
        if found is None:
            raise ObjectNotFound(kind=kind.kind, name=name, namespace=where)
        return found


Command = Callable[[Session, argparse.Namespace], Awaitable[int]]


def execute(args: argparse.Namespace, command: Command, *, terminal: Terminal | None = None) -> int:
    """Run ``command`` with a connected Session; failures become one line and an exit code."""
    screen = terminal or Terminal()
    host = "(unknown)"

    async def connected() -> int:
        nonlocal host
        if args.kubeconfig and not await anyio.Path(args.kubeconfig).is_file():
            raise CommandError(f"kubeconfig file {args.kubeconfig} not found")
        kube = await Kube.connect(kubeconfig=args.kubeconfig or None, context=args.context or None)
        host = kube.host
        try:
            session = Session(
                kube=kube, terminal=screen, namespace=args.namespace, timeout=args.timeout
            )
            return await command(session, args)
        finally:
            await kube.close()

    try:
        return anyio.run(connected)
    except CommandError as error:
        screen.failure(error.message)
        return error.exit_code
    except ConfigError as error:
        screen.failure(str(error))
        return 1
    except kube_errors.KubeError as error:
        screen.failure(describe_kube_error(error, host=host))
        return 1
    except KeyboardInterrupt:
        return 130

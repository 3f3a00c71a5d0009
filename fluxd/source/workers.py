"""A bounded set of threads for blocking git work that a stuck network peer cannot grow.

libgit2 blocks in C, so a git operation cannot be interrupted: when the caller
gives up on it (a timeout), the thread goes on until libgit2 returns. A plain
thread pool with a capacity limiter forgets such a thread as soon as its
caller is cancelled, so every poll of a silent server started one more thread
that stayed stuck. Here an operation holds its slot until its work really
ends, whether or not anyone still waits for it, so at most ``capacity`` git
threads exist whatever the callers do; and a key (one source) whose previous operation is still
running is refused at once instead of stacking a second thread behind it.

Threads are daemons: a thread stuck in a network call must not hold up the
process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable
from typing import TypeVar, cast

__all__ = ["GitWorkers", "WorkerBusy"]

_T = TypeVar("_T")
_thread_names = itertools.count(1)


class WorkerBusy(Exception):
    """The key's previous operation is still running in its thread."""

    def __init__(self, key: str) -> None:
        super().__init__(f"a previous operation of '{key}' is still running")
        self.key = key


class GitWorkers:
    """Run blocking callables in at most ``capacity`` threads, one at a time per key.

    Threads are started on demand and then kept, waiting for the next job:
    starting one costs a few hundred microseconds, several times a hand-off
    to a waiting thread.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("git workers need a capacity of at least one thread")
        self.capacity = capacity
        self._running: set[str] = set()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        # Threads started, and jobs queued or running; both only ever under _lock.
        self._lock = threading.Lock()
        self._threads = 0
        self._pending = 0
        # Created on first use: the semaphore must belong to the running loop.
        self._slots: asyncio.Semaphore | None = None

    @property
    def running(self) -> int:
        """Operations that have started and not yet finished (abandoned ones included)."""
        return len(self._running)

    async def run(self, work: Callable[[], _T], *, key: str) -> _T:
        """Run ``work`` in a worker thread and return its result.

        Waits for a free slot first. If the caller is cancelled (a timeout),
        the operation keeps its slot and its key until ``work`` returns.
        """
        if key in self._running:
            raise WorkerBusy(key)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.capacity)
        slots = self._slots
        await slots.acquire()
        if key in self._running:
            # Another call for the key got a slot while this one waited.
            slots.release()
            raise WorkerBusy(key)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[_T] = loop.create_future()
        self._running.add(key)

        def finish(result: _T | None, error: BaseException | None) -> None:
            self._running.discard(key)
            slots.release()
            if outcome.done():  # the caller gave up
                return
            if error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(cast(_T, result))

        def job() -> None:
            result: _T | None = None
            error: BaseException | None = None
            try:
                result = work()
            except BaseException as caught:
                error = caught
            with self._lock:
                self._pending -= 1
            # RuntimeError: the loop is closed, the process is stopping.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(finish, result, error)

        # Jobs in flight never outnumber the slots, so at most `capacity` threads
        # are started: a job finds an idle thread, or one that is just returning.
        with self._lock:
            self._pending += 1
            start = self._pending > self._threads
            if start:
                self._threads += 1
        self._jobs.put(job)
        if start:
            threading.Thread(
                target=self._serve, name=f"fluxd-git-{next(_thread_names)}", daemon=True
            ).start()
        return await outcome

    def _serve(self) -> None:
        while True:
            self._jobs.get()()

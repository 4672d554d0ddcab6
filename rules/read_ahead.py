"""The next CPU tests run in batches while SCons records the ones before: at ``-j1`` one at a time.

SCons runs one action per test: between two tests it does its own bookkeeping
(signatures, ``.sconsign``, checking the next node) while the run worker idles, then
waits while the worker runs the test, one request and one reply per test. Here, when a
test's action has its outcome, the next function calls that SCons is certain to run are
sent to a run worker as one batch on a background lane (one lane per job), whose
outcomes stream back while SCons records the ones before. A lane holds one of the jobs'
slots while its batch runs, and so does an action that runs its test itself: never more
tests at once than ``-j`` says; ``-j1`` means one test at a time.

Only a test whose outcome cannot differ from running it in its own action qualifies:
a CPU test (a GPU lane runs one test at a time anyway), without a cluster, whose
result file is missing (or ``--iree-retest`` is given), so SCons will run its action,
and all of whose children SCons has already built or checked in this build (or that
are plain source files), so its inputs are final. Its outcome is used only when SCons
runs its action; the PASS/FAIL line, the result file and the count all come from there,
in SCons' order. A test that SCons never gets to (the build stopped at a failure) was
run for nothing, and nothing of it is kept.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, TimeoutError
from typing import Any

import SCons.Node
import SCons.Script

from iree_build.testing.device_names import is_cpu_device

from . import cluster_backend, options

_READY = (SCons.Node.up_to_date, SCons.Node.executed)

BATCH = 16
"""Tests sent to a run worker in one request (one reply stream): one request per test cost
more than a small test."""

CLOSE_WAIT_S = 2.0
"""At exit, how long tests still running ahead (the build stopped) may take to end."""

WINDOW = 4 * BATCH
"""How far past the running test to look for ones that qualify (a module may not be
built yet: then later tests are taken)."""


def wanted() -> bool:
    """Read ahead in this build: ``scons test`` that really runs tests, on two cores or more."""
    if "test" not in SCons.Script.COMMAND_LINE_TARGETS:
        return False
    if _cores() < 2:
        return False
    return not any(SCons.Script.GetOption(o) for o in ("no_exec", "clean", "question", "help"))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _inputs_final(node: Any) -> bool:
    for child in node.children(scan=False):
        if child.get_state() in _READY:
            continue
        if child.has_builder() or child.srcnode() is not child:
            return False  # built (or duplicated into a variant folder) when SCons gets to it
        if not os.path.exists(child.get_abspath()):
            return False
    return True


class ReadAhead:
    """Tests ahead of SCons, in batches on background lanes (one per job; the run pool
    gives each lane a worker of its own). A job's slot is held by a lane while its batch
    runs and by an action running a test itself: never more tests at once than jobs."""

    def __init__(
        self,
        tests: list[Any],
        start: Callable[[Any], None],
        run: Callable[[list[Any]], Iterator[tuple[Any, Any]]],
        drop: Callable[[Any], None],
        jobs: int = 1,
    ) -> None:
        self._tests = [t for t in tests if t.selected and t.kind == "call" and is_cpu_device(t.device)]
        self._index = {t.name: i for i, t in enumerate(self._tests)}
        self._start = start  # in SCons' thread, before the run: restage deleted data
        self._run = run  # in a lane: the outcomes of a batch, in its order
        self._drop = drop  # a test run ahead whose action never ran: clean up after it
        self._lanes = jobs
        self._slots = threading.Semaphore(jobs)
        self._lock = threading.Lock()  # SCons' job threads share this object
        self._futures: dict[str, Future] = {}
        self._done: set[str] = set()  # taken by their action, or never to be read ahead
        self._jobs: queue.SimpleQueue[list[tuple[Any, Future]]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._queued = 0  # batches queued or running

    def take(self, test: Any) -> Any | None:
        """``test``'s outcome if it was run ahead (waiting for it), else None: run it with
        :meth:`local`."""
        with self._lock:
            self._done.add(test.name)
            future = self._futures.pop(test.name, None)
        if future is None:
            return None
        result = future.result()
        self._start_next(self._index.get(test.name, -1) + 1)
        return result

    def local(self, test: Any, run: Callable[[], Any]) -> Any:
        """Run ``test`` in its action, in a job's slot; then start what qualifies after it."""
        with self._slots:
            result = run()
        self._start_next(self._index.get(test.name, -1) + 1)
        return result

    def _start_next(self, first: int) -> None:
        with self._lock:
            while self._queued < self._lanes:
                batch: list = []
                for test in self._tests[first : first + WINDOW]:
                    if len(batch) >= BATCH:
                        break
                    if test.name in self._done or test.name in self._futures or not self._qualifies(test):
                        continue
                    self._start(test)
                    future: Future = Future()
                    self._futures[test.name] = future
                    batch.append((test, future))
                if not batch:
                    return
                self._queued += 1
                self._jobs.put(batch)
                if not self._threads:
                    atexit.register(self.close)
                if len(self._threads) < self._lanes:
                    thread = threading.Thread(
                        target=self._serve, daemon=True, name=f"iree-test-read-ahead-{len(self._threads)}"
                    )
                    thread.start()
                    self._threads.append(thread)

    def _qualifies(self, test: Any) -> bool:
        node = test.result
        if node.get_state() != SCons.Node.no_state:
            return False  # SCons has been there already
        env = node.get_build_env()
        if cluster_backend.configured(env) or env.get_CacheDir().is_enabled():
            return False  # run elsewhere, or SCons may retrieve the result instead of running it
        if os.path.exists(node.get_abspath()) and not options.option("iree-retest"):
            return False  # SCons may find it up to date
        return _inputs_final(node)

    def _serve(self) -> None:
        while True:
            batch = self._jobs.get()
            futures = {t.name: f for t, f in batch}
            try:
                with self._slots:
                    for test, result in self._run([t for t, _ in batch]):
                        futures.pop(test.name).set_result(result)
            except BaseException as e:  # noqa: BLE001 - handed to the actions that take them
                for future in futures.values():
                    future.set_exception(e)
            finally:
                with self._lock:
                    self._queued -= 1

    def close(self) -> None:
        """At exit (before the run pool closes): let the tests still running ahead end (a
        small test takes milliseconds; at most ``CLOSE_WAIT_S`` in all), then clean up
        after every test run ahead that no action took."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        with self._lock:
            pending = dict(self._futures)
            self._futures.clear()
        for future in pending.values():
            try:
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                pass
        for name in pending:
            self._drop(self._tests[self._index[name]])

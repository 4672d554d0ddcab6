"""At ``-j1``, the next CPU test runs while SCons records the one before: one at a time.

With one job SCons runs one action at a time: between two tests it does its own
bookkeeping (signatures, ``.sconsign``, checking the next node) while the run worker
idles, then waits while the worker runs the test. Here, when a test's action has its
outcome, the next test that SCons is certain to run is started on a background thread,
so SCons' bookkeeping overlaps that test. Never more than one test runs at a time:
``-j1`` means one test at a time; running tests side by side is what ``-j N`` is for.

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
from concurrent.futures import Future, TimeoutError
from typing import Any, Callable

import SCons.Node
import SCons.Script

from iree_build.testing.device_names import is_cpu_device

from . import cluster_backend, options

_READY = (SCons.Node.up_to_date, SCons.Node.executed)

DEPTH = 1
"""Tests started ahead and not yet taken: one, started only once the test before has its
outcome, so that no two tests ever run at once."""

CLOSE_WAIT_S = 2.0
"""At exit, how long tests still running ahead (the build stopped) may take to end."""

WINDOW = 8
"""How far past the running test to look for ones that qualify (a module may not be
built yet: then later tests are taken)."""


def wanted() -> bool:
    """Read ahead in this build: ``scons test`` with one job, that really runs tests."""
    if SCons.Script.GetOption("num_jobs") != 1 or "test" not in SCons.Script.COMMAND_LINE_TARGETS:
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
    """A few tests ahead of SCons, on background threads (the run pool gives each thread
    a worker of its own)."""

    def __init__(self, tests: list[Any], start: Callable[[Any], None],
                 run: Callable[[Any], Any], drop: Callable[[Any], None]) -> None:
        self._tests = [t for t in tests if t.selected and is_cpu_device(t.device)]
        self._index = {t.name: i for i, t in enumerate(self._tests)}
        self._start = start  # in SCons' thread, before the run: restage deleted data
        self._run = run  # in the background thread: the test's outcome
        self._drop = drop  # a test run ahead whose action never ran: clean up after it
        self._futures: dict[str, Future] = {}
        self._done: set[str] = set()  # taken by their action, or never to be read ahead
        self._jobs: queue.SimpleQueue[tuple[Any, Future]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def take(self, test: Any) -> Any | None:
        """``test``'s outcome if it was run ahead (waiting for it), else None: run it now,
        then call :meth:`done`."""
        self._done.add(test.name)
        future = self._futures.pop(test.name, None)
        if future is None:
            for other in list(self._futures.values()):
                other.exception()  # a test run ahead ends first (its outcome waits for its action)
            return None
        result = future.result()
        self.done(test)
        return result

    def done(self, test: Any) -> None:
        """``test`` has its outcome: start the next test that qualifies (none runs now)."""
        if not self._futures:
            self._start_next(self._index.get(test.name, -1) + 1)

    def _start_next(self, first: int) -> None:
        for test in self._tests[first:first + WINDOW]:
            if len(self._futures) >= DEPTH:
                return
            if test.name in self._done or test.name in self._futures or not self._qualifies(test):
                continue
            self._start(test)
            future: Future = Future()
            self._futures[test.name] = future
            self._jobs.put((test, future))
            if not self._threads:
                atexit.register(self.close)
            if not self._threads:
                thread = threading.Thread(target=self._serve, daemon=True,
                                          name=f"iree-test-read-ahead-{len(self._threads)}")
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
            test, future = self._jobs.get()
            try:
                future.set_result(self._run(test))
            except BaseException as e:  # noqa: BLE001 - handed to the action that takes it
                future.set_exception(e)

    def close(self) -> None:
        """At exit (before the run pool closes): let the tests still running ahead end (a
        small test takes milliseconds; at most ``CLOSE_WAIT_S`` in all), then clean up
        after every test run ahead that no action took."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        for future in list(self._futures.values()):
            try:
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                pass
        for name in list(self._futures):
            self._drop(self._tests[self._index[name]])
        self._futures.clear()

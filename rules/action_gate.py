"""Benchmarks run alone: a gate every IREE action of the build passes through.

``-j`` runs SCons actions in threads of one process. Ordinary IREE actions
(compiles, tests, runs, data files) pass the gate together; a benchmark waits
until those in flight are done, and holds new ones back until it is measured.
A ``SideEffect`` lock cannot say this: nodes sharing one are serialized with
each other too, so putting every compile under the CPU's lock would undo
``-j``. Writers are preferred, so a waiting benchmark is not starved by a
stream of compiles.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ActionGate:
    """A readers-writer lock: many shared holders, or one exclusive holder."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # exclusive holders waiting: new shared holders wait behind them

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


GATE = ActionGate()

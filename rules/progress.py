"""Where a build is: ``[k/N]`` on each IREE action line in a log, a status line on a terminal.

Like Ninja's ``[k/N]`` and Bazel's status line. N is what this build will run
of the IREE actions (compiles, imports, runs, tests, benchmarks) needed by the
targets asked for: counted once, when the first of them starts (a no-op build
counts nothing), as those whose output is missing or always rebuilt; an
action found out of date later (an edited source) adds itself. On a terminal one
line at the bottom says how many are done, which run now, the time spent and an
estimate of what is left, redrawn in place under everything else printed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

from . import options

MODES = ("auto", "terminal", "lines", "none")


def mode() -> str:
    """``--iree-progress``: ``auto`` is a status line on a terminal, else lines."""
    import SCons.Script

    chosen = options.option("iree-progress") or "auto"
    if chosen != "auto":
        return chosen
    if SCons.Script.GetOption("silent"):
        return "none"
    stream = sys.stdout
    on_terminal = hasattr(stream, "isatty") and stream.isatty()
    if (
        not on_terminal
        or os.environ.get("CI", "").lower() in ("1", "true", "yes")
        or os.environ.get("TERM") == "dumb"
    ):
        return "lines"
    return "terminal"


def _fmt(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}:{seconds % 60:02d}"


class _StatusStream:
    """stdout with a status line kept at the bottom: every write first clears it, and
    it is drawn again after a completed line. All SCons output goes through here."""

    def __init__(self, out: TextIO, progress: Progress) -> None:
        self._out = out
        self._progress = progress
        self._drawn = False
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        with self._lock:
            if self._drawn:
                self._out.write("\r\x1b[K")
                self._drawn = False
            n = self._out.write(text)
            if text.endswith("\n"):
                self._draw()
            return n

    def _draw(self) -> None:
        status = self._progress.status()
        if status:
            width = _columns()
            self._out.write(status[: width - 1])
            self._drawn = True
        self._out.flush()

    def redraw(self) -> None:
        with self._lock:
            if self._drawn:
                self._out.write("\r\x1b[K")
            self._drawn = False
            self._draw()

    def clear(self) -> None:
        with self._lock:
            if self._drawn:
                self._out.write("\r\x1b[K")
                self._out.flush()
            self._drawn = False

    def flush(self) -> None:
        self._out.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def _columns() -> int:
    try:
        if sys.__stdout__ is None:  # no stdout at all: the fallback below
            raise OSError("no stdout")
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (OSError, AttributeError, ValueError):
        return 100


class Progress:
    """The counts of one build (kept on its Registry)."""

    def __init__(self, how: str, total: int) -> None:
        self.mode = how
        self.total = total
        self.started = 0
        self.done = 0
        self.failed = 0
        self.running: dict[int, str] = {}
        self.ordinal: dict[int, int] = {}
        self.t0 = time.monotonic()
        self.durations: list[float] = []
        self._since: dict[int, float] = {}
        self._lock = threading.Lock()
        self.stream: _StatusStream | None = None
        if how == "terminal":
            self.stream = _StatusStream(sys.stdout, self)
            sys.stdout = self.stream  # type: ignore[assignment]

    def begin(self, key: int, what: str) -> None:
        with self._lock:
            if key in self.ordinal:
                return
            self.started += 1
            self.total = max(self.total, self.started)
            self.ordinal[key] = self.started
            self.running[key] = what
            self._since[key] = time.monotonic()
        if self.stream is not None:
            self.stream.redraw()

    def end(self, key: int, ok: bool) -> None:
        with self._lock:
            if self.running.pop(key, None) is None:
                return
            self.done += 1
            self.failed += 0 if ok else 1
            self.durations.append(time.monotonic() - self._since.pop(key))
        if self.stream is not None:
            self.stream.redraw()

    def prefix(self, key: int) -> str:
        """``[k/N] `` for an action line in a log; '' otherwise."""
        if self.mode != "lines":
            return ""
        with self._lock:
            k = self.ordinal.get(key, self.started)
            return f"[{k}/{self.total}] "

    def status(self) -> str:
        """The terminal's status line: done/total, what runs, elapsed and what is left."""
        with self._lock:
            if not self.started:
                return ""
            elapsed = time.monotonic() - self.t0
            left = ""
            remaining = self.total - self.done
            if self.done and remaining > 0:
                lanes = max(1, len(self.running))
                per = elapsed / self.done if lanes == 1 else sum(self.durations) / self.done / lanes
                left = f", ~{_fmt(per * remaining)} left"
            names = list(self.running.values())
            what = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
            failed = f", {self.failed} failed" if self.failed else ""
            running = f" | running: {what}" if what else ""
            return f"[{self.done}/{self.total}{failed}] {_fmt(elapsed)} elapsed{left}{running}"

    def close(self) -> None:
        """The build ended: take the status line away (the summary follows)."""
        if self.stream is not None:
            self.stream.clear()
            if sys.stdout is self.stream:
                sys.stdout = self.stream._out  # type: ignore[assignment]
            self.stream = None


def counted(node: Any) -> Any:
    """The executor of ``node`` when an IREE action that progress counts builds it."""
    if not node.has_builder():
        return None
    executor = node.get_executor()
    if executor is None:
        return None
    actions = executor.get_action_list()
    if actions and getattr(actions[0], "counted", False):  # an ExplicitAction a person waits for
        return executor
    return None


def estimate(env: Any) -> int:
    """How many IREE actions this build will run: those needed by the targets asked for
    whose output is missing or always rebuilt (the graph is walked once)."""
    import SCons.Node.Alias
    import SCons.Script

    names = list(SCons.Script.BUILD_TARGETS) or list(SCons.Script.DEFAULT_TARGETS) or ["."]
    stack = []
    for name in names:
        if hasattr(name, "children"):
            stack.append(name)
            continue
        alias = SCons.Node.Alias.default_ans.lookup(str(name))
        stack.append(alias if alias is not None else env.fs.Entry(str(name)))
    seen: set[int] = set()
    executors: set[int] = set()
    count = 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        executor = counted(node)
        if executor is not None and id(executor) not in executors:
            executors.add(id(executor))
            if node.always_build or not all(t.exists() for t in executor.get_all_targets()):
                count += 1
        stack.extend(node.children(scan=0))
    return count


def of(env: Any) -> Progress | None:
    """This build's progress, made when its first counted action starts (None: off)."""
    from .registry import registry

    reg = registry(env)
    if reg.progress is None:
        with reg.print_lock:
            if reg.progress is None:
                how = mode()
                reg.progress = Progress(how, estimate(env)) if how != "none" else False
                if reg.progress:
                    import atexit

                    atexit.register(reg.progress.close)
    return reg.progress or None

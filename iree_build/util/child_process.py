"""What every long-lived worker process of the build shares: how it starts and how it dies.

Compile workers and run workers are separate programs speaking JSON lines;
both must never outlive the build and must keep their reply channel clean of
whatever the IREE libraries print. Standard library only: the test runner
imports it on machines that have just the runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, TextIO

PARENT_ENV = "IREE_BUILD_WORKER_PARENT"  # the PID of the process that started a worker


def start_worker(args: list[str], **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen`` of a Python worker that no Ctrl-C can reach while it starts.

    A terminal's Ctrl-C goes to the whole process group: a worker still importing its
    libraries would die of it with a ``KeyboardInterrupt`` traceback. So SIGINT is
    blocked in this thread while the child is created (a thread's signal mask is what
    ``fork`` and ``exec`` pass on; nothing else of this process changes); the worker
    holds it pending until :func:`ignore_interrupts`, which discards it. The build
    stops its workers itself (its pipes close, or they are killed).
    """
    env = dict(popen.pop("env", None) or os.environ)
    env[PARENT_ENV] = str(os.getpid())
    held = hasattr(signal, "pthread_sigmask")
    if held:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(args, env=env, **popen)
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_interrupts() -> None:
    """Ctrl-C is the parent's to handle: ignored from now on, and one that arrived while
    this worker started (held by :func:`start_worker`) is dropped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the thread that started us goes away: no orphans.

    A parent that died before the request (a ``kill -9`` of the build while this worker
    started) is seen by our parent PID no longer being its: we leave at once."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit() and os.getppid() != int(parent):
        os._exit(0)


def worker_setup() -> TextIO:
    """Common start of a worker's ``main``: returns the channel for replies.

    Ctrl-C is the parent's to handle; stdout (fd 1) is pointed at stderr so
    that native code printing to it cannot corrupt the protocol.
    """
    ignore_interrupts()
    die_with_parent()
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return replies


def worker_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a worker: this package findable even from a source checkout."""
    env = dict(os.environ if env is None else env)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds iree_build
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def death_reason(returncode: int) -> str:
    """``SIGSEGV``, ``SIGABRT`` or ``exit code 3`` for a finished worker."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"

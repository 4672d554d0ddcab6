"""What every long-lived worker process of the build shares: how it starts and how it dies.

Compile workers and run workers are separate programs speaking JSON lines;
both must never outlive the build and must keep their reply channel clean of
whatever the IREE libraries print. Standard library only: the test runner
imports it on machines that have just the runtime.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TextIO


def die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the thread that started us goes away: no orphans."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_setup() -> TextIO:
    """Common start of a worker's ``main``: returns the channel for replies.

    Ctrl-C is the parent's to handle; stdout (fd 1) is pointed at stderr so
    that native code printing to it cannot corrupt the protocol.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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

"""What the benchmarks share: finding the user's tools, timing, CPU accounting."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator


def user_tool(name: str) -> str:
    """``name`` as a user of this venv runs it: its bin folder first, then PATH."""
    venv_bin = str(Path(sys.executable).parent)
    exe = shutil.which(name, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if not exe:
        sys.exit(f"error: no {name} on PATH (pip install iree-base-compiler iree-base-runtime)")
    return exe


def children_cpu() -> float:
    """CPU seconds (user + sys) of all waited-for descendants so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wall(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@contextlib.contextmanager
def workdir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary project folder, removed afterwards unless ``--keep`` asked for it."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        sys.stdout.flush()
        if keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

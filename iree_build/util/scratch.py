"""A run worker's scratch folders, named by its PID, so that what a killed worker leaves
(a test stopped at its time limit, say) is removed by the fork server that reaps it.

The standard library modules are imported when used: the fork server imports this,
and its start is on the path to every run's first test."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tempfile

PREFIX = "iree-worker-"


def worker_scratch() -> tempfile.TemporaryDirectory:
    """A scratch folder of this process, removed when its ``with`` ends (or, if the process
    is killed first, by :func:`remove_scratch_of`)."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-")


def remove_scratch_of(pid: int) -> None:
    """Remove the scratch folders a process that is gone left behind."""
    import shutil
    import tempfile
    from pathlib import Path

    try:
        for left in Path(tempfile.gettempdir()).glob(f"{PREFIX}{pid}-*"):
            shutil.rmtree(left, ignore_errors=True)
    except OSError:
        pass

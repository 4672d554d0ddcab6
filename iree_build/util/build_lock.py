"""One build or test run at a time per tree: a second one says so and touches nothing.

Two builds in one tree (or a build and the standalone runner) would write the same
outputs, results, reports and temporary files at once, and a runner started
mid-build would report modules that are still being compiled as missing. The
lock is an ``flock`` on ``.iree_build.lock`` in the project's top folder, held
for the life of the process (the OS drops it when the process ends, also when it
is killed); its text names the holder for the message. The standalone runner
takes the lock of the nearest folder above its manifest that has one.
"""

from __future__ import annotations

import os
from pathlib import Path

from iree_build.util.atomic import pid_alive

LOCK_NAME = ".iree_build.lock"

_held: dict[str, int] = {}  # folder -> open fd (one per process; never closed)


def acquire(top: str | os.PathLike[str], who: str = "scons", shared: bool = False) -> str | None:
    """Take the folder's lock; returns None, or why it cannot be taken (another holder).

    A build takes it alone; test runners (``shared``) take it together, so that ctest may
    run an exported tree's tests in parallel, but never beside a build.
    """
    top = str(top)
    if top in _held:
        return None
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return None
    path = os.path.join(top, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        text = os.read(fd, 200).decode(errors="replace").strip() or "?"
        os.close(fd)
        pid, _, what = text.partition(" ")
        holder = f"another {what or 'scons'} (PID {pid})"
        if not (pid.isdigit() and pid_alive(int(pid))):  # held by test runners, which leave no name
            holder = "a test run (python -m iree_build test)"
        return f"{holder} is using this tree; wait for it to finish (nothing was touched)"
    if not shared:
        try:  # the holder's name, for the message of another: on a full disk, none
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {who}".encode())
        except OSError:
            pass
    _held[top] = fd
    return None


def lock_tree(folder: str | os.PathLike[str], who: str, shared: bool = False) -> str | None:
    """For a front end that reads or writes a built tree (the test runner, the benchmark
    runner): take the lock of the tree ``folder`` is in. None, or the one line saying
    why not (another build or run holds it). A read-only tree is not locked: nothing can
    be written there anyway."""
    top = tree_of(folder)
    try:
        why = acquire(top, who, shared=shared)
    except OSError:
        return None
    return f"{os.path.relpath(top / LOCK_NAME)}: {why}" if why else None


def tree_of(folder: str | os.PathLike[str]) -> Path:
    """The folder whose lock guards ``folder``: the nearest one at or above it that has a
    lock file (the project's top), else ``folder`` itself (a tree copied elsewhere)."""
    here = Path(folder).resolve()
    for candidate in (here, *here.parents):
        if (candidate / LOCK_NAME).exists():
            return candidate
    return here

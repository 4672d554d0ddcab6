"""One build at a time per tree: a second ``scons`` says so and touches nothing.

Two builds in one tree would write the same outputs, results and temporary
files at once. The lock is an ``flock`` on ``#/.iree_build.lock``, held for the
life of the SCons process (the OS drops it when the process ends, also when it
is killed); its text names the holder's PID for the message.
"""

from __future__ import annotations

import os

LOCK_NAME = ".iree_build.lock"

_held: dict[str, int] = {}  # top folder -> open fd (one per process; never closed)


def acquire(top: str) -> str | None:
    """Take the tree's lock; returns None, or why it cannot be taken (another build)."""
    if top in _held:
        return None
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return None
    path = os.path.join(top, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        return (f"another scons (PID {holder}) is building this tree; wait for it to finish "
                "(nothing was touched)")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[top] = fd
    return None

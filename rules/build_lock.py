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
_wanted: list[str] = []  # top folders the tool was loaded for, to lock at the first declaration
_deferred: list[tuple[str, str]] = []  # (message, where): problems found while the tool loaded


def want(top: str) -> None:
    """The tool was loaded for this tree (``generate``): lock it when the first rule is
    declared. Loading the tool itself never stops the process."""
    if top not in _wanted:
        _wanted.append(top)


def defer(message: str, where: str) -> None:
    """A problem found while the tool loaded, said (exit 2) at the first declaration."""
    _deferred.append((message, where))


def before_declaration() -> None:
    """At each rule declaration (cheap after the first): say a deferred problem, take the
    tree's lock (another build there: one line, exit 2, nothing touched)."""
    if not _deferred and not _wanted:
        return
    from .where import fail

    if _deferred:
        fail(*_deferred[0])
    while _wanted:
        why = acquire(_wanted[0])
        if why:
            fail(why)
        _wanted.pop(0)


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

"""One build at a time per tree: a second ``scons`` says so and touches nothing.

The lock itself is the engine's (``iree_build/util/build_lock.py``), shared with the
standalone test runner.
"""

from __future__ import annotations

from iree_build.compile.pool import sweep_dead_workers
from iree_build.util.build_lock import LOCK_NAME, acquire

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
            fail(why, LOCK_NAME)  # not a declaration's mistake: no SConscript line
        sweep_dead_workers(_wanted.pop(0))  # ours alone now: what killed builds' workers left


__all__ = ["LOCK_NAME", "acquire", "want", "defer", "before_declaration"]

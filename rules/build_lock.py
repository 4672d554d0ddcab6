"""One build at a time per tree: a second ``scons`` says so and touches nothing.

The lock itself is the engine's (``iree_build/util/build_lock.py``), shared with the
standalone test runner. What is still to lock or to say is the build's (its Registry).
"""

from __future__ import annotations

from iree_build.compile.pool import sweep_dead_workers
from iree_build.util.atomic import os_error_text
from iree_build.util.build_lock import LOCK_NAME, acquire

from .registry import current, registry


def want(env, top: str) -> None:
    """The tool was loaded for this tree (``generate``): lock it when the first rule is
    declared. Loading the tool itself never stops the process."""
    wanted = registry(env).lock_wanted
    if top not in wanted:
        wanted.append(top)


def defer(env, message: str, where: str) -> None:
    """A problem found while the tool loaded, said (exit 2) at the first declaration."""
    registry(env).deferred.append((message, where))


def before_declaration() -> None:
    """At each rule declaration (cheap after the first): say a deferred problem, take the
    tree's lock (another build there: one line, exit 2, nothing touched)."""
    reg = current()
    if not reg.deferred and not reg.lock_wanted:
        return
    from .where import fail

    if reg.deferred:
        fail(*reg.deferred[0])
    while reg.lock_wanted:
        try:
            why = acquire(reg.lock_wanted[0])
        except OSError as e:  # a read-only tree: nothing could be built there anyway
            why = f"cannot take the build's lock: {os_error_text(e)} (a build writes into this tree)"
        if why:
            fail(why, LOCK_NAME)  # not a declaration's mistake: no SConscript line
        sweep_dead_workers(reg.lock_wanted.pop(0))  # ours alone now: what killed builds' workers left


__all__ = ["LOCK_NAME", "acquire", "want", "defer", "before_declaration"]

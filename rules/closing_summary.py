"""What broke, once more at the end of a build: failed compiles with their first error line.

A ``scons test`` build lists them in its test summary (``test_rule``); any other
build that had failed compiles lists them when it ends, so that with ``-k`` a
user learns what broke without scrolling.
"""

from __future__ import annotations

import atexit
import sys
from typing import Any

from .registry import Registry, registry


def note_failed_step(env: Any, node: Any, message: str) -> None:
    """A compile or import failed (its one line ``message``)."""
    reg = registry(env)
    info = reg.modules.get(node.get_abspath())
    with reg.print_lock:
        reg.failed_steps.append((node.get_internal_path(), message, info.where if info else ""))
    if reg.once("closing summary"):
        atexit.register(_print, reg)


def _print(reg: Registry) -> None:
    import SCons.Script

    if "test" in SCons.Script.COMMAND_LINE_TARGETS and reg.tests:
        return  # the test summary lists them with the tests
    from iree_build.testing.summary import failure_lines

    for line in failure_lines([], reg.failed_steps):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()

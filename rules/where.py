"""Declaration errors point at the user's SConscript line, in one line.

SCons' own UserError report names the deepest non-SCons frame, which would be
this package; a user needs the SConscript line that made the bad declaration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

from .registry import current

_HERE = Path(__file__).resolve().parent
# Frames name files as imported: also through a link to this folder (the benchmarks' shim).
_OWN = tuple(
    dict.fromkeys((str(_HERE), str(_HERE.parent / "iree_build"), os.path.dirname(os.path.abspath(__file__))))
)
_SCONS = f"{os.sep}SCons{os.sep}"


def _top() -> str:
    """The SConstruct folder: SCons changes the working folder while reading SConscripts."""
    try:
        import SCons.Node.FS

        return SCons.Node.FS.get_default_fs().Top.get_abspath()
    except Exception:  # outside a SCons run
        return os.getcwd()


def _relative(name: str) -> str:
    """A SConscript's path from the top folder (once per file and build: every declaration asks)."""
    known = current().relative_names
    found = known.get(name)
    if found is None:
        try:
            found = os.path.relpath(name, _top())
        except ValueError:
            found = name
        known[name] = found
    return found


def declared_at() -> str:
    """``file:line`` of the innermost user frame (SConstruct/SConscript) calling us."""
    frame: FrameType | None = sys._getframe(1)  # cheaper than traceback.extract_stack for every declaration
    while frame is not None:
        name = frame.f_code.co_filename
        if _SCONS in name or name.startswith(_OWN):
            frame = frame.f_back
            continue
        return f"{_relative(name)}:{frame.f_lineno}"
    return "SConstruct"


def fail(message: str, where: str | None = None) -> NoReturn:
    """Print ``scons: *** FILE:LINE: message`` and stop reading SConscripts (exit 2).

    Characters that would break or hide the line (a user's string holding a
    newline or a control character) are written as escapes.
    """
    message = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
    sys.stderr.write(f"scons: *** {where or declared_at()}: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def source_folder(env) -> str:
    """The calling SConscript's folder in the source tree, relative to the top ('' = top)."""
    here = env.Dir(".").srcnode().get_abspath()
    rel = os.path.relpath(here, env.Dir("#").get_abspath()).replace(os.sep, "/")
    return "" if rel == "." else rel

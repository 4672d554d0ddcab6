"""Declaration errors point at the user's SConscript line, in one line.

SCons' own UserError report names the deepest non-SCons frame, which would be
this package; a user needs the SConscript line that made the bad declaration.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

_OWN = (str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "iree_build"))
_SCONS = f"{os.sep}SCons{os.sep}"


def _top() -> str:
    """The SConstruct folder: SCons changes the working folder while reading SConscripts."""
    try:
        import SCons.Node.FS

        return SCons.Node.FS.get_default_fs().Top.get_abspath()
    except Exception:  # outside a SCons run
        return os.getcwd()


def declared_at() -> str:
    """``file:line`` of the innermost user frame (SConstruct/SConscript) calling us."""
    for frame in reversed(traceback.extract_stack()):
        name = frame.filename
        if _SCONS in name or any(name.startswith(p) for p in _OWN):
            continue
        try:
            name = os.path.relpath(name, _top())
        except ValueError:
            pass
        return f"{name}:{frame.lineno}"
    return "SConstruct"


def fail(message: str, where: str | None = None) -> NoReturn:
    """Print ``scons: *** FILE:LINE: message`` and stop reading SConscripts (exit 2)."""
    sys.stderr.write(f"scons: *** {where or declared_at()}: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)

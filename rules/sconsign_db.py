"""SCons' own database (``.sconsign.dblite``) written at the end of a build: a full disk
is one line, not SCons' traceback.

SCons writes it once, after the last action (``SCons.SConsign.write``, called by the
build's closing step), and lets an ``OSError`` there escape as an internal error with
a stack of SCons frames; the database object then tries again, and fails again, while
the interpreter exits. The wrapper below says what happened in one line (exit 2),
stops those retries and removes the half-written temporary file. Nothing is lost that
matters: without the record the next build redoes what it cannot prove up to date.
"""

from __future__ import annotations

import os
import sys


def install() -> None:
    """Wrap ``SCons.SConsign.write`` (once per process: the wrapper marks itself)."""
    import SCons.SConsign

    if getattr(SCons.SConsign.write, "iree_wrapped", False):
        return
    original = SCons.SConsign.write

    def write() -> None:
        try:
            original()
        except OSError as exc:
            databases = list(SCons.SConsign.DB_sync_list)
            _give_up(databases)
            names = [getattr(db, "_file_name", "") for db in databases] + [exc.filename or ".sconsign"]
            name = os.path.relpath(next(n for n in names if n))
            why = exc.strerror or str(exc)
            print(
                f"scons: *** {name}: could not record this build: {why} "
                "(the next build redoes what it cannot prove up to date)",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(2) from None

    write.iree_wrapped = True  # type: ignore[attr-defined]
    SCons.SConsign.write = write


def _give_up(databases: list) -> None:
    """No second attempt at exit (``dblite`` syncs again when collected), no temporary left."""
    for db in databases:
        if hasattr(db, "_needs_sync"):
            db._needs_sync = False
        tmp = getattr(db, "_tmp_name", None)
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass

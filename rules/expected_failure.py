"""Failed import and compile steps, remembered until one of their inputs changes.

A step that fails records why in ``OUTPUT.failed`` (JSON). The note carries a key
of the step's signature and input contents, so an unchanged failing step is not
retried on every build (its output is missing, so SCons asks for it each time):
the build fails again at once with the compiler's first error line, and the
module's tests report that line. A module whose tests are expected to fail
(``xfail``) may fail to build: that is the failure its tests expect, so its step
succeeds with the note, and the compile after a failed import passes the reason on.
A crash, a lost worker or an unreachable cluster is not remembered: it may come
from the machine rather than the source.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from iree_build.testing.manifest import FAILED_BUILD_SUFFIX
from iree_build.util.atomic import atomic_write_text


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _key(request, target) -> str:
    digest = hashlib.sha256(request.signature_text().encode())
    for child in sorted(target[0].children(), key=str):
        digest.update(f"\n{child}={child.get_csig()}".encode())
    return digest.hexdigest()


def run_remembering_failure(
    request, target, run: Callable[[], int | tuple[str, bool]], allowed: bool
) -> int | str:
    """Run the step unless it failed before with the same inputs; a failure becomes the
    note the module's tests report (and, where ``allowed``, no failure of the build)."""
    note = Path(request.output + FAILED_BUILD_SUFFIX)
    upstream = Path(request.source + FAILED_BUILD_SUFFIX)
    key, how = "", "expected to fail: its tests report it"
    if allowed and upstream.is_file() and not Path(request.source).exists():
        message = _read(upstream).get("message", "the step before failed")
    else:
        key = _key(request, target)
        old = _read(note)
        if old.get("key") == key and old.get("message"):
            message = old["message"]
            how = (
                "expected to fail; unchanged since it failed: not retried"
                if allowed
                else "unchanged since it failed: not retried"
            )
        else:
            note.unlink(missing_ok=True)
            outcome = run()
            if outcome == 0:
                return 0
            message, verdict = outcome  # type: ignore[misc]
            if not allowed:
                if verdict:  # the compiler's verdict on these inputs, not a crash or a lost worker
                    atomic_write_text(note, json.dumps({"key": key, "message": message}) + "\n")
                return message
    if not allowed:
        return f"{message} ({how})"
    atomic_write_text(note, json.dumps({"key": key, "message": message}) + "\n")
    sys.stdout.write(f"{message} ({how})\n")
    sys.stdout.flush()
    return 0

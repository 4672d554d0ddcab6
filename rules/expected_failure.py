"""Build steps of a module whose tests are expected to fail (``xfail``).

Such a module may fail to import or compile: that is the failure its tests
expect. The step then records why in ``OUTPUT.failed`` (JSON) instead of failing
the build, the compile after a failed import passes the reason on, and the tests
report it (``iree_build.testing.execute``). The note carries a key of the step's
signature and input contents, so an unchanged failing step is not retried on
every build (its output is missing, so SCons asks for it each time).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable

from iree_build.atomic import atomic_write_text
from iree_build.testing.manifest import FAILED_BUILD_SUFFIX


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


def run_allowing_failure(request, target, run: Callable[[], int | str]) -> int:
    """Run the step; a failure becomes the note the module's tests report."""
    note = Path(request.output + FAILED_BUILD_SUFFIX)
    upstream = Path(request.source + FAILED_BUILD_SUFFIX)
    key, how = "", "expected to fail: its tests report it"
    if upstream.is_file() and not Path(request.source).exists():
        message = _read(upstream).get("message", "the step before failed")
    else:
        key = _key(request, target)
        old = _read(note)
        if old.get("key") == key and old.get("message"):
            message, how = old["message"], "expected to fail; unchanged since it failed: not retried"
        else:
            note.unlink(missing_ok=True)
            outcome = run()
            if outcome == 0:
                return 0
            message = str(outcome)
    atomic_write_text(note, json.dumps({"key": key, "message": message}) + "\n")
    sys.stdout.write(f"{message} ({how})\n")
    sys.stdout.flush()
    return 0


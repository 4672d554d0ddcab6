"""What the installed IREE compiler is and what it can target, without loading it.

Loading the compiler library costs about 0.2 s and a no-op build must not pay
that, so the facts are probed once in a child process and kept in a small JSON
file keyed by the library file's identity (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from iree_build.errors import IreeBuildError
from iree_build.util.atomic import atomic_write_text

_PROBE = (
    "import json, iree.compiler as c, iree.compiler.version as v\n"
    "print(json.dumps({'version': str(v.VERSION),"
    " 'revisions': getattr(v, 'REVISIONS', {}),"
    " 'targets': sorted(c.query_available_targets())}))\n"
)


@dataclass(frozen=True)
class CompilerInfo:
    version: str
    revision: str
    targets: tuple[str, ...]
    library: str

    @property
    def identity(self) -> str:
        """The compiler's part of every module's build signature."""
        return f"iree-base-compiler {self.version} ({self.revision[:12] or 'unknown revision'})"


def _library_path() -> Path:
    spec = importlib.util.find_spec("iree.compiler")
    if spec is None or not spec.submodule_search_locations:
        raise IreeBuildError("the IREE compiler is not installed: pip install iree-base-compiler")
    base = Path(list(spec.submodule_search_locations)[0])
    for name in ("libIREECompiler.so", "libIREECompiler.dylib", "IREECompiler.dll"):
        candidate = base / "_mlir_libs" / name
        if candidate.exists():
            return candidate
    raise IreeBuildError(f"no IREE compiler library under {base / '_mlir_libs'}")


def cache_dir() -> Path:
    root = os.environ.get("IREE_BUILD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "iree_build"
    )
    return Path(root)


@lru_cache(maxsize=1)
def compiler_info() -> CompilerInfo:
    lib = _library_path()
    st = lib.stat()
    key = hashlib.sha256(f"{lib}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    cached = cache_dir() / f"compiler-{key}.json"
    data = None
    try:
        data = json.loads(cached.read_text())
    except (OSError, ValueError):
        pass
    if not isinstance(data, dict) or "targets" not in data:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise IreeBuildError(f"the IREE compiler at {lib} failed to load: {last}")
        data = json.loads(proc.stdout)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cached, json.dumps(data, indent=1))
        except OSError:
            pass  # a read-only home only costs the probe next time
    return CompilerInfo(
        version=str(data.get("version", "")),
        revision=str(data.get("revisions", {}).get("IREE", "")),
        targets=tuple(data["targets"]),
        library=str(lib),
    )

"""What a test's outcome depends on, hashed: its result's signature.

A stored result is reused (by the standalone runner) only while its signature
holds. It is computed where the files are read anyway: in the run worker for a
build's tests (so the build process does not read every input twice), in the
runner's process otherwise. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field

from iree_build.testing.identity import runtime_version
from iree_build.testing.manifest import TestSpec, resolve

SIGNATURE_VERSION = "iree_build.signature/2"  # 2: IREE's own comparison by default


@dataclass
class _Digest:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: str | None = None


class FileHasher:
    """sha256 of file contents, each distinct file hashed once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digests: dict[str, _Digest] = {}

    def digest(self, path: str | os.PathLike[str]) -> str:
        """Hex digest of the file's bytes; raises OSError if unreadable."""
        key = os.path.abspath(path)
        with self._lock:
            entry = self._digests.setdefault(key, _Digest())
        with entry.lock:
            if entry.value is None:
                with open(key, "rb") as fh:
                    entry.value = hashlib.file_digest(fh, "sha256").hexdigest()
            return entry.value


def test_signature(
    spec: TestSpec,
    base_dir: str | os.PathLike[str],
    hasher: FileHasher | None = None,
    device: str = "",
) -> str | None:
    """What the test's outcome depends on, hashed; None if a file is missing.

    Covers the module, input and expected file bytes, function, device, rtol,
    atol, and the runtime version (a runtime upgrade reruns everything).
    """
    hasher = hasher if hasher is not None else FileHasher()
    try:
        doc = {
            "v": SIGNATURE_VERSION,
            "runtime": runtime_version(),
            "module": hasher.digest(resolve(base_dir, spec.module)),
            "inputs": [hasher.digest(resolve(base_dir, p)) for p in spec.inputs],
            "expected": [hasher.digest(resolve(base_dir, p)) for p in spec.expected],
            "parameters": [hasher.digest(resolve(base_dir, p)) for p in spec.parameters],
            "parameter_scope": spec.parameter_scope,
            "arch": spec.arch,
            "kind": spec.kind,
            "xfail": spec.xfail,
            "skip": spec.skip,
            "hardware": device,
            "function": spec.function,
            "device": spec.device,
            "rtol": spec.rtol,
            "atol": spec.atol,
            "compare": spec.compare,
        }
    except OSError:
        return None
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


test_signature.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

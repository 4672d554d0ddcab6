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
from pathlib import Path

from iree_build.testing.identity import runtime_version
from iree_build.testing.manifest import PathEscapeError, TestSpec, contained_path

SIGNATURE_VERSION = "iree_build.signature/2"  # 2: IREE's own comparison by default


@dataclass
class _Digest:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: str | None = None


KEEP_BYTES = 1 << 20
"""Data files up to this size are read once: hashed, and their bytes kept for loading."""


class FileHasher:
    """sha256 of file contents, each distinct file hashed once, and where a manifest path
    leads, checked once (thread-safe): a run's (a build's) files do not change while its
    tests run, so a fresh hasher is made per run."""

    def __init__(self, retain: int = 0) -> None:
        self._lock = threading.Lock()
        self._digests: dict[str, _Digest] = {}
        self._paths: dict[tuple[str, str], str] = {}
        self._plain: set[str] = set()  # paths seen to exist and be no link
        # Up to ``retain`` bytes of the modules :meth:`digest` reads are kept, for the run's
        # tests to load them without reading them each time (a run worker's hasher).
        self._retain = retain
        self._retained: dict[str, bytes] = {}

    def resolve(self, base_dir: str | os.PathLike[str], rel: str) -> Path:
        """:func:`~iree_build.testing.manifest.resolve`, remembered once the whole path
        is seen to exist without a link (one not there yet is checked again next time)."""
        return Path(self.where(base_dir, rel))

    def where(self, base_dir: str | os.PathLike[str], rel: str) -> str:
        """:meth:`resolve` as a string (no ``Path`` made: the worker asks for several
        per test)."""
        key = (os.fspath(base_dir), rel)
        path = self._paths.get(key)
        if path is None:
            path = contained_path(key[0], rel, self._plain)
            if path in self._plain:  # the whole path exists, no link on the way
                self._paths[key] = path
        return path

    def seen(self, path: str | os.PathLike[str]) -> bool:
        """Whether :meth:`where` found this path there, with no link on the way."""
        return os.fspath(path) in self._plain

    def _key(self, path: str | os.PathLike[str]) -> str:
        key = os.fspath(path)
        return key if os.path.isabs(key) else os.path.abspath(key)

    def _entry(self, path: str | os.PathLike[str]) -> tuple[str, _Digest]:
        key = self._key(path)
        entry = self._digests.get(key)
        if entry is None:
            with self._lock:
                entry = self._digests.setdefault(key, _Digest())
        return key, entry

    def digest(self, path: str | os.PathLike[str], retain: bool = False) -> str:
        """Hex digest of the file's bytes; raises OSError if unreadable. ``retain``: its
        bytes are kept for :meth:`retained`, while the hasher's allowance lasts."""
        key, entry = self._entry(path)
        with entry.lock:
            if entry.value is None:
                with open(key, "rb") as fh:
                    if not retain or os.fstat(fh.fileno()).st_size > self._retain:
                        entry.value = hashlib.file_digest(fh, "sha256").hexdigest()
                    else:
                        data = fh.read()
                        entry.value = hashlib.sha256(data).hexdigest()
                        with self._lock:
                            if len(data) <= self._retain:
                                self._retain -= len(data)
                                self._retained[key] = data
            return entry.value

    def retained(self, path: str | os.PathLike[str]) -> bytes | None:
        """The bytes :meth:`digest` read and kept of this file, or None."""
        return self._retained.get(self._key(path)) if self._retained else None

    def digest_keeping(self, path: str | os.PathLike[str], keep: dict[str, bytes]) -> str:
        """:meth:`digest`, and a small file's bytes kept in ``keep`` (by its path's string)
        for the test to load: each file read once. Raises OSError if unreadable."""
        key, entry = self._entry(path)
        with entry.lock:
            fd = os.open(key, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if size > KEEP_BYTES:  # too big to hold: hashed as a stream, loaded later
                    if entry.value is None:
                        with open(fd, "rb", closefd=False) as fh:
                            entry.value = hashlib.file_digest(fh, "sha256").hexdigest()
                    return entry.value
                data = os.read(fd, size + 1)  # a file's read comes short only at its end
                if len(data) != size:  # it changed size since: read on to the end
                    chunks = [data]
                    while chunk := os.read(fd, 1 << 20):
                        chunks.append(chunk)
                    data = b"".join(chunks)
            finally:
                os.close(fd)
            if entry.value is None:
                entry.value = hashlib.sha256(data).hexdigest()
            keep[os.fspath(path)] = data
            return entry.value


def test_signature(
    spec: TestSpec,
    base_dir: str | os.PathLike[str],
    hasher: FileHasher | None = None,
    device: str = "",
    keep: dict[str, bytes] | None = None,
) -> str | None:
    """What the test's outcome depends on, hashed; None if a file is missing or leads
    out of the build folder through a link.

    Covers the module, input and expected file bytes, function, device, rtol,
    atol, and the runtime version (a runtime upgrade reruns everything).
    ``keep``: the small input and expected files' bytes go there, by path, for
    the test to load without reading them again.
    """
    hasher = hasher if hasher is not None else FileHasher()
    where = hasher.where

    def data(rel: str) -> str:
        path = where(base_dir, rel)
        return hasher.digest(path) if keep is None else hasher.digest_keeping(path, keep)

    try:
        doc = {
            "v": SIGNATURE_VERSION,
            "runtime": runtime_version(),
            "module": hasher.digest(where(base_dir, spec.module), retain=True),
            "inputs": [data(p) for p in spec.inputs],
            "expected": [data(p) for p in spec.expected],
            "parameters": [hasher.digest(where(base_dir, p)) for p in spec.parameters],
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
    except (OSError, PathEscapeError):  # the run says which file, in its one line
        return None
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


test_signature.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

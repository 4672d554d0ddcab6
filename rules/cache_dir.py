"""A ``CacheDir`` that checks each entry before it is used.

SCons' own ``CacheDir`` copies an entry into the build tree without looking at
it: a truncated copy (a full disk, a killed ``rsync`` of the shared cache) or a
flipped bit becomes a ``.vmfb`` that SCons then believes up to date. Here every
entry gets a sidecar ``SIG.sha256`` holding the sha256 and size of its bytes,
written *before* the entry itself, so an entry without one was never pushed by
this class. After SCons copies an entry into the build tree, the copy is
hashed and compared; a mismatch (or no sidecar) removes the copy and the bad
entry and reports a miss, so SCons builds the target and pushes a good entry.

Why a digest beside the entry rather than checking the ``.vmfb``'s own
structure: the cache also holds static-library objects and headers, test
results and any other target of the environment, and a FlatBuffer can be cut
at a boundary that still parses. The copy, not the entry, is what is hashed,
so what lands in the build tree is exactly what was verified.

The ``iree`` tool makes it the default ``CACHEDIR_CLASS`` (``env.SetDefault``);
``CacheDir("/shared/cache")`` in an SConstruct is all a project writes.
"""

from __future__ import annotations

import hashlib
import os
import sys

import SCons.Action
import SCons.CacheDir
import SCons.Warnings

from iree_build.util.atomic import atomic_write_text

from .registry import current

SUFFIX = ".sha256"


def content_record(path: str) -> str:
    """``sha256 HEX SIZE``: what the sidecar holds for the file's bytes."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        size = f.tell()
    return f"sha256 {digest} {size}\n"


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class VerifiedCacheDir(SCons.CacheDir.CacheDir):
    """SCons' ``CacheDir`` with a content digest stored beside each entry and checked on use."""

    def push(self, node):
        if self.is_readonly() or not self.is_enabled() or node.nocache:
            return super().push(node)
        cachedir, cachefile = self.cachepath(node)
        if os.path.exists(cachefile):
            return None  # already cached (SCons would skip it too)
        try:
            os.makedirs(cachedir, exist_ok=True)
            atomic_write_text(cachefile + SUFFIX, content_record(node.get_internal_path()))
        except OSError as e:  # like SCons: a cache that cannot be written does not fail the build
            SCons.Warnings.warn(
                SCons.Warnings.CacheWriteErrorWarning,
                f"Unable to record {node} in cache {cachefile}{SUFFIX}: {e}",
            )
            return None
        return super().push(node)

    def retrieve(self, node) -> bool:
        if not super().retrieve(node):
            return False
        _, cachefile = self.cachepath(node)
        if not SCons.Action.execute_actions or os.path.islink(cachefile):
            return True  # -n copies nothing; a symlinked entry is a user's own choice
        target = node.get_internal_path()
        try:
            with open(cachefile + SUFFIX, encoding="ascii") as f:
                expected = f.read(200)
        except (OSError, UnicodeDecodeError):
            expected = ""
        try:
            actual = content_record(target)
        except OSError:
            actual = None
        if expected and actual == expected:
            return True
        self.hits -= 1
        _unlink(target)
        node.clear_memoized_values()
        why = (
            "has no recorded sha256 (written without one, or cut short)"
            if not expected
            else "does not match its recorded sha256 (corrupt or truncated)"
        )
        if not self.is_readonly():  # let the rebuild push a good entry in its place
            _unlink(cachefile)
            _unlink(cachefile + SUFFIX)
            why += "; removed it"
        with current().print_lock:
            sys.stderr.write(
                f"scons: warning: cache entry {os.path.basename(cachefile)} for {target} "
                f"{why}; building {target}\n"
            )
            sys.stderr.flush()
        return False

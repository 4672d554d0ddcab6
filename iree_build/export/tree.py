"""Writing an export folder: generated files, data copies and source links.

Files are written whole (temp + rename) and only when their text changed, so a
second export of unchanged declarations leaves CMake and Bazel nothing to redo.
What the previous export wrote and this one does not is removed (listed in
``iree_export.json``), so a deleted module does not linger as a stale rule.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from iree_build.util.atomic import atomic_write_bytes, atomic_write_text

INDEX_NAME = "iree_export.json"


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == data
    except OSError:
        return False


def write_tree(
    root: str,
    kind: str,
    texts: dict[str, str],
    copies: dict[str, str],
    links: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> list[str]:
    """Write ``texts`` (rel -> text), ``copies`` (rel -> file to copy), ``links``
    (rel -> file to link to); returns the paths that changed."""
    base = Path(root)
    changed = []
    for rel, text in texts.items():
        path = base / rel
        if not _same(path, text.encode()):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            changed.append(rel)
    for rel, src in copies.items():
        path = base / rel
        data = Path(src).read_bytes()
        if os.path.abspath(src) != os.path.abspath(path) and not _same(path, data):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            changed.append(rel)
    for rel, target in (links or {}).items():
        path = base / rel
        if os.path.abspath(target) == os.path.abspath(path):
            continue  # exported into the source tree itself
        if path.is_symlink() and os.readlink(path) == target:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
        changed.append(rel)
    written = sorted([*texts, *copies, *(links or {})])
    _remove_stale(base, written)
    atomic_write_text(
        base / INDEX_NAME,
        json.dumps(
            {"format": "iree_build.export/1", "kind": kind, "files": written, "notes": notes or []}, indent=2
        )
        + "\n",
    )
    return changed


def _remove_stale(base: Path, written: list[str]) -> None:
    try:
        previous = json.loads((base / INDEX_NAME).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return
    keep = set(written)
    for rel in previous:
        if not isinstance(rel, str) or rel in keep or rel.startswith("/") or ".." in rel.split("/"):
            continue  # never remove anything outside the export folder
        path = base / rel
        if path.is_symlink() or path.is_file():
            path.unlink()

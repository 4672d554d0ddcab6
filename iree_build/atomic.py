"""Outputs appear whole or not at all: write beside the target, then rename."""

from __future__ import annotations

import os
from pathlib import Path


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A hidden sibling name unique to this process; same folder, so rename is atomic."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


def remove_stale_temps(path: str | os.PathLike[str]) -> None:
    """Remove temp files a killed build left beside ``path``."""
    p = Path(path)
    try:
        for stale in p.parent.glob(f".{p.name}.tmp-*"):
            stale.unlink(missing_ok=True)
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))

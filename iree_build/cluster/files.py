"""The files a task carries, and the scratch folder a worker unpacks them into.

Workers share no filesystem with the build: every file a compile or test reads
travels with it, under the same path relative to the project's top folder (the
path the compiler embeds in the module), and is unpacked into a fresh scratch
folder that is removed afterwards. No path may leave that folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from iree_build.testing.manifest import check_relative_path

from .config import ClusterError

Payload = dict[str, bytes]  # relative path -> contents


def project_path(top: str | os.PathLike[str], path: str) -> str:
    """``path`` (as the build names it) relative to ``top``; outside it is an error,
    since a worker has only what travels with the task."""
    absolute = Path(path) if os.path.isabs(path) else Path(top) / path
    rel = os.path.relpath(absolute, top).replace(os.sep, "/")
    try:
        return check_relative_path(rel)
    except ValueError:
        raise ClusterError(
            f"{path} lies outside the project folder {top}; a cluster worker "
            "cannot read it (move it into the project, or build without a cluster)"
        ) from None


def pack(top: str | os.PathLike[str], paths: Iterable[str]) -> Payload:
    """Read the files (paths relative to ``top``) for shipping."""
    payload: Payload = {}
    for rel in dict.fromkeys(project_path(top, p) for p in paths):
        try:
            payload[rel] = (Path(top) / rel).read_bytes()
        except IsADirectoryError:
            continue
        except OSError as e:
            raise ClusterError(f"cannot read {rel} to send it to the cluster: {e.strerror}") from None
    return payload


def unpack(folder: Path, payload: Payload) -> None:
    """Write the files under ``folder``, refusing any path that would leave it."""
    for rel, data in payload.items():
        target = folder / check_relative_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def collect(folder: Path, paths: Iterable[str]) -> Payload:
    """Read back outputs that exist (relative to ``folder``)."""
    out: Payload = {}
    for rel in paths:
        path = folder / check_relative_path(rel)
        if path.is_file():
            out[rel] = path.read_bytes()
    return out


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A fresh folder in the Dask worker's local directory, removed afterwards."""
    base = None
    try:
        from distributed import get_worker

        base = get_worker().local_directory
    except (ImportError, ValueError):
        pass  # not inside a worker (called directly): the system temp folder
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def worker_name() -> str:
    """The Dask worker's name and address, for messages ("" outside a worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return ""
    return (
        str(worker.address)
        if str(worker.name) == str(worker.address)
        else f"{worker.name} at {worker.address}"
    )

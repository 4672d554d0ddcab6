"""What the benchmarks share: finding the user's tools, timing, CPU accounting."""

from __future__ import annotations

import compileall
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def compile_bytecode() -> None:
    """Write the project's ``.pyc`` files, as ``pip install`` does for an installed package.

    An editable install leaves that to the first import, which skips it where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on some CI and agent machines): every timed
    process would then compile the rules and the engine from source (~0.1 s each for
    SCons, the fork server and each worker) while the CLI baseline's packages, installed
    by pip, load their bytecode. Timings compare installed code with installed code.
    """
    for folder in ("iree_build", "rules"):
        compileall.compile_dir(str(REPO / folder), quiet=1)
    for package in INSTALLED:
        compile_installed(package)


# What the timed processes import, which a ``pip install --no-compile`` (the device
# machine's recipe for carried wheels) leaves without bytecode.
INSTALLED = ("SCons", "iree", "distributed", "dask", "tornado", "toml", "yaml", "msgpack",
             "cloudpickle", "toolz", "tblib", "zict", "partd", "locket", "psutil", "llvmlite")


def compile_installed(package: str) -> None:
    """Write an installed package's missing ``.pyc`` files, as pip does at install.

    Without them every process that imports the package compiles it from source
    (``PYTHONDONTWRITEBYTECODE`` keeps Python from caching it): on the GPU machine
    ``import distributed`` took 1.4 s so, 0.7 s with its bytecode.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return
    for folder in (spec.submodule_search_locations or []) if spec else []:
        init = Path(folder) / "__init__.py"
        if init.exists() and Path(importlib.util.cache_from_source(str(init))).exists():
            continue  # installed with its bytecode
        try:
            compileall.compile_dir(folder, quiet=2)  # workers=N would re-run this script (forkserver)
        except OSError:  # a read-only installation: time it as it is
            pass


compile_bytecode()


def user_tool(name: str) -> str:
    """``name`` as a user of this venv runs it: its bin folder first, then PATH."""
    venv_bin = str(Path(sys.executable).parent)
    exe = shutil.which(name, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if not exe:
        sys.exit(f"error: no {name} on PATH (pip install iree-base-compiler iree-base-runtime)")
    return exe


def children_cpu() -> float:
    """CPU seconds (user + sys) of all waited-for descendants so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wall(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@contextlib.contextmanager
def workdir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary project folder, removed afterwards unless ``--keep`` asked for it."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        sys.stdout.flush()
        if keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

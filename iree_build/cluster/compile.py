"""Compiles and ONNX imports on cluster workers that offer ``iree-compiler``.

The worker unpacks the source and every file the compile reads into a scratch
copy of the project (same relative paths, so the module's bytes match a local
compile) and compiles there through its own compile worker processes: a
compiler crash fails that module, never the Dask worker. The outputs come back
as bytes and are written into the build tree whole or not at all.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from iree_build.compile.pool import CompileOutcome, CompilePool
from iree_build.compile.request import CompileRequest
from iree_build.onnx.importer import ImportRequest
from iree_build.util.atomic import atomic_write_bytes

from .client import COMPILER_RESOURCE, Connection
from .config import ClusterError
from .files import Payload, collect, pack, project_path, scratch, unpack, worker_name

Request = CompileRequest | ImportRequest

_pool: CompilePool | None = None
_pool_lock = threading.Lock()


def outputs_of(request: Request) -> list[str]:
    """Every file the request writes, relative to the project's top folder."""
    params = getattr(request, "params", None)
    return [request.output, *request.side_outputs, *([params] if params else [])]


def _worker_pool() -> CompilePool:
    """This Dask worker's compile processes, one per worker thread, kept for later tasks.

    What they write besides the task's scratch folder (diagnostics, the cached
    compiler facts) goes into the worker's own local directory too.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            from distributed import get_worker

            worker = get_worker()
            os.environ.setdefault("IREE_BUILD_CACHE_DIR", os.path.join(worker.local_directory, "iree_build"))
            threads = getattr(worker, "nthreads", None) or worker.state.nthreads
            _pool = CompilePool(
                size=int(threads or 1), diag_dir=os.path.join(worker.local_directory, "iree_build_diag")
            )
            atexit.register(_pool.close)
        return _pool


def compile_task(request: Request, payload: Payload) -> dict:
    """Runs on a worker: compile in scratch, return the outputs and diagnostics."""
    from iree_build.compile.compiler_info import compiler_info

    pool = _worker_pool()
    mine = compiler_info().identity
    if mine != request.compiler:  # the compiler is part of the signature: never mix them
        return {
            "ok": False,
            "diagnostics": "",
            "crash": None,
            "outputs": {},
            "message": f"worker {worker_name()} has {mine}, this build uses {request.compiler}",
        }
    with scratch("iree-compile-") as folder:
        unpack(folder, payload)
        outcome = pool.compile(request, cwd=str(folder))
        outputs = collect(folder, outputs_of(request)) if outcome.ok else {}
    crash = f"{outcome.crash} on worker {worker_name()}" if outcome.crash else None
    return {
        "ok": outcome.ok,
        "diagnostics": outcome.diagnostics,
        "crash": crash,
        "message": outcome.message,
        "outputs": outputs,
    }


def compile_on(cluster: Connection, request: Request, inputs: Iterable[str], top: str) -> CompileOutcome:
    """Compile (or import) on the cluster and write the outputs under ``top``.

    ``inputs`` are the files the compile reads besides its source (executable
    objects, files named by flags, external data), as paths relative to ``top``.
    Never raises for a failure; the outcome says what went wrong.
    """
    try:
        outputs = [project_path(top, p) for p in outputs_of(request)]
        payload = pack(top, [request.source, *inputs])
        reply = cluster.run(
            compile_task,
            request,
            payload,
            resource=COMPILER_RESOURCE,
            label=f"{request.doing} {request.source}",
        )
    except ClusterError as e:
        return CompileOutcome(False, "", message=e.message, transient=True)
    ok = bool(reply["ok"])
    if ok:
        main = project_path(top, request.output)
        if main not in reply["outputs"]:
            return CompileOutcome(False, reply["diagnostics"], message=f"the worker returned no {main}")
        for rel in outputs:
            if rel in reply["outputs"]:
                atomic_write_bytes(Path(top) / rel, reply["outputs"][rel])
    return CompileOutcome(ok, reply["diagnostics"], crash=reply["crash"], message=reply["message"])

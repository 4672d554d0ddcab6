"""The SCons action that compiles one module through the shared worker pool.

Its signature is the compile request's text (compiler identity and the expanded
flag list), not Python bytecode: a Python upgrade must not rebuild every module,
and ``--debug=explain`` shows the old and new text so a person can see which
flag, CPU or compiler changed.
"""

from __future__ import annotations

import atexit
import sys
import threading
from pathlib import Path

from SCons.Script import GetOption

from iree_build.compile_pool import CompilePool
from iree_build.compile_request import CompileRequest
from iree_build.compiler_info import compiler_info
from iree_build.diagnostics import first_error
from iree_build.scan import read_flag_file

from . import cluster_backend
from .explicit_action import ExplicitAction

_pool: CompilePool | None = None
_pool_lock = threading.Lock()


def pool() -> CompilePool:
    """The build's compile workers, as many as ``-j`` allows, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = CompilePool(size=int(GetOption("num_jobs") or 1))
            atexit.register(_pool.close)
        return _pool


def request_for(target, source, env) -> CompileRequest:
    """Expand a module's declaration (in its override environment) into a request."""
    flags = [str(f) for f in env["_IREE_TARGET_FLAGS"]]
    for flag in (str(f) for f in env.Flatten(env.get("IREE_COMPILEFLAGS", []))):
        flags += read_flag_file(flag[1:]) if flag.startswith("@") else [flag]
    return CompileRequest(
        source=str(source[0].rfile()),
        output=str(target[0]),
        flags=tuple(flags),
        compiler=compiler_info().identity,
        side_outputs=tuple(str(t) for t in target[1:]),
        cli=bool(env.get("_IREE_NEEDS_CLI")),
    )


def run_request(request, target=None, env=None) -> int | str:
    """Run a compile or import on the cluster (when one is set) or the local pool;
    on failure show the diagnostics, keep no output."""
    outcome = cluster_backend.compile_request(request, target, env) if env is not None else None
    if outcome is None:
        outcome = pool().compile(request)
    if outcome.ok:
        return 0
    for path in (request.output, *request.side_outputs):  # no stale module beside a bad source
        Path(path).unlink(missing_ok=True)
    if outcome.diagnostics:
        sys.stderr.write(outcome.diagnostics + "\n")
        sys.stderr.flush()
    if outcome.crash:
        return (
            f"the IREE compiler crashed ({outcome.crash}) {request.doing} {request.source}; "
            "check the target options (a bad --iree-vulkan-target or CPU name can crash it), "
            f"or run `{request.command_line()}` to reproduce"
        )
    return f"IREE {request.verb} failed: " + (first_error(outcome.diagnostics) or outcome.message or "no diagnostics")


def _run(target, source, env):
    return run_request(request_for(target, source, env), target, env)


def _full_command(target, source, env) -> str:
    return request_for(target, source, env).command_line()


_run.strfunction = _full_command  # shown when $IREE_COMPILECOMSTR is empty (verbose)


COMPILE_ACTION = ExplicitAction(
    _run,
    signature=lambda target, source, env: request_for(target, source, env).signature_text(),
    explain=lambda target, source, env: request_for(target, source, env).explain_text(),
    cmdstr="$IREE_COMPILECOMSTR",
)

"""The SCons action that compiles one module through the shared worker pool.

Its signature is the compile request's text (compiler identity and the expanded
flag list), not Python bytecode: a Python upgrade must not rebuild every module,
and ``--debug=explain`` shows the old and new text so a person can see which
flag, CPU or compiler changed.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

from SCons.Script import GetOption

from iree_build.compile.compiler_info import compiler_info
from iree_build.compile.diagnostics import first_error, first_located_error
from iree_build.compile.plan import CompilePlan
from iree_build.compile.pool import DIAG_DIR, TMP_DIR, CompilePool
from iree_build.compile.request import CompileRequest, abridge

from . import closing_summary, cluster_backend
from .action_text import set_strfunction
from .expected_failure import run_remembering_failure
from .explicit_action import ExplicitAction
from .registry import current


def pool() -> CompilePool:
    """The build's compile workers, as many as ``-j`` allows, started on first use."""
    reg = current()
    with reg.setup_lock:
        if reg.compile_pool is None:
            import SCons.Node.FS

            top = SCons.Node.FS.get_default_fs().Top.get_abspath()
            reg.compile_pool = CompilePool(
                size=int(GetOption("num_jobs") or 1),
                diag_dir=os.path.join(top, DIAG_DIR),
                tmp_dir=os.path.join(top, TMP_DIR),
                cwd=top,
            )  # also when started while an SConscript's folder is current
            atexit.register(reg.compile_pool.close)
        return reg.compile_pool


def prestart(env, reg) -> None:
    """A declared module's output is missing, so this build will compile: start the
    compile workers (one more per such module, up to ``-j``), or the cluster connection,
    now, so that their start-up overlaps the reading of the SConscripts."""
    if any(GetOption(o) for o in ("clean", "help", "no_exec", "question")):
        return
    reg.compiles_expected += 1
    if cluster_backend.configured(env):
        if reg.compiles_expected == 1:
            cluster_backend.prestart(env)
    elif reg.compiles_expected <= int(GetOption("num_jobs") or 1):
        pool().prestart(reg.compiles_expected)


def plan_of(env) -> CompilePlan:
    """The module's compile plan, made when it was declared (``module_rule``)."""
    return env["_IREE_PLAN"]


def request_for(target, source, env, missing_ok: bool = False) -> CompileRequest:
    """The module's plan as a request: its flag files read now (after they are built)."""
    plan = plan_of(env)
    return CompileRequest(
        source=str(source[0].rfile()),
        output=str(target[0]),
        flags=plan.flags(env.Dir("#").get_abspath(), missing_ok=missing_ok),
        compiler=compiler_info().identity,
        side_outputs=tuple(str(t) for t in target[1:]),
        cli=plan.cli,
    )


def run_request(request, show_diagnostics: bool = True, target=None, env=None) -> int | str:
    """Run a compile or import on the cluster (when one is set) or the local pool;
    on failure show the diagnostics, keep no output."""
    outcome = _outcome(request, target, env)
    return 0 if outcome.ok else _failure(request, outcome, show=show_diagnostics)


def _outcome(request, target, env):
    outcome = cluster_backend.compile_request(request, target, env) if env is not None else None
    if outcome is None:
        outcome = pool().compile(request)
    if not outcome.ok:
        for path in (request.output, *request.side_outputs):  # no stale module beside a bad source
            Path(path).unlink(missing_ok=True)
    return outcome


def _judged(request, show: bool, target, env) -> int | tuple[str, bool]:
    """0, or the failure's line and whether it is the compiler's verdict on its inputs
    (diagnostics; not a crash, a lost worker or an unreachable cluster), worth remembering."""
    outcome = _outcome(request, target, env)
    if outcome.ok:
        return 0
    verdict = (
        bool(outcome.diagnostics) and not outcome.crash and not outcome.message and not outcome.transient
    )  # a full disk, an interrupt, a lost cluster: no verdict
    return _failure(request, outcome, show=show), verdict


def run_step(request, target, env) -> int | str:
    """An import or compile action: fails the build, unless its module's tests expect it to."""
    allowed = bool(env.get("_IREE_ALLOW_FAILURE"))
    outcome = run_remembering_failure(
        request, target, lambda: _judged(request, not allowed, target, env), allowed
    )
    if outcome != 0:
        closing_summary.note_failed_step(env, target[0], str(outcome))
    return outcome


def _failure(request, outcome, show: bool) -> str:
    """The one-line reason; the full diagnostics are printed unless the failure is expected."""
    if outcome.diagnostics and show:
        sys.stderr.write(outcome.diagnostics + "\n")
        sys.stderr.flush()
    if outcome.crash:
        return (
            f"the IREE compiler crashed ({outcome.crash}) {request.doing} {request.source}; "
            "check the target options (a bad --iree-vulkan-target or CPU name can crash it), "
            f"or run `{request.command_line()}` to reproduce"
        )
    # The compiler's own located error says more than the library's exception after it
    # ('ValueError: failed to generate bytecode' for an empty module); a full disk's or an
    # interrupt's message (transient) says more than the errors they caused.
    located = None if outcome.transient else first_located_error(outcome.diagnostics)
    why = f"IREE {request.verb} failed: " + (
        located or outcome.message or first_error(outcome.diagnostics) or "no diagnostics"
    )
    return why


def _run(target, source, env):
    return run_step(request_for(target, source, env), target, env)


def _full_command(target, source, env) -> str:
    return request_for(target, source, env).command_line()


set_strfunction(_run, _full_command)  # shown when $IREE_COMPILECOMSTR is empty (verbose)


COMPILE_ACTION = ExplicitAction(
    _run,
    # asked for before a generated flag file exists (scons -n), the signature differs
    signature=lambda target, source, env: request_for(target, source, env, missing_ok=True).signature_text(),
    abridge=abridge,
    cmdstr="$IREE_COMPILECOMSTR",
)

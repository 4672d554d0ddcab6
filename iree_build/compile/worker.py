"""A long-lived compile worker: loads the IREE compiler library once, compiles many.

Protocol: one JSON request per line on stdin, one JSON reply per line on the
original stdout. The compiler's diagnostics go to the file the request names
(fd 2 is pointed at it for the compile), so the parent can show them even when
this process dies mid-compile. A request may name a ``cwd`` to compile in (a cluster
worker's scratch copy of the project). Run as ``python -m iree_build.compile.worker``.
"""

from __future__ import annotations

import json
import os
import sys

from iree_build.util.child_process import worker_setup


def _compile(api, req: dict) -> dict:
    temp_output = req["temp_output"]
    saved_stderr = os.dup(2)
    diag_fd = os.open(req["diagnostics"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(diag_fd, 2)
    os.close(diag_fd)
    ok = False
    message = ""
    for side in req.get("side_outputs", []):  # never keep a previous build's .o beside a new module
        try:
            os.unlink(side)
        except OSError:
            pass
    try:
        if req.get("cli"):
            ok = _compile_with_tool(req, temp_output)
            raise _Done
        with api.Session() as session:
            try:
                _forget_previous_flags(session)
                session.set_flags(*req["flags"])
            except ValueError as e:
                return {"ok": False, "message": f"bad compiler flag: {e}"}
            with api.Invocation(session) as inv, api.Source.open_file(session, req["source"]) as source:
                inv.enable_console_diagnostics()
                if inv.parse_source(source) and inv.execute():
                    # The file exists only while it is written, and is renamed as soon as it is
                    # closed: once kept, LLVM's signal handlers no longer remove it, and the
                    # invocation's and session's teardown (tens of ms for a large module) would
                    # be a window for a killed build's SIGTERM to leave it behind.
                    with api.Output.open_file(temp_output) as output:
                        inv.output_vm_bytecode(output)
                        output.keep()
                    os.replace(temp_output, req["output"])
                    ok = True
    except _Done:
        if ok:
            os.replace(temp_output, req["output"])
    except Exception as e:  # the library reports I/O problems as exceptions
        message = f"{type(e).__name__}: {e}"
        ok = False
    finally:
        sys.stderr.flush()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        if not ok:
            for path in [temp_output, *req.get("side_outputs", [])]:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    return {"ok": ok, "message": message}


_defaults: dict[str, str] = {}  # flag name -> "--name=default", as this process started


def _remember_defaults(api) -> None:
    with api.Session() as fresh:
        _defaults.update((f.split("=", 1)[0], f) for f in fresh.get_flags(non_default_only=False))


def _forget_previous_flags(session) -> None:
    """Put back process-global options an earlier compile set.

    Some options live in the process, not the session (measured in 3.13:
    ``--iree-codegen-tuning-spec-path``): without this, a worker that compiled a
    module with a tuning spec would apply it to every later module it compiles,
    also another project's on a shared cluster worker.
    """
    defaults = set(_defaults.values())
    leaked = [f.split("=", 1)[0] for f in session.get_flags(non_default_only=False) if f not in defaults]
    if leaked:
        session.set_flags(*(_defaults[name] for name in leaked if name in _defaults))


class _Done(Exception):
    """The tool path finished; skip the library path."""


def _compile_with_tool(req: dict, temp_output: str) -> bool:
    """Run the native ``iree-compile`` for what the library API cannot do (vm-c output,
    tool-only flags). Its diagnostics go to our fd 2, i.e. the request's file."""
    import subprocess

    _whole_compiler_package()
    from iree.compiler.tools.binaries import find_tool

    tool = find_tool("iree-compile")
    proc = subprocess.run(
        [tool, *req["flags"], req["source"], "-o", temp_output],
        stdout=subprocess.DEVNULL,
        stderr=2,
        check=False,
    )
    return proc.returncode == 0


def _import_onnx(req: dict) -> dict:
    """Run the compiler package's ONNX importer in this process; outputs appear whole."""
    saved_stderr = os.dup(2)
    diag_fd = os.open(req["diagnostics"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(diag_fd, 2)
    os.close(diag_fd)
    ok, message = False, ""
    try:
        try:
            _whole_compiler_package()
            from iree.compiler.tools.import_onnx import __main__ as importer
        except ImportError as e:
            return {
                "ok": False,
                "message": f"the ONNX importer needs the onnx package ({e}); "
                "pip install 'iree-build-scons[onnx]'",
            }
        if req.get("prepared_model"):  # ir_version raised first (see iree_build.onnx.prepare)
            from iree_build.onnx.prepare import raise_ir_version

            raise_ir_version(req["source"], req["prepared_model"], req["ir_version"])
        importer.main(importer.parse_arguments(req["argv"]))
        if req.get("temp_params"):
            os.replace(req["temp_params"], req["params"])
        os.replace(req["temp_output"], req["output"])
        ok = True
    except SystemExit as e:
        message = f"the ONNX importer stopped (exit {e.code})"
    except Exception as e:  # the importer reports model problems as exceptions
        from iree_build.onnx.importer import import_error_line

        message = import_error_line(e)
    finally:
        sys.stderr.flush()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        prepared = req.get("prepared_model")
        if prepared:
            try:
                os.unlink(prepared)
            except OSError:
                pass
        if not ok:
            for path in (req["temp_output"], req.get("temp_params")):
                if path:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
    return {"ok": ok, "message": message}


_PARTIAL = "_iree_build_partial"  # set on an iree.compiler package whose __init__ has not run


def _compiler_api():
    """``iree.compiler.api`` without running ``iree/compiler/__init__.py`` first.

    That ``__init__`` imports the MLIR Python bindings and numpy, none of which the C API
    uses: 80 ms of each compile worker's start here, several times that on a 16-core
    host where ``-j16`` workers start at once. The package is completed
    (``_whole_compiler_package``) before its tools or the ONNX importer are used; if the
    API cannot be had this way (another IREE release), it is imported as usual.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("iree.compiler")
        if spec is None or spec.loader is None or "iree.compiler" in sys.modules:
            raise ImportError("iree.compiler is already imported, or not a regular package")
        package = importlib.util.module_from_spec(spec)
        setattr(package, _PARTIAL, True)
        sys.modules["iree.compiler"] = package
        from iree.compiler import api

        api.Session  # noqa: B018 - what this worker needs of it
        return api
    except Exception:  # noqa: BLE001 - fall back to the package's own import
        for name in [m for m in sys.modules if m == "iree.compiler" or m.startswith("iree.compiler.")]:
            del sys.modules[name]
        from iree.compiler import api

        return api


def _whole_compiler_package() -> None:
    """Run the ``iree.compiler`` package's own ``__init__`` if ``_compiler_api`` skipped it."""
    package = sys.modules.get("iree.compiler")
    if package is not None and getattr(package, _PARTIAL, False):
        delattr(package, _PARTIAL)
        spec = package.__spec__
        assert spec is not None and spec.loader is not None  # an imported package's
        spec.loader.exec_module(package)


def main() -> int:
    replies = worker_setup()
    api = _compiler_api()

    _remember_defaults(api)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        home = os.getcwd()
        if req.get("cwd"):  # a cluster worker's scratch copy of the project
            os.chdir(req["cwd"])
        try:
            reply = _import_onnx(req) if req.get("kind") == "import_onnx" else _compile(api, req)
        finally:
            os.chdir(home)
        replies.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

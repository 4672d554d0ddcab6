"""A long-lived run worker: holds the runtime and its devices, runs many tests.

Run as ``python -m iree_build.testing.run_worker``. Protocol: one JSON request
per line on stdin; JSON lines back on the original stdout. A request is

- ``{"op": "status", "device": D, "lanes": N}`` -> ``{"present": bool, "reason": str}``
- ``{"op": "devices", "driver": D}`` -> ``{"devices": [{"device_id", "path", "name"}, ..]}``
- ``{"op": "test", "spec": ENTRY, "base_dir": DIR, "signature": S, "functions": [..]|null}``
  -> for a check file ``{"event": "found", "functions": [..]}``, then per case
  ``{"event": "started", "function": F}`` and ``{"event": "finished", "result": R}``;
  always a last ``{"event": "result", "result": R, "written": bool}``. Optional keys:
  ``"hardware": H`` (this worker computes the signature, since it reads the module and
  the data anyway) and ``"result_file": PATH`` (a passed result is written there, for
  the parent to rename into place: ``written``; ``"replaces": FINAL``: the file there
  now is moved to PATH and rewritten, its inode reused). ``"lane": URI, "lanes": N, "model": M``:
  this worker runs its driver's tests on that lane (GPU ``URI``, one worker per lane), and
  the result names the lane, the model and when it ran.
- ``{"op": "tests", "base_dir": DIR, "run": ID, "retest": bool, "passed_only": bool, "items": [{"i": N, "spec": ENTRY,
  "hardware": H, "result_file": PATH, "replaces": FINAL}, ..]}`` -> per item, in order, ``{"event": "result",
  "i": N, "result": R, "cached": bool, "written": bool}``: function calls run back to back
  without a request each; the worker computes each signature, answers a stored result that
  still holds (unless ``retest``) and writes every new result file itself (``written``).
- ``{"op": "invoke", "spec": ENTRY, "module": PATH, "inputs": [..], "outputs": [..],
  "params_dir": DIR}`` -> ``{"ok": bool, "message": str, "count": N}``: a build-time
  call (``iree_run``) whose outputs are written here, whole or not at all.

Everything that can crash (driver start, module load, the call) happens in this
process, so a SIGSEGV ends only this worker; its parent reports it and starts
another. ``faulthandler`` leaves the Python stack on stderr for that report.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from iree_build.testing.results import mark_device_fault
from iree_build.util.atomic import write_in_place
from iree_build.util.child_process import worker_setup

RETAIN_BYTES = 64 << 20
"""A run's module files, up to this much, are kept in memory once hashed (each test's
module is a fresh copy of them)."""


class _Retire(Exception):
    """The device faulted: answer, then end this worker (the pool starts a fresh one)."""


class _Progress:
    """Streams a check file's cases to the parent as they start and finish."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def found(self, functions: list[str]) -> None:
        _send(self._out, {"event": "found", "functions": functions})

    def started(self, function: str) -> None:
        _send(self._out, {"event": "started", "function": function})

    def finished(self, result: Any) -> None:
        faulted = mark_device_fault(result)
        _send(self._out, {"event": "finished", "result": result.to_json()})
        if faulted:
            raise _Retire(result.message)


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _invoke(pool: Any, req: dict[str, Any]) -> dict[str, Any]:
    from iree_build.testing import emulated_run
    from iree_build.testing.emulation import lane_for
    from iree_build.testing.execute import TestError, invoke, load_array
    from iree_build.testing.manifest import spec_from_json
    from iree_build.util.atomic import atomic_write_bytes
    from iree_build.values.arrays import npy_bytes

    spec = spec_from_json(req["spec"])
    _pin(pool, req)
    status = pool.status(spec.device)
    if not status.present:
        return {
            "ok": False,
            "message": f"cannot run {spec.function or 'it'} on {spec.device}: {status.reason}",
        }
    lane, why = lane_for(spec.module, spec.arch, spec.device, spec.emulator)
    if why:
        return {"ok": False, "message": f"cannot run {spec.function or 'it'} on {spec.device}: {why}"}
    try:
        arrays = [load_array(Path(p), f"input {i}") for i, p in enumerate(req["inputs"])]
        if lane is not None:  # another architecture's code, under its emulator
            outputs, _ = emulated_run.call(
                lane, spec, Path(req["module"]), arrays, True, Path(req["params_dir"])
            )
        else:
            outputs, _ = pool.run_on(
                spec.device, invoke, pool, spec, Path(req["module"]), arrays, True, Path(req["params_dir"])
            )
    except TestError as exc:
        return {"ok": False, "message": f"{spec.function or 'its function'} on {spec.device}: {exc}"}
    except emulated_run.EmulatedFault as exc:
        return {"ok": False, "message": f"{spec.function or 'its function'} on {spec.device}: {exc.message}"}
    if len(outputs) != len(req["outputs"]):
        return {"ok": False, "count": len(outputs), "message": ""}
    for path, array in zip(req["outputs"], outputs, strict=True):  # lengths checked above
        atomic_write_bytes(path, npy_bytes(array))
    return {"ok": True, "count": len(outputs), "message": ""}


def _write(path: str, text: str, replaces: str | None = None) -> bool:
    """Write a passed result for the parent to rename onto ``replaces``; False (the parent
    writes it) if this fails. The result it replaces, if any, is moved to ``path`` first
    and rewritten there: creating a file costs more than a small test, rewriting one does
    not. ``path`` holds this test's new result only once this returns True."""
    data = text.encode("utf-8")
    try:
        if replaces:
            try:
                os.rename(replaces, path)
            except FileNotFoundError:
                pass
        try:
            write_in_place(path, data)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            write_in_place(path, data, create=True)
        return True
    except OSError:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return False


def _batch_item(pool: Any, hasher: Any, req: dict[str, Any], item: dict[str, Any], checks: Any = None) -> str:
    """One function call of a batch: its stored result if that still holds, else run it and
    write its result file (whole or not at all). Returns the reply's line, the result
    encoded once for both (the file's indented text, its line breaks dropped, is the same
    JSON on one line)."""
    from iree_build.testing.execute import run_test
    from iree_build.testing.manifest import spec_from_json
    from iree_build.testing.results import indented_json, read_result
    from iree_build.testing.signature import test_signature
    from iree_build.util.atomic import rewrite_bytes

    spec = spec_from_json(item["spec"])
    path = item["result_file"]
    data: dict[str, bytes] = {}  # its small data files, read once: hashed, then loaded
    signature = test_signature(spec, req["base_dir"], hasher, item["hardware"], data) or ""
    if signature and not req.get("retest"):
        stored = read_result(path)
        if stored is not None and stored.status == "passed" and stored.signature == signature:
            return json.dumps(
                {
                    "event": "result",
                    "i": item["i"],
                    "result": stored.to_json(),
                    "cached": True,
                    "written": True,
                }
            )
    result = run_test(spec, req["base_dir"], pool, signature, files=hasher, data=data, checks=checks)
    doc = result.to_json()
    if req.get("passed_only") and result.status != "passed":  # nothing written: the build says why
        return json.dumps(
            {"event": "result", "i": item["i"], "result": doc, "cached": False, "written": False}
        )
    text = indented_json(doc) + "\n"
    if req.get("passed_only"):  # a temporary name, for the build to rename into place
        written = _write(path, text, item.get("replaces"))
    else:
        try:
            rewrite_bytes(path, text.encode("utf-8"))
            written = True
        except OSError:
            written = False  # the parent writes it, or says why it cannot
    return (
        f'{{"event": "result", "i": {json.dumps(item["i"])}, "result": {text.replace(chr(10), "")}, '
        f'"cached": false, "written": {"true" if written else "false"}}}'
    )


def _pin(pool: Any, req: dict[str, Any]) -> None:
    if "lane" in req:
        pool.pin(req["lane"], int(req.get("lanes") or 0))


def _mark_lane(result: Any, req: dict[str, Any], started: float) -> None:
    """Name the lane, its model and when the test held it (a result's record of where it ran)."""
    if "lane" in req:
        result.lane, result.model = req["lane"], req.get("model", "")
        result.started, result.ended = started, time.time()


def main() -> int:
    """``python -m iree_build.testing.run_worker``: the same loop on stdin/stdout."""
    serve_loop(sys.stdin, worker_setup())
    return 0


def serve_loop(inbox: TextIO, replies: TextIO) -> None:
    """Answer requests until ``inbox`` ends (run_zygote forks workers straight into this)."""
    faulthandler.enable()  # a crash prints the Python stack: the parent's "last output"
    from iree_build.testing.check_module import CheckModules
    from iree_build.testing.devices import DevicePool
    from iree_build.testing.execute import run_test
    from iree_build.testing.manifest import spec_from_json
    from iree_build.testing.results import result_json
    from iree_build.testing.signature import FileHasher, test_signature

    pool = DevicePool()
    checks = CheckModules()  # one `check` module per device, in every test's context
    hasher = FileHasher()  # a build's files do not change while its tests run
    run: list[Any] = [None, None]  # a runner's run (its files are as fixed) and its hasher
    _send(replies, {"event": "ready"})
    for line in inbox:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        if op == "status":
            from iree_build.testing.devices import probe_device

            status = probe_device(req["device"], int(req.get("lanes") or 0))
            _send(replies, {"present": status.present, "reason": status.reason})
        elif op == "devices":
            from iree_build.testing.devices import device_infos

            _send(replies, {"devices": device_infos(req["driver"])})
        elif op == "test":
            spec = spec_from_json(req["spec"])
            started = time.time()
            _pin(pool, req)
            signature = req.get("signature") or ""
            if "hardware" in req:
                signature = test_signature(spec, req["base_dir"], hasher, req["hardware"]) or ""
            try:
                result = run_test(
                    spec,
                    req["base_dir"],
                    pool,
                    signature,
                    req.get("functions"),
                    _Progress(replies),
                    checks=checks,
                )
            except _Retire as exc:
                _send(replies, {"event": "retire", "reason": str(exc)})
                return
            faulted = mark_device_fault(result)
            _mark_lane(result, req, started)
            written = bool(req.get("result_file")) and result.status == "passed"
            if written:
                written = _write(req["result_file"], result_json(result), req.get("replaces"))
            _send(replies, {"event": "result", "result": result.to_json(), "written": written})
            if faulted:
                return  # the parent sees the result, then this worker end
        elif op == "tests":
            if req.get("run") != run[0]:  # files may have changed since another run's batch
                run[:] = [req.get("run"), FileHasher(retain=RETAIN_BYTES)]
            for item in req["items"]:
                replies.write(_batch_item(pool, run[1], req, item, checks) + "\n")
                replies.flush()
        elif op == "invoke":
            _send(replies, _invoke(pool, req))
        else:
            _send(replies, {"error": f"unknown request {op!r}"})


if __name__ == "__main__":
    sys.exit(main())

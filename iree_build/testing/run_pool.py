"""Tests run in worker processes that no crash or hang can take down with the run.

A SIGSEGV in a driver or in compiled code, an ``abort()``, a call that never
returns: each ends one worker, never the build or the runner. The test (or the
check case) that was running is reported as ``crashed`` (with the signal and
the worker's last output) or ``timeout``, the worker is replaced, and the rest
of a check file goes on in the new worker.

Workers are started once and reused: CPU tests share "cpu" workers (one per
concurrent caller), and each GPU device has one lane, one worker at a time,
that keeps its device for many tests. One spare worker is kept started (its
imports done), so recovering from a crash costs no interpreter start-up.
This side imports neither ``iree.runtime`` nor numpy.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from iree_build.child_process import death_reason, worker_env
from iree_build.testing.check_verdict import case_name, judge_cases
from iree_build.testing.device_names import canonical_device, is_cpu_device
from iree_build.testing.manifest import TestSpec
from iree_build.testing.results import TestResult, result_from_json

DEFAULT_TIMEOUT_S = 300.0
"""How long one call (one check case) may take unless the test or the run says otherwise:
Bazel's "moderate" size; a hang is found, a slow GPU kernel is not cut short."""


@dataclass(frozen=True)
class DeviceStatus:
    """Whether a device is present, and a one-line reason either way."""

    present: bool
    reason: str


_STARTUP_LIMIT_S = 120.0
"""A worker that has not imported the runtime by then is broken (or the machine is)."""


class _Died(Exception):
    """The worker ended before answering."""


def _lane(device: str) -> str:
    return "cpu" if is_cpu_device(device) else canonical_device(device)


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<fn>\S+)')
_FAULT_NOISE = re.compile(r"^(Fatal Python error|Current thread|Thread 0x|Extension modules:|"
                          r"\s*File |\s*$|<no Python frame>)")


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iree-run-spawner")
"""Every worker is started from this one long-lived thread: Linux ends a worker when the
*thread* that started it ends (PR_SET_PDEATHSIG), and callers' threads come and go."""


def _start_worker_process() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "iree_build.testing.run_worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=worker_env(), text=True, bufsize=1, close_fds=True,
    )


class _Worker:
    """One ``python -m iree_build.testing.run_worker`` process and its two pipes."""

    def __init__(self) -> None:
        self.proc = _SPAWNER.submit(_start_worker_process).result()
        self._replies: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._tail: collections.deque[str] = collections.deque(maxlen=80)
        self._ready = False
        threading.Thread(target=self._read_replies, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                self._tail.append(line.rstrip())
        self._replies.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._tail.append(line.rstrip())

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        """Send one request once the worker is ready; raises _Died if it is gone.

        Waiting for readiness (its imports) first keeps start-up out of a test's timeout.
        """
        if not self._ready:
            try:
                reply = self.receive(_STARTUP_LIMIT_S)
            except TimeoutError:
                self.kill()
                raise _Died from None
            if reply.get("event") != "ready":
                raise _Died
            self._ready = True
        self._tail.clear()  # what it prints from now on belongs to this request
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _Died from None

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next reply; raises TimeoutError after ``timeout`` s, _Died if the worker ended."""
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if reply is None:
            self._replies.put(None)  # stays ended for any later read
            raise _Died
        return reply

    def death(self) -> str:
        try:
            return death_reason(self.proc.wait(timeout=10))
        except subprocess.TimeoutExpired:
            self.kill()
            return "closed its output and hung"

    def last_output(self) -> tuple[str, str]:
        """(the last line it printed itself, where its Python code was) after a crash."""
        lines = list(self._tail)
        said = [ln.strip() for ln in lines if not _FAULT_NOISE.match(ln)]
        frames = [m for m in map(_FRAME.match, lines) if m]
        where = ""
        if frames:  # faulthandler lists the innermost frame first
            m = frames[0]
            where = f"{os.path.basename(m['file'])}:{m['line']} in {m['fn']}"
        return (said[-1][:200] if said else ""), where

    def details(self) -> str:
        return "\n".join(self._tail)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self, timeout: float = 2.0) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class RunPool:
    """Run workers shared by a build's (or a runner's) threads. Thread-safe."""

    def __init__(self, keep_spare: bool = True) -> None:
        self._keep_spare = keep_spare
        self._lock = threading.Lock()
        self._idle: dict[str, list[_Worker]] = {}
        self._spare: _Worker | None = None
        self._lanes: dict[str, threading.Lock] = {}
        self._status: dict[str, DeviceStatus] = {}
        self._status_lock = threading.Lock()
        self._closed = False

    # -- workers -------------------------------------------------------------------------
    def _take(self, lane: str) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run pool is closed")
            idle = self._idle.setdefault(lane, [])
            while idle:
                worker = idle.pop()
                if worker.alive:
                    return worker
                worker.close()
            worker = self._spare if self._spare is not None and self._spare.alive else None
            self._spare = _Worker() if self._keep_spare else None
        return worker or _Worker()

    def _give(self, lane: str, worker: _Worker) -> None:
        with self._lock:
            if not self._closed and worker.alive:
                self._idle.setdefault(lane, []).append(worker)
                return
        worker.close()

    def _lane_lock(self, lane: str) -> threading.Lock | None:
        """GPU lanes run one test at a time (the device is thread- and process-bound)."""
        if lane == "cpu":
            return None
        with self._lock:
            return self._lanes.setdefault(lane, threading.Lock())

    # -- device presence -----------------------------------------------------------------
    def status(self, device: str) -> DeviceStatus:
        """Whether ``device`` is present, asked once per run of a worker (a probe may crash)."""
        with self._status_lock:
            known = self._status.get(device)
            if known is not None:
                return known
            lane = _lane(device)
            worker = self._take(lane)
            try:
                worker.send({"op": "status", "device": device})
                reply = worker.receive(DEFAULT_TIMEOUT_S)
                known = DeviceStatus(bool(reply["present"]), str(reply["reason"]))
                self._give(lane, worker)
            except (_Died, TimeoutError) as exc:
                what = "hung" if isinstance(exc, TimeoutError) else worker.death()
                worker.kill()
                said, _ = worker.last_output()
                known = DeviceStatus(False, f"{device}: probing its driver {what}"
                                            f"{'; last output: ' + said if said else ''}")
            self._status[device] = known
            return known

    # -- tests ---------------------------------------------------------------------------
    def run_test(self, spec: TestSpec, base_dir: str | os.PathLike[str], signature: str = "",
                 timeout: float | None = None) -> TestResult:
        """Run one test in a worker; a crash or a hang becomes its result, never an exception.

        ``timeout`` (seconds per call or check case) overrides the test's own.
        """
        limit = timeout or spec.timeout or DEFAULT_TIMEOUT_S
        lane = _lane(spec.device)
        guard = self._lane_lock(lane)
        if guard is not None:
            guard.acquire()
        try:
            if spec.kind == "check":
                return self._run_check(spec, str(base_dir), signature, limit, lane)
            return self._run_call(spec, str(base_dir), signature, limit, lane)
        finally:
            if guard is not None:
                guard.release()

    def _request(self, spec: TestSpec, base_dir: str, signature: str,
                 functions: list[str] | None = None) -> dict[str, Any]:
        return {"op": "test", "spec": spec.to_json(), "base_dir": base_dir,
                "signature": signature, "functions": functions}

    def _run_call(self, spec: TestSpec, base_dir: str, signature: str, limit: float,
                  lane: str) -> TestResult:
        worker = self._take(lane)
        try:
            worker.send(self._request(spec, base_dir, signature))
            reply = worker.receive(limit)
        except (_Died, TimeoutError) as exc:
            doing = f"calling {spec.function or 'its function'} on {spec.device}"
            return _lost(worker, exc, spec.name, spec, signature, doing, limit)
        self._give(lane, worker)
        return result_from_json(reply["result"])

    def _run_check(self, spec: TestSpec, base_dir: str, signature: str, limit: float,
                   lane: str) -> TestResult:
        """Every case of a check file; a case that crashes or hangs is that case's result,
        and the cases after it run in a fresh worker."""
        cases: list[TestResult] = []
        remaining: list[str] | None = None  # None: all of them, not yet known
        while True:
            worker = self._take(lane)
            current: str | None = None
            try:
                worker.send(self._request(spec, base_dir, signature, remaining))
                while True:
                    reply = worker.receive(limit)
                    event = reply.get("event")
                    if event == "found":
                        remaining = list(reply["functions"])
                    elif event == "started":
                        current = reply["function"]
                    elif event == "finished":
                        cases.append(result_from_json(reply["result"]))
                        if current in (remaining or []):
                            remaining.remove(current)  # type: ignore[union-attr]
                        current = None
                    elif event == "result":
                        self._give(lane, worker)
                        whole = result_from_json(reply["result"])
                        if not cases:  # skipped, or never got to its cases
                            return whole
                        return judge_cases(spec, cases, signature)
            except (_Died, TimeoutError) as exc:
                if current is None:  # lost while loading the file or starting the device
                    lost = _lost(worker, exc, spec.name, spec, signature,
                                 f"loading {spec.module} on {spec.device}", limit)
                    if not cases:
                        return lost
                    cases.append(lost)
                    return judge_cases(spec, cases, signature)
                name = case_name(spec.base, current, spec.device)
                cases.append(_lost(worker, exc, name, spec, signature,
                                   f"running {current} on {spec.device}", limit))
                remaining = [f for f in (remaining or []) if f != current]
                if not remaining:
                    return judge_cases(spec, cases, signature)

    # -- build-time calls (iree_run) -----------------------------------------------------
    def invoke(self, spec: TestSpec, module: str, inputs: Sequence[str], outputs: Sequence[str],
               params_dir: str, timeout: float | None = None) -> dict[str, Any]:
        """Call a function and write its outputs as ``.npy`` (in a worker); returns
        ``{"ok", "message", "count"}``, a crash or hang being a message."""
        lane = _lane(spec.device)
        guard = self._lane_lock(lane)
        if guard is not None:
            guard.acquire()
        try:
            worker = self._take(lane)
            limit = timeout or DEFAULT_TIMEOUT_S
            try:
                worker.send({"op": "invoke", "spec": spec.to_json(), "module": module,
                             "inputs": list(inputs), "outputs": list(outputs),
                             "params_dir": params_dir})
                reply = worker.receive(limit)
            except (_Died, TimeoutError) as exc:
                lost = _lost(worker, exc, spec.name, spec, "",
                             f"calling {spec.function or 'its function'} on {spec.device}", limit)
                return {"ok": False, "message": lost.message, "count": 0}
            self._give(lane, worker)
            return reply
        finally:
            if guard is not None:
                guard.release()

    def close(self) -> None:
        """Stop every worker (idle ones and the spare); busy ones end with their callers."""
        with self._lock:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            if self._spare is not None:
                workers.append(self._spare)
            self._idle, self._spare = {}, None
        for worker in workers:
            worker.close()


def _lost(worker: _Worker, exc: BaseException, name: str, spec: TestSpec, signature: str,
          doing: str, limit: float) -> TestResult:
    """The result of a test or case whose worker crashed or hung (which is then ended)."""
    if isinstance(exc, TimeoutError):
        worker.kill()
        status, why = "timeout", f"no answer after {limit:g} s while {doing}; worker stopped"
    else:
        status, why = "crashed", f"{worker.death()} while {doing}"
    said, where = worker.last_output()
    if said:
        why += f"; last output: {said}"
    if where:
        why += f"; in {where}"
    return TestResult(name=name, status=status, message=f"{name}: {why}", device=spec.device,
                      signature=signature, base=spec.base, details=worker.details())


_DEFAULT: RunPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_run_pool() -> RunPool:
    """The process-wide pool (SCons' job threads and the runner share it); closed at exit."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = RunPool()
            atexit.register(_DEFAULT.close)
        return _DEFAULT

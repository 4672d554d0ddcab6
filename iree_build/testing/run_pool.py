"""Tests run in worker processes that no crash or hang can take down with the run.

A SIGSEGV in a driver or in compiled code, an ``abort()``, a call that never
returns: each ends one worker, never the build or the runner. The test (or the
check case) that was running is reported as ``crashed`` (with the signal and
the worker's last output) or ``timeout``, the worker is replaced, and the rest
of a check file goes on in the new worker.

Workers are started once and reused: CPU tests share "cpu" workers (one per
concurrent caller), and each GPU has one lane (``cuda://0``, ``cuda://1``, ...), one
worker at a time, that keeps its device for many tests: a test declared on ``cuda``
takes whichever lane of its driver is free, so a host's GPUs run tests side by side,
each one test at a time. A lost worker is replaced on its own lane only. One spare
worker is kept started (its imports done), so recovering from a crash costs no
interpreter start-up.
This side imports neither ``iree.runtime`` nor numpy.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iree_build.testing import run_zygote
from iree_build.testing.check_verdict import case_name, expect_failure, judge_cases
from iree_build.testing.device_names import canonical_device, driver_name, is_cpu_device, lane_index, lane_uri
from iree_build.testing.manifest import TestSpec
from iree_build.testing.results import TestResult, result_from_json, write_result
from iree_build.util.child_process import death_reason, start_worker, worker_env

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


_PROBE = "probe"
"""The idle workers that answered device questions (they hold no device)."""


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<fn>\S+)')
_FAULT_NOISE = re.compile(
    r"^(Fatal Python error|Current thread|Thread 0x|Extension modules:|"
    r"\s*File |\s*$|<no Python frame>)"
)


class _Exit:
    """How one forked worker ended: set once the fork server has reaped it."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.done = threading.Event()


class _Forked:
    """A fork server this process forked itself: what the pool asks of a ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: gone all the same
                self.returncode = 0
                return 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.001)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


class _Zygote:
    """The fork server (:mod:`run_zygote`) of this process: started on first use.

    Only live workers are known by PID: a worker's exit, once reported, goes to that
    worker's own record and its PID is forgotten, so a later worker given the same PID
    (PIDs are reused) is never taken for the dead one.
    """

    def __init__(self) -> None:
        early, run_zygote.EARLY = run_zygote.EARLY, None
        self.proc: subprocess.Popen | _Forked
        if early is not None:  # forked by this command at its start (run_zygote.fork_server)
            self._sock, pid = early
            self.proc = _Forked(pid)
        else:
            ours, theirs = socket.socketpair()
            self._sock = ours
            self.proc = start_worker(
                [sys.executable, "-m", "iree_build.testing.run_zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=worker_env(),
                stdin=subprocess.DEVNULL,
            )
            theirs.close()
        self._lock = threading.Lock()  # one fork request at a time
        self._forks: queue.SimpleQueue[tuple[dict[str, Any], list[int], _Exit] | None] = queue.SimpleQueue()
        self._live: dict[int, _Exit] = {}  # PID -> its exit, for the workers not yet reaped
        self._exited = threading.Lock()
        self._gone = False
        self._ready = threading.Event()  # its imports are done: it reads the socket
        self._reader = threading.Thread(target=self._read, daemon=True, name="iree-run-zygote")
        self._reader.start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, 4096, 3)
            except OSError:
                data, fds = b"", []
            if not data:
                break
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                message = json.loads(line)
                if "pid" in message:
                    # Registered here, in the order the server reports: an earlier worker's
                    # exit under this PID has been read already.
                    record = _Exit()
                    with self._exited:
                        self._live[int(message["pid"])] = record
                    self._forks.put((message, fds, record))
                    fds = []
                elif "exit" in message:
                    with self._exited:
                        gone = self._live.pop(int(message["exit"]), None)
                    if gone is not None:
                        gone.code = int(message["code"])
                        gone.done.set()
                elif "ready" in message:
                    self._ready.set()
        with self._exited:
            self._gone = True
            records, self._live = list(self._live.values()), {}
        for record in records:
            record.done.set()
        self._forks.put(None)

    def fork(self) -> tuple[int, list[int], _Exit]:
        """A new worker's PID, its (requests, replies, stderr) pipe ends and its exit record."""
        with self._lock:
            try:
                self._sock.sendall(b"fork\n")
            except OSError:
                raise _Died from None
            got = self._forks.get(timeout=_STARTUP_LIMIT_S)
        if got is None:
            raise _Died
        message, fds, record = got
        return int(message["pid"]), fds, record

    @property
    def gone(self) -> bool:
        return self._gone

    def begin_close(self) -> bool:
        """Tell a ready server to end its workers and itself (the end of its input), without
        waiting: the caller writes its reports meanwhile. False: it was not ready."""
        if not self._ready.is_set() or self.proc.poll() is not None:
            return False
        try:
            self._sock.shutdown(socket.SHUT_WR)  # it kills and reaps its workers, then leaves
        except OSError:
            pass
        return True

    def close(self, timeout: float = 2.0) -> None:
        """End the server and its workers, and wait for them: no process of the build
        outlives it. One still importing is killed (it has nothing to finish)."""
        if self.begin_close():
            self._reader.join(timeout)  # its end of the socket closes as it exits: no polling
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()  # its workers get SIGTERM (PR_SET_PDEATHSIG)
            self.proc.wait()
        self._sock.close()


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()
_CLOSING: list[_Zygote] = []  # servers told to end (release_workers), waited for at exit


def _zygote() -> _Zygote:
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or _ZYGOTE.proc.poll() is not None:
            _ZYGOTE = _Zygote()
        return _ZYGOTE


class _Worker:
    """One run worker (forked by the zygote) and its three pipes."""

    def __init__(self) -> None:
        self._zygote = _zygote()
        self.pid, (req_w, rep_r, err_r), self._exit = self._zygote.fork()
        self._inbox = os.fdopen(req_w, "w", buffering=1)
        self._replies_fd = rep_r  # read by the caller itself (no thread to hand each reply over)
        self._poll = select.poll()
        self._poll.register(rep_r, select.POLLIN)
        self._pending = b""
        self._ended = False  # its reply pipe reached its end
        self._errors = os.fdopen(err_r, "r", errors="replace")
        self._tail: collections.deque[str] = collections.deque(maxlen=80)
        self._ready = False
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        for line in self._errors:
            self._tail.append(line.rstrip())

    @property
    def alive(self) -> bool:
        return not self._exit.done.is_set() and not self._zygote.gone

    def exit_code(self, timeout: float) -> int | None:
        """Its exit code once the fork server has reaped it (None: not within ``timeout``)."""
        self._exit.done.wait(timeout)
        return self._exit.code

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
            self._inbox.write(json.dumps(message) + "\n")
            self._inbox.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _Died from None

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next reply; raises TimeoutError after ``timeout`` s, _Died if the worker ended.

        Read by the one thread that holds this worker: a batch's replies come in a few
        reads, and none waits for another thread to be scheduled."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                try:
                    reply = json.loads(line)
                except ValueError:
                    reply = None
                if isinstance(reply, dict):
                    return reply
                self._tail.append(line.decode("utf-8", "replace").rstrip())  # not the protocol's
            if self._ended:
                raise _Died
            left = deadline - time.monotonic()
            if left <= 0 or not self._poll.poll(min(left, 1e6) * 1000.0):
                raise TimeoutError
            try:
                chunk = os.read(self._replies_fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._ended = True
                self._close_replies()
            self._pending += chunk

    def _close_replies(self) -> None:
        if self._replies_fd >= 0:
            os.close(self._replies_fd)
            self._replies_fd = -1

    def death(self) -> str:
        code = self.exit_code(timeout=10)
        if code is None:
            self.kill()
            return "closed its output and hung"
        return death_reason(code)

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
        if not self._exit.done.is_set():  # once reaped, its PID may be another process'
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        self.exit_code(timeout=10)
        self._close_pipes()

    def end_input(self) -> None:
        """Tell a ready worker to finish (its loop ends with its input); see :meth:`close`."""
        if self._ready:
            self._close_pipes()

    def _close_pipes(self) -> None:
        try:
            self._inbox.close()
        except OSError:
            pass
        if self._exit.done.is_set():  # gone: nothing more to read (a live one may still answer)
            self._ended = True
            self._close_replies()

    def close(self, timeout: float = 2.0) -> None:
        if not self._ready:  # never used: nothing to finish, don't wait for its imports
            self.kill()
            return
        self._close_pipes()  # end of its input: the worker's loop ends and it exits
        if self.exit_code(timeout) is None:
            self.kill()
        self._close_replies()


class RunPool:
    """Run workers shared by a build's (or a runner's) threads. Thread-safe."""

    def __init__(self, keep_spare: bool = True) -> None:
        self._keep_spare = keep_spare
        self._lock = threading.Lock()
        self._idle: dict[str, list[_Worker]] = {}
        self._spare: _Worker | None = None
        self._lane_counts: dict[str, int] = {}  # driver -> lanes asked for (--device-lanes)
        self._only: dict[str, set[int]] = {}  # driver -> the lanes a run is limited to (cuda://1)
        self._infos: dict[str, list[dict[str, Any]]] = {}  # driver -> its devices, as listed
        self._lane_sets: dict[str, list[str]] = {}  # device -> its lanes
        self._busy: set[str] = set()  # lanes running a test now
        self._free = threading.Condition(self._lock)  # a lane was given back
        self._status: dict[str, DeviceStatus] = {}
        self._probing: dict[str, threading.Lock] = {}  # device -> held while it is probed
        self._refilling = False  # a thread is forking the next spare
        self._closed = False
        self._crashed_at: dict[str, float] = {}  # lane -> when its last worker was lost
        self.workers_of: dict[str, list[int]] = {}
        """Per lane, the PIDs of the workers it was given, in order: a lane whose worker was
        lost has one more; the other lanes keep theirs."""
        self.recoveries_ms: list[float] = []
        """Per lost worker: ms from noticing the loss to the next test's request being in a
        ready worker (what ``benchmarks/test_runner.py`` reports as crash recovery)."""

    # -- workers -------------------------------------------------------------------------
    def _take(self, lane: str) -> _Worker:
        """An idle worker of ``lane``, else the spare, else a new one. Forking (a request to
        the fork server, which may be slow or stuck) never happens under the pool's lock:
        other threads keep giving back and taking workers meanwhile."""
        dead: list[_Worker] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the run pool is closed")
            idle = self._idle.setdefault(lane, [])
            worker = None
            reused = False
            while idle and worker is None:
                candidate = idle.pop()
                if candidate.alive:
                    worker = candidate
                    reused = True
                else:
                    dead.append(candidate)
            if worker is None:
                spare, self._spare = self._spare, None
                if spare is not None and spare.alive:
                    worker = spare
                elif spare is not None:
                    dead.append(spare)
                refill = self._keep_spare and not self._refilling
                self._refilling = self._refilling or refill
            else:
                refill = False
        for gone in dead:
            gone.close()
        if refill:  # the next spare, forked beside this caller's test
            threading.Thread(target=self._refill, daemon=True, name="iree-run-spare").start()
        if worker is None:
            worker = _Worker()
        if not reused:  # new to this lane
            with self._lock:
                self.workers_of.setdefault(lane, []).append(worker.pid)
        return worker

    def _refill(self) -> None:
        try:
            spare: _Worker | None = _Worker()
        except (_Died, OSError):
            spare = None
        with self._lock:
            self._refilling = False
            if not self._closed and self._spare is None and spare is not None:
                self._spare, spare = spare, None
        if spare is not None:  # closed meanwhile, or another spare came first
            spare.close()

    def prestart(self) -> None:
        """Start the fork server now, without waiting for it: its imports overlap the
        caller's own work (SCons reading SConscripts, the runner hashing files), and the
        first test's worker is then a fork away."""
        with self._lock:
            if not self._closed:
                _zygote()

    def _give(self, lane: str, worker: _Worker) -> None:
        with self._lock:
            if not self._closed and worker.alive:
                self._idle.setdefault(lane, []).append(worker)
                return
        worker.close()

    # -- lanes ---------------------------------------------------------------------------
    def configure_lanes(self, counts: dict[str, int] | None = None, only: Sequence[str] = ()) -> None:
        """How GPU tests spread: ``counts`` gives a driver that many lanes instead of one per
        device (lane k uses device k modulo their count: ``vulkan:2`` on a host of one
        GPU runs two device instances); ``only`` (lane URIs such as ``cuda://1``) limits a
        driver's tests to those lanes. Call before the run's first test."""
        with self._lock:
            self._lane_counts = dict(counts or {})
            self._only = {}
            for device in only:
                index = lane_index(device)
                if index is not None:
                    self._only.setdefault(driver_name(device), set()).add(index)
            self._lane_sets = {}

    def lanes(self, device: str) -> list[str]:
        """The lanes tests declared on ``device`` run on: ``["cpu"]`` for host devices, the
        URI itself for one GPU named by URI, else ``driver://k`` for each of the driver's
        devices (as listed by a worker; ``--device-lanes`` and ``--devices driver://k``
        choose otherwise), or the device name alone where the driver lists none."""
        if is_cpu_device(device):
            return ["cpu"]
        key = canonical_device(device)
        with self._lock:
            known = self._lane_sets.get(key)
        if known is not None:
            return known
        if "://" in key:
            lanes = [key]
        else:
            drv = driver_name(key)
            infos = self.device_infos(drv)
            with self._lock:
                only = self._only.get(drv)
                count = self._lane_counts.get(drv) or len(infos)
            indices = sorted(only) if only else list(range(count))
            lanes = [lane_uri(drv, k) for k in indices] if infos or only else [key]
        with self._lock:
            return self._lane_sets.setdefault(key, lanes)

    def lane_model(self, lane: str) -> str:
        """The model of the device lane ``driver://k`` runs on, as its driver names it."""
        index = lane_index(lane)
        infos = self._infos.get(driver_name(lane)) or []
        if index is None or not infos:
            return ""
        return str(infos[index % len(infos)].get("name") or "")

    def device_infos(self, driver: str) -> list[dict[str, Any]]:
        """A GPU driver's devices as the runtime lists them (asked of a worker once; a
        driver that crashes or hangs the query lists none)."""
        drv = driver_name(driver)
        with self._lock:
            probing = self._probing.setdefault("devices:" + drv, threading.Lock())
        with probing:
            known = self._infos.get(drv)
            if known is not None:
                return known
            worker = self._take(_PROBE)
            try:
                worker.send({"op": "devices", "driver": drv})
                infos = [
                    d for d in worker.receive(DEFAULT_TIMEOUT_S).get("devices", []) if isinstance(d, dict)
                ]
                self._give(_PROBE, worker)
            except (_Died, TimeoutError):
                worker.kill()
                infos = []
            self._infos[drv] = infos
            return infos

    def _hold(self, device: str) -> str:
        """A free lane of ``device`` (waiting for one), held until :meth:`_release`; CPU
        devices share the one "cpu" lane, never held."""
        lanes = self.lanes(device)
        if lanes == ["cpu"]:
            return "cpu"
        with self._free:
            while True:
                for lane in lanes:
                    if lane not in self._busy:
                        self._busy.add(lane)
                        return lane
                self._free.wait()

    def _release(self, lane: str) -> None:
        if lane == "cpu":
            return
        with self._free:
            self._busy.discard(lane)
            self._free.notify_all()

    def _lane_request(self, lane: str) -> dict[str, Any]:
        """What a test request adds for a GPU lane: the worker runs its device there."""
        if "://" not in lane:
            return {}
        with self._lock:
            lanes = self._lane_counts.get(driver_name(lane), 0)
        return {"lane": lane, "lanes": lanes, "model": self.lane_model(lane)}

    # -- device presence -----------------------------------------------------------------
    def status(self, device: str) -> DeviceStatus:
        """Whether ``device`` is present, asked once per run of a worker (a probe may crash).

        One probe per device at a time, each under its own lock: a driver that hangs for
        the probe's whole timeout delays only the callers asking about that device."""
        with self._lock:
            probing = self._probing.setdefault(device, threading.Lock())
        with probing:
            known = self._status.get(device)
            if known is not None:
                return known
            lane = "cpu" if is_cpu_device(device) else _PROBE
            worker = self._take(lane)
            try:
                with self._lock:
                    lanes = self._lane_counts.get(driver_name(device), 0)
                worker.send({"op": "status", "device": device, "lanes": lanes})
                reply = worker.receive(DEFAULT_TIMEOUT_S)
                known = DeviceStatus(bool(reply["present"]), str(reply["reason"]))
                self._give(lane, worker)
            except (_Died, TimeoutError) as exc:
                what = "hung" if isinstance(exc, TimeoutError) else worker.death()
                worker.kill()
                said, _ = worker.last_output()
                known = DeviceStatus(
                    False, f"{device}: probing its driver {what}{'; last output: ' + said if said else ''}"
                )
            self._status[device] = known
            return known

    # -- tests ---------------------------------------------------------------------------
    def run_test(
        self,
        spec: TestSpec,
        base_dir: str | os.PathLike[str],
        signature: str = "",
        timeout: float | None = None,
        *,
        hardware: str | None = None,
        result_file: str | None = None,
        replaces: str | None = None,
    ) -> TestResult:
        """Run one test in a worker; a crash or a hang becomes its result, never an exception.

        ``timeout`` (seconds per call or check case) overrides the test's own. For a
        function call (not a check file), ``hardware`` has the worker compute the
        signature (it reads the module and the data anyway), and ``result_file`` has it
        write a passed result there (the caller renames it into place, onto ``replaces``,
        whose inode the worker reuses): work taken off the caller's process, whose one
        interpreter lock SCons' own bookkeeping needs.
        """
        limit = timeout or spec.timeout or DEFAULT_TIMEOUT_S
        lane = self._hold(spec.device)
        started = time.time()
        try:
            if spec.kind == "check":
                result = self._run_check(spec, str(base_dir), signature, limit, lane)
            else:
                extra: dict[str, Any] = {
                    k: v
                    for k, v in (("hardware", hardware), ("result_file", result_file), ("replaces", replaces))
                    if v is not None
                }
                result = self._run_call(spec, str(base_dir), signature, limit, lane, extra)
        finally:
            self._release(lane)
        if "://" in lane and not result.lane:  # judged here (a check file), or lost
            result.lane, result.model = lane, self.lane_model(lane)
            result.started, result.ended = started, time.time()
        return result

    def _send(self, lane: str, worker: _Worker, message: dict[str, Any]) -> None:
        worker.send(message)
        lost = self._crashed_at.pop(lane, None)
        if lost is not None:
            self.recoveries_ms.append((time.perf_counter() - lost) * 1000.0)

    def _lost_worker(self, lane: str) -> None:
        self._crashed_at[lane] = time.perf_counter()

    def _request(
        self, spec: TestSpec, base_dir: str, signature: str, functions: list[str] | None = None
    ) -> dict[str, Any]:
        return {
            "op": "test",
            "spec": spec.to_json(),
            "base_dir": base_dir,
            "signature": signature,
            "functions": functions,
        }

    def _run_call(
        self, spec: TestSpec, base_dir: str, signature: str, limit: float, lane: str, extra: dict[str, Any]
    ) -> TestResult:
        worker = self._take(lane)
        try:
            self._send(
                lane,
                worker,
                {**self._request(spec, base_dir, signature), **extra, **self._lane_request(lane)},
            )
            reply = worker.receive(limit)
        except (_Died, TimeoutError) as exc:
            self._lost_worker(lane)
            doing = f"calling {spec.function or 'its function'} on {spec.device}"
            return expect_failure(spec, _lost(worker, exc, spec.name, spec, signature, doing, limit))
        result = result_from_json(reply["result"])
        if "result_file" in extra and not reply.get("written"):
            Path(extra["result_file"]).unlink(missing_ok=True)  # none left from an earlier build
        if result.status == "crashed":  # a device fault: the worker ends itself; a fresh one next
            worker.close()
        else:
            self._give(lane, worker)
        return result

    def _run_check(
        self, spec: TestSpec, base_dir: str, signature: str, limit: float, lane: str
    ) -> TestResult:
        """Every case of a check file; a case that crashes or hangs is that case's result,
        and the cases after it run in a fresh worker."""
        cases: list[TestResult] = []
        remaining: list[str] | None = None  # None: all of them, not yet known
        while True:
            worker = self._take(lane)
            current: str | None = None
            try:
                self._send(
                    lane,
                    worker,
                    {**self._request(spec, base_dir, signature, remaining), **self._lane_request(lane)},
                )
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
                    elif event == "retire":  # its device faulted: a fresh worker goes on
                        worker.close()
                        if not remaining:
                            return judge_cases(spec, cases, signature)
                        break
                    elif event == "result":
                        self._give(lane, worker)
                        whole = result_from_json(reply["result"])
                        if not cases:  # skipped, or never got to its cases
                            return whole
                        return judge_cases(spec, cases, signature)
            except (_Died, TimeoutError) as exc:
                self._lost_worker(lane)
                if current is None:  # lost while loading the file or starting the device
                    lost = _lost(
                        worker,
                        exc,
                        spec.name,
                        spec,
                        signature,
                        f"loading {spec.module} on {spec.device}",
                        limit,
                    )
                    if not cases:
                        return lost
                    cases.append(lost)
                    return judge_cases(spec, cases, signature)
                name = case_name(spec.base, current, spec.device)
                cases.append(
                    _lost(worker, exc, name, spec, signature, f"running {current} on {spec.device}", limit)
                )
                remaining = [f for f in (remaining or []) if f != current]
                if not remaining:
                    return judge_cases(spec, cases, signature)

    def run_batch(
        self,
        specs: Sequence[TestSpec],
        base_dir: str | os.PathLike[str],
        hardware: Sequence[str],
        result_files: Sequence[str],
        retest: bool = False,
        timeout: float | None = None,
        run: str = "",
        passed_only: bool = False,
        replaces: Sequence[str] | None = None,
    ) -> Iterator[tuple[int, TestResult, bool]]:
        """Run CPU function calls back to back in one worker, one request for them all;
        yields ``(index, result, cached)`` in their order as each ends.

        The worker computes each signature, answers a stored result that still holds (unless
        ``retest``) and writes each new result file itself. Each call has its own time limit,
        as in :meth:`run_test`: a crash or a hang is that test's result, and the tests after
        it go on in a fresh worker. One test at a time: the calls never overlap. Batches
        of one ``run`` (an id) share the worker's file digests: their files do not change.
        ``passed_only``: only passed results are written (a build renames them into place,
        onto ``replaces``, whose inodes the worker reuses)."""
        base = str(base_dir)
        remaining = list(range(len(specs)))
        while remaining:
            worker = self._take("cpu")
            try:
                self._send(
                    "cpu",
                    worker,
                    {
                        "op": "tests",
                        "base_dir": base,
                        "run": run,
                        "retest": retest,
                        "passed_only": passed_only,
                        "items": [
                            {
                                "i": i,
                                "spec": specs[i].to_json(),
                                "hardware": hardware[i],
                                "result_file": result_files[i],
                                **({"replaces": replaces[i]} if replaces else {}),
                            }
                            for i in remaining
                        ],
                    },
                )
                while remaining:
                    i = remaining[0]
                    reply = worker.receive(timeout or specs[i].timeout or DEFAULT_TIMEOUT_S)
                    if reply.get("i") != i:
                        raise _Died
                    remaining.pop(0)
                    result = result_from_json(reply["result"])
                    result.cached = bool(reply.get("cached"))
                    if not reply.get("written") and not (passed_only and result.status != "passed"):
                        write_result(result, result_files[i])
                    yield i, result, result.cached
            except GeneratorExit:  # the caller stopped early: the worker is mid-batch
                worker.kill()
                raise
            except (_Died, TimeoutError) as exc:
                self._lost_worker("cpu")
                i = remaining.pop(0)
                spec = specs[i]
                doing = f"calling {spec.function or 'its function'} on {spec.device}"
                limit = timeout or spec.timeout or DEFAULT_TIMEOUT_S
                result = expect_failure(spec, _lost(worker, exc, spec.name, spec, "", doing, limit))
                if not passed_only or result.status == "passed":
                    write_result(result, result_files[i])
                yield i, result, False
                continue
            self._give("cpu", worker)

    # -- build-time calls (iree_run) -----------------------------------------------------
    def invoke(
        self,
        spec: TestSpec,
        module: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        params_dir: str,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Call a function and write its outputs as ``.npy`` (in a worker); returns
        ``{"ok", "message", "count"}``, a crash or hang being a message."""
        lane = self._hold(spec.device)
        try:
            worker = self._take(lane)
            limit = timeout or DEFAULT_TIMEOUT_S
            try:
                worker.send(
                    {
                        "op": "invoke",
                        "spec": spec.to_json(),
                        "module": module,
                        "inputs": list(inputs),
                        "outputs": list(outputs),
                        "params_dir": params_dir,
                        **self._lane_request(lane),
                    }
                )
                reply = worker.receive(limit)
            except (_Died, TimeoutError) as exc:
                lost = _lost(
                    worker,
                    exc,
                    spec.name,
                    spec,
                    "",
                    f"calling {spec.function or 'its function'} on {spec.device}",
                    limit,
                )
                return {"ok": False, "message": lost.message, "count": 0}
            self._give(lane, worker)
            return reply
        finally:
            self._release(lane)

    def shut(self) -> None:
        """Take no more tests and forget the workers (the fork server ends them)."""
        with self._lock:
            self._closed = True
            self._idle, self._spare = {}, None

    def close(self) -> None:
        """Stop every worker (idle ones and the spare); busy ones end with their callers.
        All are told at once (their input ends), then waited for."""
        with self._lock:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            if self._spare is not None:
                workers.append(self._spare)
            self._idle, self._spare = {}, None
        for worker in workers:
            worker.end_input()
        for worker in workers:
            worker.close()


def _lost(
    worker: _Worker, exc: BaseException, name: str, spec: TestSpec, signature: str, doing: str, limit: float
) -> TestResult:
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
    return TestResult(
        name=name,
        status=status,
        message=f"{name}: {why}",
        device=spec.device,
        signature=signature,
        base=spec.base,
        details=worker.details(),
    )


_DEFAULT: RunPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_run_pool() -> RunPool:
    """The process-wide pool (SCons' job threads and the runner share it); closed at exit,
    with the fork server."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = RunPool()
            atexit.register(_close_all, _DEFAULT)
        return _DEFAULT


def release_workers() -> None:
    """The process-wide pool's tests are done: its fork server ends its workers and itself
    now, while the caller writes its reports; the exit waits for it (:func:`_close_all`).
    A later test of this process gets a new pool and server."""
    global _DEFAULT, _ZYGOTE
    with _DEFAULT_LOCK:
        pool, _DEFAULT = _DEFAULT, None
    if pool is not None:
        pool.shut()
    with _ZYGOTE_LOCK:
        if _ZYGOTE is not None and _ZYGOTE.begin_close():
            _CLOSING.append(_ZYGOTE)
            _ZYGOTE = None


def _close_all(pool: RunPool) -> None:
    """At exit: the fork server ends every worker it forked (killed and reaped: at exit no
    test is wanted any more) and then itself; one round trip, not one per worker."""
    pool.shut()
    with _ZYGOTE_LOCK:
        servers = [*_CLOSING, *([_ZYGOTE] if _ZYGOTE is not None else [])]
        _CLOSING.clear()
    for server in servers:
        server.close()

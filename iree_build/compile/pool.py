"""A pool of compile worker processes shared by the build's threads.

Each worker keeps the compiler library loaded, so a module pays only its real
pipeline work. A worker that dies (the compiler can SIGSEGV or abort on a bad
target option) fails only the module it was compiling and is replaced on the
next request. Threads waiting on a worker's pipe release the GIL, so SCons' -j
threads drive several workers at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from iree_build.compile.diagnostics import clean_diagnostics
from iree_build.compile.request import CompileRequest
from iree_build.onnx.importer import ImportRequest
from iree_build.util.atomic import disk_full, pid_alive, remove_stale_temps, temp_path_for
from iree_build.util.child_process import death_reason, start_worker, worker_env
from iree_build.util.interrupt import interrupted, on_interrupt, stop_noticed, which_signal


@dataclass
class CompileOutcome:
    ok: bool
    diagnostics: str  # the compiler's own messages, cleaned of noise
    crash: str | None = None  # e.g. "SIGSEGV" when the worker died
    message: str = ""  # a failure the library raised rather than diagnosed
    # Not the compiler's verdict on these inputs (a full disk, an interrupt, a cluster that
    # cannot be reached): the next build tries again instead of remembering the failure.
    transient: bool = False


class _Worker:
    def __init__(self, env: dict[str, str] | None, cwd: str | None = None) -> None:
        self.proc = start_worker(
            [sys.executable, "-m", "iree_build.compile.worker"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=worker_env(env),
            text=True,
            bufsize=1,
            close_fds=True,
        )

    def ask(self, wire: dict) -> dict | None:
        """Send one request; None means the worker died before answering."""
        try:
            assert self.proc.stdin and self.proc.stdout
            self.proc.stdin.write(json.dumps(wire) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            return None
        return json.loads(line) if line else None

    def death(self) -> str:
        return death_reason(self.proc.wait())

    def close(self, timeout: float = 5.0) -> None:
        self.end_input()
        self.wait(timeout)

    def end_input(self) -> None:
        """Its input ends: it finishes what it is doing and exits."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class CompilePool:
    """At most ``size`` workers, started on demand, reused across requests."""

    def __init__(
        self,
        size: int = 1,
        env: dict[str, str] | None = None,
        diag_dir: str | os.PathLike[str] | None = None,
        cwd: str | None = None,
        tmp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.size = max(1, size)
        self._env = env
        # The compiler's own temporaries (iree-lld's objects and libraries) go to TMPDIR: give
        # the workers a folder of this build's (in the build tree), swept like the diagnostics.
        self._tmp_dir = Path(tmp_dir) / str(os.getpid()) if tmp_dir else None
        if self._tmp_dir is not None:
            _sweep_tmp(self._tmp_dir.parent)
            self._env = dict(os.environ if env is None else env, TMPDIR=str(self._tmp_dir))
        self._cwd = cwd  # where workers run: requests' relative paths start there
        self._idle: list[_Worker] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        self._busy: set[_Worker] = set()
        on_interrupt(self._stop_all)  # Ctrl-C/SIGTERM: a compile in flight ends now, not when done
        # The compiler's messages go to a file per request (the worker may die mid-compile):
        # in the build tree, never in /tmp, and swept when their build is gone.
        self._diag_dir = Path(diag_dir) if diag_dir else Path(tempfile.gettempdir()) / "iree_build_diag"
        _sweep(self._diag_dir)

    def _start(self) -> _Worker:
        if self._tmp_dir is not None:
            self._tmp_dir.mkdir(parents=True, exist_ok=True)
        return _Worker(self._env, self._cwd)

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._count >= self.size:
                self._cond.wait()
            if self._closed:
                raise RuntimeError("compile pool is closed")
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return self._start()
        except OSError:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def prestart(self, count: int) -> None:
        """Have at least ``count`` workers (at most the pool's size) started now, without
        waiting: their compiler imports overlap the caller's work instead of delaying
        the first compiles."""
        with self._cond:
            if self._closed:
                return
            new = max(0, min(count, self.size) - self._count)
            self._count += new
        started = []
        try:
            for _ in range(new):
                started.append(self._start())
        except OSError:
            pass  # the first compile that needs a worker will say why it cannot start one
        finally:
            with self._cond:
                self._count -= new - len(started)
                self._idle.extend(started)
                self._cond.notify_all()

    def _release(self, worker: _Worker, alive: bool) -> None:
        with self._cond:
            if alive and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()
        if not alive or self._closed:
            worker.close(timeout=1.0)

    def compile(self, request: CompileRequest | ImportRequest, cwd: str | None = None) -> CompileOutcome:
        """Run one compile (or ONNX import) on a worker; never raises for its failures.

        The request's relative paths are taken from ``cwd`` (default: this process's
        folder), which the worker compiles in: a cluster worker compiles in a scratch
        copy of the project with the same relative paths, so the bytes match.
        """
        base = Path(cwd) if cwd else Path()
        output = base / request.output
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(output)
        temp = temp_path_for(output)
        self._diag_dir.mkdir(parents=True, exist_ok=True)
        diag = self._diag_dir / f"{os.getpid()}-{threading.get_ident()}.log"
        wire = request.to_wire(str(temp), str(diag))
        if cwd:
            wire["cwd"] = str(cwd)
        worker = self._acquire()
        with self._cond:
            self._busy.add(worker)
        try:
            reply = worker.ask(wire) if not interrupted() else None
        finally:
            with self._cond:
                self._busy.discard(worker)
        if reply is None and worker.proc.poll() is None:
            worker.proc.kill()  # interrupted before it was asked
        crash = None if reply is not None else worker.death()
        self._release(worker, alive=reply is not None)
        try:
            text = diag.read_text(errors="replace")
            diag.unlink()
        except OSError:
            text = ""
        if crash:
            for path in (temp, Path(f"{temp}.params.irpa"), *(base / p for p in request.side_outputs)):
                path.unlink(missing_ok=True)
            cause = named_death(crash, text, output, self._tmp_dir)
            if cause:  # the stop's or the disk's: the compiler's words about it add nothing
                quiet = interrupted() or cause.startswith("no space left on device")
                return CompileOutcome(
                    False, "" if quiet else clean_diagnostics(text), message=cause, transient=True
                )
            return CompileOutcome(False, clean_diagnostics(text), crash=crash)
        assert reply is not None  # no reply is a crash, answered above
        if not reply["ok"] and interrupted():  # LLVM's own signal handlers delete its outputs, lld
            return CompileOutcome(
                False,
                "",
                message=f"interrupted ({which_signal()}) while it ran",  # stops
                transient=True,
            )
        wrote = any(words in text for words in _WRITE_FAILURES)  # it failed writing
        full = _full_disk(output, self._tmp_dir) if not reply["ok"] and wrote else ""
        if full:  # not the module's failure, and not to be told as the linker's
            return CompileOutcome(False, "", message=full, transient=True)
        return CompileOutcome(bool(reply["ok"]), clean_diagnostics(text), message=reply.get("message", ""))

    def _stop_all(self) -> None:
        """Busy workers, and idle ones that may still be starting (they would finish
        importing the compiler before seeing their input end), are killed."""
        with self._cond:
            workers = [*self._busy, *self._idle]
        for worker in workers:
            try:
                worker.proc.kill()
            except OSError:
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:  # all end at once: N compiler teardowns take the time of one
            if interrupted() and worker.proc.poll() is None:
                worker.proc.kill()  # maybe still starting: nothing to finish
            worker.end_input()
        for worker in idle:
            worker.wait(timeout=5.0)
        _sweep(self._diag_dir)
        if self._tmp_dir is not None:
            _sweep_tmp(self._tmp_dir.parent, mine=True)


def named_death(crash: str, diagnostics: str, output: Path, tmp_dir: Path | None = None) -> str:
    """What a worker's death really was when it was not the compiler crashing: the build
    interrupted, a full disk (LLVM exits 1 on an output stream it cannot write), or a
    signal sent from outside. '' for a crash."""
    from iree_build.util.interrupt import STOP_SIGNALS

    if interrupted() or (crash in ("SIGINT", "SIGTERM", "SIGHUP") and stop_noticed()):
        return f"interrupted ({which_signal()}) while it ran"
    full = _full_disk(output, tmp_dir)
    if full or "No space left on device" in diagnostics:
        return full or f"no space left on device (writing {output})"
    if crash in STOP_SIGNALS:
        return f"its compile worker was stopped by {crash} from outside the build (not a compiler crash)"
    return ""


_WRITE_FAILURES = ("No space left on device", "Linking failed", "Bus error")
"""What a compile says when it could not write: LLVM's own words for ENOSPC, and iree-lld's
failure (on a full tmpfs its mapped output file dies of SIGBUS instead of ENOSPC)."""


def _full_disk(output: Path, tmp_dir: Path | None) -> str:
    """'no space left on device (writing ...)' naming what a compile could not write, the
    output or its temporaries, when the disk that holds it is full; else ''."""
    if disk_full(output.parent):
        return f"no space left on device (writing {output})"
    if tmp_dir is not None and disk_full(tmp_dir):
        where = os.path.relpath(tmp_dir.parent)
        return f"no space left on device (writing the compiler's temporary files in {where})"
    return ""


DIAG_DIR = ".iree_build_diag"  # compile workers' diagnostics, in the top folder
TMP_DIR = ".iree_build_tmp"  # their TMPDIR: the compiler's own temporaries


def sweep_dead_workers(top: str | os.PathLike[str]) -> None:
    """What compile workers of killed builds left in the top folder (diagnostics,
    temporaries), removed: two stats when there is nothing."""
    if os.path.isdir(os.path.join(top, DIAG_DIR)):
        _sweep(Path(top) / DIAG_DIR)
    if os.path.isdir(os.path.join(top, TMP_DIR)):
        _sweep_tmp(Path(top) / TMP_DIR)


def _sweep(folder: Path) -> None:
    """Remove the diagnostics files of builds that are gone (killed ones too), then the
    folder itself once empty."""
    try:
        for f in folder.glob("*.log"):
            pid = f.name.split("-", 1)[0]
            if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                f.unlink(missing_ok=True)
        folder.rmdir()
    except OSError:
        pass


def _sweep_tmp(folder: Path, mine: bool = False) -> None:
    """Remove the temporary folders of builds that are gone (killed ones too; this one's
    too when ``mine``), then ``folder`` itself once empty."""
    import shutil

    try:
        for sub in folder.iterdir():
            if sub.name.isdigit() and (
                (mine and int(sub.name) == os.getpid()) or not pid_alive(int(sub.name))
            ):
                shutil.rmtree(sub, ignore_errors=True)
        folder.rmdir()
    except OSError:
        pass

"""Faults and hostile input (issue 25): real builds killed at random moments, interrupted,
pointed at a silent peer, given links out of the tree, garbage data and a full disk.

Everything here is a real process: SCons builds, the standalone runner, a TCP listener
on 127.0.0.1 that never speaks; every process a test starts is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ADD_MLIR, MUL_MLIR, Project

SCONSCRIPT = """\
iree_module(name="add", src="add.mlir")
iree_module(name="mul", src="mul.mlir")
iree_test(name="add_test", module="add", function="add",
          inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], expected=[[2.0, 3.0, 4.0, 5.0]])
iree_test(name="mul_test", module="mul", function="mul",
          inputs=[[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]], expected=[[2.0, 4.0, 6.0, 8.0]])
iree_benchmark(name="add_bench", module="add", function="add", inputs=["4xf32=1", "4xf32=2"])
"""
BUILD = ("-j2", ".", "test")  # everything, tests included
TIMED = (".result.json", "iree_test_results.xml", "iree_test_history.jsonl",  # hold run times
         "iree_test_report.html")  # and dates: compared by presence


def small_build(project: Project) -> Project:
    project.write("SConstruct", 'from iree_rules import *\n'
                                'SConscript("src/SConscript", variant_dir="build", duplicate=False)\n')
    project.write("src/SConscript", SCONSCRIPT)
    project.write("src/add.mlir", ADD_MLIR)
    project.write("src/mul.mlir", MUL_MLIR)
    return project


def snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted((root / "build").rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(root))
            out[rel] = None if rel.endswith(TIMED) else p.read_bytes()
    return out


def strays(root: Path) -> list[str]:
    """Temporaries anywhere in the project, and the compile workers' folders."""
    found = [str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name]
    return found + [n for n in (".iree_build_tmp", ".iree_build_diag") if (root / n).exists()]


def our_processes(root: Path, session: int) -> list[int]:
    """Live processes of the killed build: its session, or iree_build/SCons ones in the project."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.getsid(int(entry.name)) == session:
                pids.append(int(entry.name))
                continue
            cmd = (entry / "cmdline").read_bytes()
            if (b"iree_build" in cmd or b"SCons" in cmd) and \
                    Path(os.readlink(entry / "cwd")).resolve().is_relative_to(root.resolve()):
                pids.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return pids


def wait_gone(root: Path, session: int, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := our_processes(root, session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def start(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen, sig: int) -> tuple[str, str, float]:
    """Signal the build's process group (as a terminal's Ctrl-C does); its output and how
    long it took to end."""
    t = time.monotonic()
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out, err, time.monotonic() - t


def reset(project: Project) -> None:
    """Back to sources only, as if just checked out (keeps nothing of a build)."""
    for name in ("build", ".sconsign.dblite"):
        path = project.root / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The small project built and tested once; tests take copies (a copied tree is up to
    date: SCons' records hold relative paths)."""
    project = small_build(Project(tmp_path_factory.mktemp("built")))
    run = project.scons(*BUILD)
    assert run.returncode == 0, run.output
    return project.root


def copy_of(built: Path, project: Project) -> Project:
    shutil.copytree(built, project.root, dirs_exist_ok=True)
    return project


def _fault_round(project: Project, sig: int, pause: float, baseline: dict[str, bytes | None], what: str) -> None:
    """One build from sources stopped by ``sig`` after ``pause`` s, then the checks and the
    build that must complete it."""
    reset(project)
    proc = start(project, *BUILD)
    if sig != signal.SIGKILL:  # not during SCons' own start-up: Python's, before any of our code
        lock, deadline = project.path(".iree_build.lock"), time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not (
                lock.exists() and lock.read_text().startswith(f"{proc.pid} ")):
            time.sleep(0.01)
    time.sleep(pause)  # reading, compiling, testing, recording
    out, err, took = stop(proc, sig)
    assert not wait_gone(project.root, proc.pid), what
    if sig != signal.SIGKILL:
        assert took < 2.0, (what, took)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err and "crashed" not in out + err, \
            (what, out, err)
        assert not any(line.startswith(("FAIL", "CRASH")) for line in out.splitlines()), (what, out)
    for rel, data in snapshot(project.root).items():  # what is there is whole
        if data is not None and rel in baseline and not rel.endswith(".json"):
            assert data == baseline[rel], (what, rel)
    again = project.scons(*BUILD)
    assert again.returncode == 0, (what, again.output)
    assert "2 passed, 0 failed, 0 skipped" in again.stdout, (what, again.stdout)
    assert snapshot(project.root) == baseline, what
    assert not strays(project.root), (what, strays(project.root))


def test_reports_a_killed_build_left_half_written_are_swept_by_the_next(built: Path, project: Project) -> None:
    """Killed while it wrote its JUnit file and page (after SCons recorded the build): the
    next build runs nothing, rebuilds nothing, and still removes those temporaries; so does
    the standalone runner."""
    copy_of(built, project)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a PID whose process has ended, as a killed build's
    for name in ("iree_test_results.xml", "iree_test_report.html"):
        project.path(f"build/.{name}.tmp-{gone.pid}").write_bytes(b"")
    run = project.scons(*BUILD)
    assert run.returncode == 0 and "0 tests run, 2 up to date" in run.stdout, run.output
    assert not strays(project.root), strays(project.root)
    # The standalone runner the same, and a result a killed run left beside its place.
    for name in ("iree_test_report.html", "add_test.local-task.result.json"):
        project.path(f"build/.{name}.tmp-{gone.pid}").write_bytes(b"")
    ran = runner(str(project.path("build")))
    assert ran.returncode == 0 and "0 tests run, 2 up to date" in ran.stdout, ran.stdout + ran.stderr
    assert not strays(project.root), strays(project.root)


def test_killed_interrupted_and_stopped_builds_leave_nothing_and_the_next_is_whole(
        built: Path, project: Project, tmp_path_factory) -> None:
    """kill -9, SIGINT and SIGTERM of `scons -j2 . test` at seeded random moments: no process
    left, no truncated output, the next build complete and byte-identical, no stray file.

    The kill -9 rounds run in two copies of the project at once (each its own session and
    tree; more with IREE_FAULT_ROUNDS=N outside CI); SIGINT and SIGTERM, whose time to stop
    is measured, then run alone."""
    copy_of(built, project)
    baseline = snapshot(project.root)
    assert any(k.endswith(".vmfb") for k in baseline) and not strays(project.root)
    rng = random.Random(25)
    kills = [rng.uniform(0.2, 1.2) for _ in range(int(os.environ.get("IREE_FAULT_ROUNDS", "6")))]
    lanes = [project, copy_of(built, Project(tmp_path_factory.mktemp("second")))]
    failures: list[BaseException] = []

    def lane(n: int) -> None:
        try:
            for i in range(n, len(kills), len(lanes)):
                _fault_round(lanes[n], signal.SIGKILL, kills[i], baseline, f"round {i} (SIGKILL)")
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(len(lanes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    for sig in (signal.SIGINT, signal.SIGTERM):  # once SCons reads the SConscripts
        _fault_round(project, sig, rng.uniform(0.0, 1.0), baseline, signal.Signals(sig).name)


class SilentPeer:
    """A TCP listener on 127.0.0.1 that accepts and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.kept: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.kept.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for c in self.kept:
            c.close()


def test_a_silent_peer_as_cluster_is_one_line_and_signals_stop_at_once(project: Project, tmp_path_factory) -> None:
    """While one build waits for the peer's answer (10 s), two more, in a copy of the
    project, are stopped by SIGINT and SIGTERM: each within a second and a half."""
    pytest.importorskip("distributed")
    small_build(project)
    other = small_build(Project(tmp_path_factory.mktemp("other")))
    peer = SilentPeer()
    env = {"IREE_CLUSTER_KEEPALIVE": "0"}
    address = f"--iree-cluster=tcp://127.0.0.1:{peer.port}"
    t = time.monotonic()
    waiting = start(project, "-j2", "test", address, env=env)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            proc = start(other, "-j2", "test", address, env=env)
            time.sleep(1.0)
            _, _, took = stop(proc, sig)
            assert took < 1.5, (sig, took)
            assert not wait_gone(other.root, proc.pid)
        out, err = waiting.communicate(timeout=60)
        took = time.monotonic() - t
    finally:
        if waiting.poll() is None:
            os.killpg(waiting.pid, signal.SIGKILL)
            waiting.wait()
        peer.close()
    assert waiting.returncode == 2 and took < 14, (took, out, err)
    first, *others = err.strip().splitlines()
    assert first.endswith(f"] --iree-cluster: tcp://127.0.0.1:{peer.port} did not answer as a Dask "
                          "scheduler within 10 s (is it a Dask scheduler's address?)"), err
    # An action that was already running beside the first (-j2) says only that.
    assert all(o.endswith("] --iree-cluster: not reached (see the first line)") for o in others), err


def runner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iree_build", "test", *args], capture_output=True,
                          text=True, timeout=120)


def test_links_out_of_the_build_folder_and_deep_json_are_refused_in_one_line(built: Path, project: Project,
                                                                              tmp_path_factory) -> None:
    copy_of(built, project)
    build = project.path("build")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    np.save(elsewhere / "secret.npy", np.ones(4, np.float32))
    (build / "evil.npy").symlink_to(elsewhere / "secret.npy")
    (build / "linked").symlink_to(elsewhere, target_is_directory=True)
    shutil.copy(build / "add.vmfb", elsewhere / "add.vmfb")
    manifest = json.loads((build / "iree_tests.json").read_text())
    for key, value, shown in (("inputs", ["evil.npy", "add_test.input1.npy"], "inputs[0]: 'evil.npy'"),
                              ("module", "linked/add.vmfb", "module: 'linked/add.vmfb'"),
                              ("result", "linked/r.result.json", "result: 'linked/r.result.json'")):
        doc = json.loads(json.dumps(manifest))
        test = next(t for t in doc["tests"] if t["base"] == "add_test")
        test[key] = value
        (build / "evil.json").write_text(json.dumps(doc))
        run = runner(str(build / "evil.json"))
        assert run.returncode == 2, run
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"python -m iree_build: error: {build / 'evil.json'}: test 'add_test[local-task]' {shown} leads "
            f"outside {build.resolve()} through a link (to {elsewhere.resolve()}/"), lines
        assert lines[0].endswith("refusing to read or write it"), lines
        assert run.stdout == ""
    assert not (elsewhere / "r.result.json").exists()
    (build / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    run = runner(str(build / "deep.json"))
    assert run.returncode == 2 and run.stderr.splitlines() == [
        f"python -m iree_build: error: {build / 'deep.json'}: not a test manifest (JSON nested too deeply)"]
    (build / "add_test.local-task.result.json").write_text("[" * 100_000 + "]" * 100_000)
    run = runner(str(build))  # an unreadable result is no cache entry: the test runs again
    assert run.returncode == 0 and "Traceback" not in run.stderr, run
    assert "PASS add_test[local-task]" in run.stdout
    # A failure the runner found is no result file, as in `scons test`: SCons takes one for a
    # pass, and would say "up to date" of a test whose data (here, garbage) fails it.
    (build / "add_test.input0.npy").write_bytes(b"\xff garbage" * 10)
    run = runner(str(build), "--retest")
    assert run.returncode == 1 and "FAIL add_test[local-task] (cannot read input 0" in run.stdout, run
    assert not (build / "add_test.local-task.result.json").exists()
    assert (build / "mul_test.local-task.result.json").exists()
    again = project.scons("test")
    assert again.returncode == 2 and "FAIL add_test[local-task]" in again.stdout, again.output


def test_a_result_the_runner_cannot_write_is_one_line_naming_it(built: Path, project: Project) -> None:
    copy_of(built, project)
    build = project.path("build")
    result = build / "add_test.local-task.result.json"
    result.unlink()
    result.mkdir()  # where the result goes, something it cannot replace (as a read-only tree)
    run = runner(str(build), "--retest")
    assert run.returncode == 2, run
    assert run.stderr.splitlines() == [f"python -m iree_build: error: {result}: Is a directory"], run.stderr


def test_garbage_and_huge_data_files_are_one_line(project: Project) -> None:
    pytest.importorskip("onnx")
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n'
                                'iree_test(name="t", module="add", function="add", inputs=["junk.pb", "junk.pb"])\n')
    project.write("add.mlir", ADD_MLIR)
    project.path("junk.pb").write_bytes(b"\xff\xfe garbage \x00\x01" * 10)
    run = project.scons("test")
    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert "junk.pb is not an ONNX TensorProto file" in run.stderr, run.stderr
    # A .npy whose header claims 10^12 elements, given to a reference function.
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += " " * (63 - len(header)) + "\n"
    project.path("huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                         + header.encode() + b"\0" * 16)
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n'
                                'iree_test(name="t", module="add", function="add", inputs=["huge.npy", "huge.npy"],\n'
                                '          expected=lambda a, b: a + b)\n')
    run = project.scons("test")
    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scons: *** SConstruct:3: cannot read huge.npy"), lines


def test_a_data_file_linked_out_of_the_tree_fails_its_test_in_one_line(project: Project, tmp_path_factory) -> None:
    """Without a variant_dir the source folder is the build folder: a link there that leads out
    of it fails the test that reads it (the run worker refused it, and died of it, before)."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    np.save(elsewhere / "secret.npy", np.ones(4, np.float32))
    project.path("x.npy").symlink_to(elsewhere / "secret.npy")
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n'
                                'iree_test(name="t", module="add", function="add", inputs=["x.npy", "4xf32=1"],\n'
                                '          expected=["4xf32=2"])\n')
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("test")
    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert f"FAIL t[local-task] ('x.npy' leads outside {project.root.resolve()} through a link (to " \
        f"{elsewhere.resolve()}/secret.npy); refusing to read or write it)" in run.stdout.splitlines(), run.stdout
    assert "CRASH" not in run.output and "PathEscapeError" not in run.output


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user and mount namespaces) for a tmpfs")
def test_a_full_disk_for_the_compilers_temporaries_is_named(project: Project, tmp_path_factory) -> None:
    """The compile workers' temporary folder on a full tmpfs: with a little room left the
    linker fails (or its worker dies of LLVM's output error, or of SIGBUS on a mapped file,
    depending on how little): always one line naming that folder's full disk, no failure
    kept for the module, and a whole build once there is room."""
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
    project.write("add.mlir", ADD_MLIR)
    logs = tmp_path_factory.mktemp("logs")
    tmp = project.path(".iree_build_tmp")
    tmp.mkdir()
    scons = f"{sys.executable} -m SCons -Q -C {project.root}"
    steps = [f"mount -t tmpfs -o size=64k tmpfs {tmp}"]
    for free_kb in (8, 30, 36):
        steps += [f"dd if=/dev/zero of={tmp}/filler bs=1k count={64 - free_kb} 2>/dev/null",
                  f"{scons} >{logs}/{free_kb}.out 2>{logs}/{free_kb}.err; echo $? >{logs}/{free_kb}.rc",
                  f"ls -A {project.root} >{logs}/{free_kb}.left", f"rm {tmp}/filler"]
    steps += [f"{scons} >{logs}/room.out 2>&1; echo $? >{logs}/room.rc"]
    subprocess.run(["unshare", "-rm", "sh", "-c", " && ".join(steps)], check=True, timeout=180)
    for free_kb in (8, 30, 36):
        err = (logs / f"{free_kb}.err").read_text()
        assert (logs / f"{free_kb}.rc").read_text().strip() == "2", (free_kb, err)
        assert err.splitlines() == [
            "scons: *** [add.vmfb] IREE compile failed: no space left on device "
            "(writing the compiler's temporary files in .iree_build_tmp)"
        ], (free_kb, err)
        assert "add.vmfb.failed" not in (logs / f"{free_kb}.left").read_text()  # not the module's failure
    assert (logs / "room.rc").read_text().strip() == "0", (logs / "room.out").read_text()
    assert project.path("add.vmfb").exists()


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user and mount namespaces) for a tmpfs")
def test_a_full_disk_is_named_not_a_compiler_crash(project: Project, tmp_path_factory) -> None:
    """The project is on a tmpfs in a private mount namespace, filled up before the build: a
    real ENOSPC for the lock's text, the compiler, the manifests, the report and SCons' own
    database. Then space is freed, and the next build is whole (1 MB: two compiles at once
    link their temporaries there too; 128 KB was too little for them on a busy machine)."""
    small_build(project)
    disk, logs = tmp_path_factory.mktemp("disk"), tmp_path_factory.mktemp("logs")
    scons = f"{sys.executable} -m SCons -Q -k -j2 -C {disk} test"
    script = (f"mount -t tmpfs -o size=1m tmpfs {disk} && cp -r {project.root}/. {disk} && "
              f"(dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null; true) && "
              f"{scons} >{logs}/full.out 2>{logs}/full.err; echo $? >{logs}/full.rc; "
              f"rm {disk}/filler && {scons} >{logs}/again.out 2>&1; echo $? >{logs}/again.rc; "
              f"ls -A {disk} {disk}/build >{logs}/left")
    subprocess.run(["unshare", "-rm", "sh", "-c", script], check=True, timeout=180)
    out, err = (logs / "full.out").read_text(), (logs / "full.err").read_text()
    assert (logs / "full.rc").read_text().strip() == "2", out + err
    assert "Traceback" not in out + err and "Exception ignored" not in err, out + err
    assert "crashed" not in out + err and "check the target options" not in out + err, out + err
    assert "scons: *** [build/add.vmfb] IREE compile failed: no space left on device (writing " \
           "build/add.vmfb)" in err, err
    assert ("scons: *** .sconsign.dblite: could not record this build: No space left on device (the next "
            "build redoes what it cannot prove up to date)") in err.splitlines(), err
    assert "could not write the JUnit report" in out and "JUnit report: build/" not in out and \
           "no JUnit report" in out, out
    again = (logs / "again.out").read_text()
    assert (logs / "again.rc").read_text().strip() == "0", again
    assert again.splitlines()[-1] == "2 passed, 0 failed, 0 skipped", again
    left = (logs / "left").read_text()
    assert ".tmp" not in left and ".failed" not in left, left  # a full disk is no module's failure


STARTING = """\
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: None)  # this process lives on; its workers get the default
from iree_build.compile.pool import CompilePool
from iree_build.compile.request import CompileRequest
from iree_build.compile.compiler_info import compiler_info
from iree_build.testing.run_pool import _zygote

pool = CompilePool(size=1, diag_dir="diag", tmp_dir="tmp")
pool.prestart(1)
zygote = _zygote()
os.killpg(0, signal.SIGINT)  # a terminal's Ctrl-C while both still import their libraries
worker = pool._idle[0]
cpu = ("--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
       "--iree-llvmcpu-target-cpu=generic")
done = pool.compile(CompileRequest("add.mlir", "add.vmfb", cpu, compiler_info().identity))
pid, fds, _ = zygote.fork()
print(done.ok, done.crash, pool._idle == [worker], zygote.proc.poll(), flush=True)
pool.close()
zygote.close()
print(worker.proc.returncode, zygote.proc.returncode, flush=True)
"""


def test_a_ctrl_c_while_workers_start_neither_kills_them_nor_prints(tmp_path: Path) -> None:
    """The build's workers start with Ctrl-C held and then ignore it: a Ctrl-C sent to the
    process group while they import the compiler or the runtime is the build's alone."""
    (tmp_path / "add.mlir").write_text(ADD_MLIR)
    run = subprocess.run([sys.executable, "-c", STARTING], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, start_new_session=True)
    assert run.returncode == 0 and "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr, run
    assert run.stdout.splitlines() == ["True None True None", "0 0"], run


def test_the_standalone_runners_take_the_build_lock_and_scons_c_removes_what_they_wrote(
        built: Path, project: Project) -> None:
    """`python -m iree_build test` and `bench` read and write the built tree: beside a
    build (or, for bench, any other run) each refuses in one line and touches nothing.
    `scons -c` then removes what the build, the tests and the benchmarks wrote, and what
    killed ones left, but the two histories."""
    import fcntl

    copy_of(built, project)
    build = str(project.path("build"))
    lock = os.open(project.path(".iree_build.lock"), os.O_RDWR)
    try:
        for mode, holder in ((fcntl.LOCK_EX, f"another scons (PID {os.getpid()})"),
                             (fcntl.LOCK_SH, "a test run (python -m iree_build test)")):
            os.ftruncate(lock, 0)
            if mode == fcntl.LOCK_EX:
                os.write(lock, f"{os.getpid()} scons".encode())  # as a build holds it
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
            before = sorted(p.name for p in project.path("build").iterdir())
            for command in (["test"], ["bench"])[mode == fcntl.LOCK_SH:]:  # test runners share it
                run = subprocess.run([sys.executable, "-m", "iree_build", *command, build],
                                     capture_output=True, text=True, timeout=120, cwd=project.root)
                assert run.returncode == 2 and run.stdout == "", run
                assert run.stderr.splitlines() == [
                    f"python -m iree_build: error: .iree_build.lock: {holder} is using this tree; "
                    "wait for it to finish (nothing was touched)"], run.stderr
            assert sorted(p.name for p in project.path("build").iterdir()) == before
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)
    bench = subprocess.run([sys.executable, "-m", "iree_build", "bench", build], capture_output=True, text=True,
                           timeout=120, cwd=project.root)
    assert bench.returncode == 0 and "add_bench[local-task]" in bench.stdout, bench
    build = project.path("build")
    assert (build / "iree_bench_plots").is_dir() and (build / "add_bench.local-task.bench.json").exists()
    for stale in ("build/.add_test.input0.npy.tmp-999999", "build/.iree_tests.json.tmp-999999",
                  "build/.iree_test_results.xml.tmp-999999", "build/.iree_data.json.tmp-999999",
                  "build/.add_test.local-task.result.json.tmp-999999", ".iree_build_tmp/999999/f_dispatch_0.o"):
        project.write(stale, "left by a killed build")
    project.write(".iree_onnx_policy.json", "{}")
    clean = project.scons("-c")
    assert clean.returncode == 0, clean.output
    assert sorted(p.name for p in build.iterdir()) == ["iree_bench_history.jsonl", "iree_test_history.jsonl"]
    assert sorted(p.name for p in project.root.iterdir()) == [".iree_build.lock", ".sconsign.dblite", "SConstruct",
                                                             "build", "src"]


def test_the_runner_leaves_no_process_however_it_ends(built: Path, project: Project) -> None:
    """`python -m iree_build test` forks its run workers' server first thing: whether it runs
    the tests, refuses a device typo or finds no build folder, nothing of it is left once
    it has exited (checked by its session, at once)."""
    copy_of(built, project)
    build = str(project.path("build"))
    for argv, code, said in ((["test", build, "--retest"], 0, "2 passed, 0 failed, 0 skipped"),
                             (["test", build, "--devices", "local-tsk"], 2, "did you mean"),
                             (["test", str(project.path("nowhere"))], 2, "no such build directory")):
        proc = subprocess.Popen([sys.executable, "-m", "iree_build", *argv], cwd=project.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code and said in out + err, (argv, out, err)
        assert our_processes(project.root, proc.pid) == [], argv


def test_hand_edited_names_results_and_reports_are_one_line(built: Path, project: Project) -> None:
    """A manifest name that would print as two lines or is no UTF-8 text, a result pointed at
    a module (a failing test's result is deleted), a JUnit report aimed at a folder or at the
    manifest: each is refused in one line, and nothing is run or removed."""
    copy_of(built, project)
    build = project.path("build")
    manifest = json.loads((build / "iree_tests.json").read_text())
    for key, value, said in (
        ("name", "add_test\nPASS forged[local-task]", "'name' holds a control character"),
        ("name", "add_test\ud800[local-task]", "'name' holds a control character"),
        ("result", "add.vmfb", "result 'add.vmfb' is not a .result.json file"),
    ):
        doc = json.loads(json.dumps(manifest))
        next(t for t in doc["tests"] if t["base"] == "add_test")[key] = value
        (build / "evil.json").write_text(json.dumps(doc))
        run = runner(str(build / "evil.json"), "--retest")
        assert run.returncode == 2 and run.stdout == "", run
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"python -m iree_build: error: {build / 'evil.json'}: test "
        ), lines
        assert said in lines[0], lines
    assert (build / "add.vmfb").is_file()
    for junit, said in ((str(build), "a folder"), (str(build / "iree_tests.json"), "is the test manifest")):
        run = runner(str(build), "--junit", junit)
        assert run.returncode == 2 and run.stdout == "" and len(run.stderr.splitlines()) == 1, run
        assert said in run.stderr, run
    assert json.loads((build / "iree_tests.json").read_text()) == manifest


def test_odd_folder_names_reasons_and_a_lock_that_cannot_be_taken_are_one_line(project: Project) -> None:
    """A reason holding a newline or an escape sequence prints as one escaped line; a folder
    whose name is not UTF-8 (part of every test name) and a lock file that cannot be opened
    (a read-only tree; here a folder in its place) are one line each, no traceback."""
    project.write(
        "SConstruct",
        "from iree_rules import *\nimport os\n"
        'SConscript(os.fsdecode(b"odd\\xffdir/SConscript"))\n'
        'iree_module(name="add", src="add.mlir")\n'
        'iree_test(name="t", module="add", function="add", inputs=["4xf32=1", "4xf32=2"],\n'
        '          skip="one\\nPASS forged[local-task]\\x1b[2J")\n',
    )
    project.write("add.mlir", ADD_MLIR)
    odd = project.root / os.fsdecode(b"odd\xffdir")
    odd.mkdir()
    (odd / "add.mlir").write_text(ADD_MLIR)
    (odd / "SConscript").write_text(
        'iree_module(name="add", src="add.mlir")\n'
        'iree_test(name="t", module="add", function="add", inputs=["4xf32=1", "4xf32=2"])\n'
    )
    run = project.scons("test")
    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert run.stderr.splitlines() == [
        "scons: *** odd\\udcffdir/SConscript:2: the folder 'odd\\udcffdir' has a name that is not UTF-8 text or "
        "holds a control character; rename it: it is part of every test name, printed and written to the "
        "reports"
    ], run.stderr
    shutil.rmtree(odd)
    project.write(
        "SConstruct",
        project.path("SConstruct")
        .read_text()
        .replace('SConscript(os.fsdecode(b"odd\\xffdir/SConscript"))\n', ""),
    )
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert "SKIP t[local-task] (one\\nPASS forged[local-task]\\x1b[2J)" in run.stdout.splitlines(), run.stdout
    (project.root / ".iree_build.lock").unlink()
    (project.root / ".iree_build.lock").mkdir()
    run = project.scons("test")
    assert run.returncode == 2 and run.stderr.splitlines() == [
        "scons: *** .iree_build.lock: cannot take the build's lock: Is a directory (a build writes into this tree)"
    ], run.output

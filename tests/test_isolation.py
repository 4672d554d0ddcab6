"""Test runs that nothing can silence: crashes, hangs, writable modules, suite names, caches.

Every case here runs real modules in real run-worker processes through real
``scons`` (and the standalone runner): a kernel that writes through a null
pointer, a loop that never ends, IREE's own unfoldable-constant pattern.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ADD_MLIR, ENDLESS_LOOP, MATMUL_MLIR, Project
from crash_kernel import CRASH_C, CRASH_MLIR

# IREE's e2e pattern: a dispatch writes its result into an unfoldable constant. With the
# module mapped read-only this was a SIGSEGV in a runtime worker thread.
MATVEC = """\
func.func @i8_matvec() {
  %m = util.unfoldable_constant dense<[[2, -1, 3], [0, 4, 1]]> : tensor<2x3xi8>
  %v = util.unfoldable_constant dense<[1, 2, -1]> : tensor<3xi8>
  %z = util.unfoldable_constant dense<[0, 10]> : tensor<2xi32>
  %r = linalg.matvec ins(%m, %v : tensor<2x3xi8>, tensor<3xi8>) outs(%z : tensor<2xi32>) -> tensor<2xi32>
  check.expect_eq_const(%r, dense<[-3, 17]> : tensor<2xi32>) : tensor<2xi32>
  return
}
"""

# A host-side loop whose condition the compiler cannot fold: it never ends.
HANG_MLIR = """\
func.func @test_ok() {
  %a = util.unfoldable_constant dense<[1, 2]> : tensor<2xi32>
  check.expect_eq_const(%a, dense<[1, 2]> : tensor<2xi32>) : tensor<2xi32>
  return
}
func.func @test_hang() {
""" + ENDLESS_LOOP + """\
  check.expect_eq_const(%t, dense<[0]> : tensor<1xi32>) : tensor<1xi32>
  return
}
func.func @test_after() {
  %a = util.unfoldable_constant dense<[3]> : tensor<1xi32>
  check.expect_eq_const(%a, dense<[3]> : tensor<1xi32>) : tensor<1xi32>
  return
}
"""

ADD_CHECK = """\
func.func @test_add() {
  %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
  %c = arith.addf %a, %a : tensor<2xf32>
  check.expect_almost_eq_const(%c, dense<[2.0, 4.0]> : tensor<2xf32>) : tensor<2xf32>
  return
}
"""

needs_x86_cc = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("cc") is None,
    reason="the crashing kernel is x86-64 C code built with cc")


def _lines(text: str, word: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(word + " ")]


def crash_project(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        Object("kernels/crash_x86_64.o", "kernels/crash.c",
               CCFLAGS="-O1 -ffreestanding -fno-builtin -fno-stack-protector -fPIC")
        iree_check_test_suite(name="e2e", srcs=["matvec.mlir", "crash.mlir", "hang.mlir"],
                              devices=["local-task"], timeout=3)
        """)
    project.write("kernels/crash.c", CRASH_C)
    project.write("matvec.mlir", MATVEC)
    project.write("crash.mlir", CRASH_MLIR)
    project.write("hang.mlir", HANG_MLIR)


@needs_x86_cc
def test_crash_and_hang_are_lines_and_the_run_goes_on(project: Project) -> None:
    crash_project(project)
    run = project.scons("test", "-k")
    out = run.stdout
    assert run.returncode == 2, run.output
    # IREE's own pattern runs as under IREE's tools (it crashed with a read-only module).
    assert "PASS e2e/matvec.mlir::i8_matvec[local-task]" in out
    (crash,) = _lines(out, "CRASH")
    assert crash.startswith("CRASH e2e/crash.mlir::test_crash[local-task] (SIGSEGV while running "
                            "test_crash on local-task")
    (hang,) = _lines(out, "TIMEOUT")
    assert hang.startswith("TIMEOUT e2e/hang.mlir::test_hang[local-task] (no answer after 3 s")
    for case in ("crash.mlir::test_before", "crash.mlir::test_after", "hang.mlir::test_ok",
                 "hang.mlir::test_after"):
        assert f"PASS e2e/{case}[local-task]" in out, out
    assert out.splitlines()[-1] == "5 passed, 2 failed, 0 skipped"
    assert "scons: *** [e2e_crash_llvm-cpu.local-task.result.json] test e2e/crash.mlir[local-task] failed" \
        in run.stderr
    suite = ET.parse(project.path("iree_test_results.xml")).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "7" and suite.get("errors") == "2"
    crashed = [c for c in suite if c.get("name", "").endswith("test_crash[local-task]")]
    assert crashed[0].find("error").get("type") == "crashed"
    assert "Segmentation fault" in crashed[0].find("system-err").text

    # The standalone runner survives the same crash and hang, and takes --timeout.
    proc = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root),
                           "--retest", "--timeout", "2", "--filter", "e2e/[ch]*"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _lines(proc.stdout, "CRASH")[0].startswith("CRASH e2e/crash.mlir::test_crash[local-task]")
    assert _lines(proc.stdout, "TIMEOUT")[0].startswith(
        "TIMEOUT e2e/hang.mlir::test_hang[local-task] (no answer after 2 s")
    assert proc.stdout.splitlines()[-1] == "4 passed, 2 failed, 0 skipped"


@needs_x86_cc
def test_a_crashing_build_time_run_fails_its_target_only(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        Object("kernels/crash_x86_64.o", "kernels/crash.c",
               CCFLAGS="-O1 -ffreestanding -fno-builtin -fno-stack-protector -fPIC")
        iree_module(name="crashy", src="crash.mlir")
        iree_module(name="add", src="add.mlir")
        iree_run(name="boom", module="crashy", function="crash_call", inputs=[[1.0, 2.0, 3.0, 4.0]])
        iree_run(name="fine", module="add", function="add", inputs=[[1.0] * 4, [2.0] * 4])
        """)
    project.write("kernels/crash.c", CRASH_C)
    project.write("crash.mlir", CRASH_MLIR)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("-k", "boom.npy", "fine.npy")
    assert run.returncode == 2
    assert "scons: *** [boom.npy] boom.npy: SIGSEGV while calling crash_call on local-task" in run.stderr
    assert "Traceback" not in run.output
    assert project.path("fine.npy").exists() and not project.path("boom.npy").exists()


def test_same_file_in_two_suites_and_cpu_variants(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_check_test_suite(name="a", srcs=["ops/add.mlir"])
        iree_check_test_suite(name="b", srcs=["more/add.mlir", "ops/add.mlir"], target_backends=["vmvx"])
        iree_check_test_suite(name="cpu", srcs=["ops/add.mlir"], cpu="generic",
                              cpu_features_variants=["default", "x86_64:avx2_fma:+avx,+avx2,+fma",
                                                     "aarch64:dotprod:+dotprod"],
                              backend_flags={"llvm-cpu": ["--iree-opt-level=O2"]})
        """)
    project.write("ops/add.mlir", ADD_CHECK)
    project.write("more/add.mlir", ADD_CHECK)
    run = project.scons("test", "--iree-test-filter=*add.mlir*")
    assert run.returncode == 0, run.output
    passed = {ln.split(" (")[0] for ln in _lines(run.stdout, "PASS")}
    expected = {"PASS a/ops/add.mlir::test_add[local-task]",
                "PASS b/more/add.mlir::test_add[local-task]",
                "PASS b/ops/add.mlir::test_add[local-task]"}
    if platform.machine() == "x86_64":
        expected |= {"PASS cpu/ops/add.mlir::test_add[llvm-cpu:default:local-task]",
                     "PASS cpu/ops/add.mlir::test_add[llvm-cpu:avx2_fma:local-task]"}
    assert expected <= passed, run.stdout
    assert not [p for p in passed if "dotprod" in p]  # another architecture's variant
    filtered = project.scons("test", "--iree-retest", "--iree-test-filter=b/*")
    assert {ln.split(" (")[0] for ln in _lines(filtered.stdout, "PASS")} == {
        "PASS b/more/add.mlir::test_add[local-task]", "PASS b/ops/add.mlir::test_add[local-task]"}


def test_results_from_cachedir_count_as_up_to_date(project: Project, tmp_path_factory) -> None:
    cache = tmp_path_factory.mktemp("cache")
    project.write("SConstruct", f"""\
        from iree_rules import *
        CacheDir({str(cache)!r})
        iree_module(name="mm", src="mm.mlir")
        import numpy as np
        a = np.arange(128, dtype=np.float32).reshape(8, 16) / 10
        b = np.ones((16, 4), np.float32)
        iree_test(name="t0", module="mm", function="mm", inputs=[a, b], expected=lambda a, b: a @ b)
        """)
    project.write("mm.mlir", MATMUL_MLIR)
    first = project.scons("test")
    assert first.returncode == 0, first.output
    assert first.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    assert project.scons("-c", "test").returncode == 0
    again = project.scons("test")
    assert again.returncode == 0, again.output
    assert "PASS t0[local-task] (cached)" in again.stdout
    assert "0 tests run, 1 up to date" in again.stdout
    assert again.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    assert "SKIP" not in again.stdout


def test_scons_test_with_no_tests_says_so(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="add", src="add.mlir")
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert "scons: no tests are declared here (iree_test, iree_check_test_suite); nothing to test" \
        in run.stdout
    assert "Do not know how to make" not in run.output
    assert project.scons("-q", "test").returncode == 0  # nothing to do is up to date
    # A project that declares nothing at all yet.
    project.write("SConstruct", "from iree_rules import *\n")
    empty = project.scons("test")
    assert empty.returncode == 0 and "scons: no tests are declared here" in empty.stdout
    assert "Do not know how to make" not in empty.output


def test_a_second_build_in_the_same_tree_stops_touching_nothing(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        for i in range(6):
            iree_module(name=f"mm{i}", src="mm.mlir", flags=[f"--iree-opt-level=O{i % 4}"])
        """)
    project.write("mm.mlir", MATMUL_MLIR)
    first = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not project.path(".iree_build.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        second = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out2, err2 = second.communicate(timeout=120)
        touched = [p.name for p in project.root.iterdir() if str(second.pid) in p.name]
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert second.returncode == 2
    assert err2.strip().splitlines() == [
        f"scons: *** .iree_build.lock: another scons (PID {first.pid}) is using this tree; "
        "wait for it to finish (nothing was touched)"]
    assert not out2.replace(f"scons: Entering directory `{project.root}'\n", "")
    assert not touched  # its temporary files would carry its PID
    assert project.scons("-q").returncode == 0  # the first build finished whole


def test_a_killed_build_leaves_no_diagnostics_folder(project: Project, tmp_path_factory) -> None:
    tmp = tmp_path_factory.mktemp("tmpdir")  # the build's own TMPDIR: anything it leaves shows
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="mm", src="mm.mlir")
        """)
    project.write("mm.mlir", MATMUL_MLIR)
    proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    time.sleep(2.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(tmp.iterdir())
    assert project.scons().returncode == 0
    assert not [p for p in project.root.iterdir() if ".tmp-" in p.name]


def test_a_stop_sent_to_the_group_while_a_call_runs_is_no_crash(project: Project) -> None:
    """SIGTERM to the whole process group (a CI's cancel) while a worker is in a call: the
    worker dies of it, and the build must learn so from its fork server (which must not die
    of the same signal first), or it prints a CRASH for a test that only was stopped."""
    project.write("SConstruct", """\
        from iree_rules import *
        iree_check_test_suite(name="e2e", srcs=["hang.mlir"], devices=["local-task"], timeout=60)
        """)
    project.write("hang.mlir", HANG_MLIR)
    assert project.scons().returncode == 0  # the module, not yet its test
    for sig in (signal.SIGTERM, signal.SIGHUP):
        proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), "test"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not _run_workers(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # in test_hang's endless loop
            os.killpg(proc.pid, sig)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert not [ln for ln in out.splitlines() if ln.startswith(("CRASH", "FAIL"))], (sig, out, err)
        assert "crash" not in out + err, (sig, out, err)
        assert "INTERRUPTED" in out + err, (sig, out, err)


def _run_workers(pid: int) -> list[int]:
    """The PIDs of the run workers below process ``pid`` (the fork server's children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            todo.append(child)
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if parent != pid and b"run_zygote" in cmd:  # a worker is a fork of the server
                found.append(child)
    return found

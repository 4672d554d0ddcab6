"""``scons test`` at -j1 runs the next test while SCons records the one before, one test at a
time (``rules/read_ahead.py``).

What must hold whatever runs ahead: lines, results and counts exactly as SCons runs
the tests, in its order; nothing of a test that SCons never got to; no test run against
a module that SCons had yet to rebuild. Real ``scons`` processes, compiler and workers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import ADD_MLIR, ENDLESS_LOOP, Project

MUL_SAME_SIGNATURE = ADD_MLIR.replace("arith.addf", "arith.mulf")  # still @add(a, b)

# A call that never returns.
SPIN_MLIR = """\
func.func @spin(%x: tensor<1xi32>) -> tensor<1xi32> {
""" + ENDLESS_LOOP + """\
  return %t : tensor<1xi32>
}
"""


def _tests(names_and_bodies: list[str]) -> str:
    return "from iree_rules import *\nimport numpy as np\n" + "\n".join(names_and_bodies) + "\n"


def _add_test(name: str, module: str = "add", op: str = "+", wrong: bool = False) -> str:
    a, b = [1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]
    want = [x + y if op == "+" else x * y for x, y in zip(a, b, strict=True)]
    if wrong:
        want[0] += 5.0
    return (f"iree_test(name={name!r}, module={module!r}, function='add', inputs=[{a}, {b}], "
            f"expected=[{want}], devices=['local-task'])")


def _result_files(root: Path) -> list[str]:
    return sorted(p.name.split(".")[0] for p in root.rglob("*.result.json"))


def _temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp-*"))


def _verdicts(stdout: str) -> list[str]:
    words = ("PASS ", "FAIL ", "ERROR ", "CRASH ", "TIMEOUT ", "SKIP ")
    return [ln.split(" (")[0] for ln in stdout.splitlines() if ln.startswith(words)]


def test_tests_run_ahead_while_one_hangs_and_report_in_scons_order(project: Project) -> None:
    """t1 hangs until its timeout (run ahead, and waited for by its action), the tests after
    it run one by one; the lines come in SCons' order, the results are those SCons records."""
    project.write("SConstruct", _tests([
        "iree_module(name='add', src='add.mlir', target_backends=['llvm-cpu'], cpu='generic')",
        "iree_module(name='spin', src='spin.mlir', target_backends=['llvm-cpu'], cpu='generic')",
        _add_test("t0"),
        "iree_test(name='t1', module='spin', function='spin', inputs=[np.array([1], np.int32)], "
        "expected=[np.array([0], np.int32)], devices=['local-task'], timeout=4)",
        *(_add_test(f"t{i}") for i in range(2, 6)),
    ]))
    project.write("add.mlir", ADD_MLIR)
    project.write("spin.mlir", SPIN_MLIR)
    assert project.scons().returncode == 0  # the modules; no test runs

    proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), "test", "-k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    assert proc.returncode == 2, out + err
    assert _verdicts(out) == ["PASS t0[local-task]", "TIMEOUT t1[local-task]",
                              *(f"PASS t{i}[local-task]" for i in range(2, 6))], out
    assert out.splitlines()[-1] == "5 passed, 1 failed, 0 skipped"
    assert "6 tests run, 0 up to date" in out
    assert _result_files(project.root) == ["t0", "t2", "t3", "t4", "t5"]
    assert _temp_files(project.root) == []

    # What was run ahead is recorded as SCons ran it: nothing reruns, and the standalone
    # runner takes the results written by the workers as current (same signatures).
    again = project.scons("test", "-k", timeout=120)
    assert _verdicts(again.stdout) == ["TIMEOUT t1[local-task]"], again.output
    runner = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root),
                             "--filter", "t[02345]*"], capture_output=True, text=True, timeout=120)
    assert runner.returncode == 0, runner.stdout + runner.stderr
    assert "0 tests run, 5 up to date" in runner.stdout, runner.stdout


def test_a_build_stopped_by_a_failure_keeps_nothing_of_tests_run_ahead(project: Project) -> None:
    project.write("SConstruct", _tests([
        "iree_module(name='add', src='add.mlir', target_backends=['llvm-cpu'], cpu='generic')",
        _add_test("t0"), _add_test("t1", wrong=True), *(_add_test(f"t{i}") for i in range(2, 8)),
    ]))
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("test")
    assert run.returncode == 2, run.output
    assert _verdicts(run.stdout)[:2] == ["PASS t0[local-task]", "FAIL t1[local-task]"], run.stdout
    assert [v for v in _verdicts(run.stdout) if v.startswith("PASS")] == ["PASS t0[local-task]"]
    assert run.stdout.splitlines()[-1] == "1 passed, 1 failed, 6 skipped"
    assert _result_files(project.root) == ["t0"]  # t2.. ran ahead, but SCons never got to them
    assert _temp_files(project.root) == []

    rest = project.scons("test", "-k")
    assert rest.stdout.splitlines()[-1] == "7 passed, 1 failed, 0 skipped", rest.output
    assert "7 tests run, 1 up to date" in rest.stdout


def test_tests_are_not_run_ahead_of_their_module_being_rebuilt(project: Project) -> None:
    """Tests of module b come after those of module a; when b changes, tests of b must
    see the rebuilt b although they would qualify for running ahead while a's tests run."""
    def write(op: str) -> None:
        project.write("SConstruct", _tests([
            "iree_module(name='a', src='a.mlir', target_backends=['llvm-cpu'], cpu='generic')",
            "iree_module(name='b', src='b.mlir', target_backends=['llvm-cpu'], cpu='generic')",
            *(_add_test(f"a{i}", module="a") for i in range(4)),
            *(_add_test(f"b{i}", module="b", op=op) for i in range(4)),
        ]))
        project.write("b.mlir", ADD_MLIR if op == "+" else MUL_SAME_SIGNATURE)

    project.write("a.mlir", ADD_MLIR)
    write("+")
    first = project.scons("test")
    assert first.stdout.splitlines()[-1] == "8 passed, 0 failed, 0 skipped", first.output
    write("*")
    for result in project.root.rglob("*.result.json"):
        result.unlink()  # so that every test qualifies for running ahead
    second = project.scons("test")
    assert second.returncode == 0, second.output
    assert second.compiled() == ["b.vmfb"]
    assert second.stdout.splitlines()[-1] == "8 passed, 0 failed, 0 skipped"
    assert _temp_files(project.root) == []


def test_results_written_for_a_killed_build_are_swept_by_the_next(project: Project) -> None:
    """t2 runs ahead while SCons rebuilds t1's module; the build is killed while t1 spins,
    before t2's action took its result: the next build sweeps that result away."""
    project.write("SConstruct", _tests([
        "iree_module(name='add', src='add.mlir', target_backends=['llvm-cpu'], cpu='generic')",
        "iree_module(name='spin', src='spin.mlir', target_backends=['llvm-cpu'], cpu='generic')",
        _add_test("t0"),
        "iree_test(name='t1', module='spin', function='spin', inputs=[np.array([1], np.int32)], "
        "expected=[np.array([0], np.int32)], devices=['local-task'], timeout=3)",
        _add_test("t2"), _add_test("t3"),
    ]))
    project.write("add.mlir", ADD_MLIR)
    project.write("spin.mlir", SPIN_MLIR)
    assert project.scons().returncode == 0
    project.write("spin.mlir", "// rebuilt while the tests run\n" + SPIN_MLIR)
    proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), "test"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(".t2." in t for t in _temp_files(project.root)):
            assert proc.poll() is None and time.monotonic() < deadline, "t2 never ran ahead"
            time.sleep(0.02)
    finally:
        proc.kill()  # while spin compiles or t1 spins: t2's result waits under its temporary name
        proc.wait()
    assert any(".t2." in t for t in _temp_files(project.root))

    run = project.scons("test", "-k")
    assert run.stdout.splitlines()[-1] == "3 passed, 1 failed, 0 skipped", run.output
    assert _temp_files(project.root) == []


# A call that takes a few hundred milliseconds of one core, then returns 80000000.
SLOW_MLIR = """\
func.func @slow(%x: tensor<1xi32>) -> tensor<1xi32> {
  %zero = util.unfoldable_constant 0 : i32
  %one = util.unfoldable_constant 1 : i32
  %n = util.unfoldable_constant 80000000 : i32
  %r = scf.while (%i = %zero) : (i32) -> i32 {
    %go = arith.cmpi slt, %i, %n : i32
    scf.condition(%go) %i : i32
  } do {
  ^bb0(%j: i32):
    %k = arith.addi %j, %one : i32
    scf.yield %k : i32
  }
  %t = tensor.from_elements %r : tensor<1xi32>
  return %t : tensor<1xi32>
}
"""


def test_at_j1_no_two_tests_run_at_once(project: Project) -> None:
    """-j1 is one test at a time: from the first test's start to the last test's line, the
    wall time is at least the sum of the tests' own times (tests side by side would make
    it less: three at once on two cores, about half)."""
    from iree_build.testing.results import read_result

    project.write("SConstruct", _tests([
        "iree_module(name='slow', src='slow.mlir', target_backends=['llvm-cpu'], cpu='generic')",
        *(f"iree_test(name='s{i}', module='slow', function='slow', inputs=[np.array([1], np.int32)], "
          "expected=[np.array([80000000], np.int32)], devices=['local-task'])" for i in range(5)),
    ]))
    project.write("slow.mlir", SLOW_MLIR)
    assert project.scons().returncode == 0  # the module; no test runs
    proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), "test", "-j1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrived: dict[str, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("PASS "):
            arrived[line.split()[1]] = time.monotonic()
    assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    times = {p.name.split(".")[0]: read_result(p).time_ms / 1000.0 for p in project.root.glob("*.result.json")}
    assert sorted(times) == [f"s{i}" for i in range(5)] and len(arrived) == 5
    first = min(arrived, key=arrived.get)
    wall = max(arrived.values()) - (arrived[first] - times[first.split("[")[0]])
    assert wall >= 0.98 * sum(times.values()), (wall, times)

"""How much faster ``scons test`` runs many small tests than one CLI process per test.

What is measured
----------------
A temporary project with five small CPU modules (``add``, ``mul``, a small
``matmul``, ``relu``, a row ``reduce_sum``; ``llvm-cpu``, ``cpu=generic``) and
100 ``iree_test`` targets over them on ``local-task``, each with its own random
float32 inputs and the expected outputs computed with numpy. The same data
generator is embedded in the SConstruct (literal arrays, written as ``.npy`` by
the build) and run by this script to pre-write the ``.npy`` files of the CLI
baseline, so both sides check exactly the same values with the same tolerances.

The modules (and the literal ``.npy`` files) are built once before timing:
compiling is not what is measured here (``compile_overhead.py`` does that).
Then, alternating in rounds (``--rounds``, default 3) so that drift in the
machine's load hits all variants alike, medians of:

``scons -j2``
    ``python -m SCons -Q test -j2`` after deleting every ``*.result.json``, so
    that all 100 tests actually run (checked on the ``100 tests run`` line).
    Wall time of the whole SCons process: start-up, reading the SConstruct,
    signatures, one shared ``local-task`` device, the 100 tests, the summary.
``cli x2``
    What a user without the rules runs: per test one process of the venv's
    ``iree-run-module --device=local-task --module=M.vmfb --function=F
    --input=@in0.npy ... --expected_output=@exp0.npy --expected_rtol=R
    --expected_f32_threshold=A``, two processes at a time (like ``-j2``).
``cli x1``
    The same loop, one process after the other.

For the findings, also (each in every round):

``scons -j1``
    As ``scons -j2`` with one job.
``scons cached``
    ``python -m SCons -Q test`` with nothing changed since the previous run:
    the cached rerun, which must run no test (``0 tests run``); its time is
    the fixed cost of a ``scons test`` process, so ``(scons -jN - cached) /
    100`` is the cost per test.
``native x2``, ``native x1``
    The CLI loop with the native ``iree-run-module`` binary. The pip wheel's
    ``iree-run-module`` is a Python console script that starts an interpreter
    and then runs this binary in a subprocess, so most of ``cli``'s time per
    test is that wrapper; a user of a native IREE build runs the binary.

Every variant must pass all 100 tests (exit codes, and for SCons the closing
``100 passed, 0 failed, 0 skipped`` line and ``100 tests run``), or the
benchmark fails. Before timing, the CLI baseline is checked to fail on a wrong
expected value and to honour its tolerance flags, so it really is a test and
not just a run.

Why
---
The rules run every test in long-lived run workers (forked from one server
that imported the runtime) that keep their device and modules, instead of
paying a process start-up, a device (task system) creation and a module load
per test; at ``-j1`` the next tests run ahead in two more workers while SCons
records the current one. The issue's target is a speedup of at least 8 over
the CLI loop, and 0 tests run on an unchanged rerun.

Output: a table, then::

    BENCH runner_vs_cli_speedup X              cli x1 / scons -j1   (target >= 8)
    BENCH runner_vs_cli_parallel_speedup X     cli x2 / scons -j2
    BENCH cached_rerun_tests_run N             tests run by ``scons cached`` (target 0)
    BENCH crash_recovery_ms X                  from a run worker's crash to the next case
                                               starting (target <= 300)

The headline figure compares like with like as a user meets them: the issue's
baseline is a loop of one ``iree-run-module`` process per test, and ``scons
test`` is run as typed (one job). CPU tests gain little from ``-j2`` (each
takes ~0.1 ms of device work; the rest is Python holding the GIL), while two
CLI processes at a time do use both cores, so the parallel figure is printed
beside it rather than hidden.

Run: ``python benchmarks/test_runner.py [--rounds N] [--keep] [--diagnose]``.
``--diagnose`` (implied when the speedup target is missed) adds probes of where
``scons test``'s time goes: interpreter and ``iree.runtime`` start-up, device
creation, SCons start-up, per-test times from the PASS lines, one CLI process,
and the phases of one ``scons test`` process (an instrumented copy of the
SConstruct, ``-j1``/``-j2``, with and without the rules' runtime-version
lookup memoized).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import user_tool, wall, workdir

N_TESTS = 100
JOBS = 2
SPEEDUP_TARGET = 8.0

# --------------------------------------------------------------------------
# The modules and the test data
# --------------------------------------------------------------------------

MODULES: dict[str, str] = {
    "add": """\
func.func @add(%a: tensor<16xf32>, %b: tensor<16xf32>) -> tensor<16xf32> {
  %0 = arith.addf %a, %b : tensor<16xf32>
  return %0 : tensor<16xf32>
}
""",
    "mul": """\
func.func @mul(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = arith.mulf %a, %b : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
""",
    "matmul": """\
func.func @matmul(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>) -> tensor<8x4xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
""",
    "relu": """\
func.func @relu(%a: tensor<32xf32>) -> tensor<32xf32> {
  %zero = arith.constant dense<0.0> : tensor<32xf32>
  %0 = arith.maximumf %a, %zero : tensor<32xf32>
  return %0 : tensor<32xf32>
}
""",
    "reduce_sum": """\
func.func @reduce_sum(%a: tensor<8x32xf32>) -> tensor<8xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<8xf32>) -> tensor<8xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%a : tensor<8x32xf32>) outs(%z : tensor<8xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %s = arith.addf %x, %acc : f32
    linalg.yield %s : f32
  } -> tensor<8xf32>
  return %r : tensor<8xf32>
}
""",
}

# The test data, as code: embedded in the SConstruct and exec'd by this script,
# so that the rules and the CLI baseline check identical values.
DATA_CODE = textwrap.dedent("""\
    import numpy as np

    def make_tests(n):
        \"\"\"n tests: (name, module, function, inputs, expected, rtol, atol).\"\"\"
        rng = np.random.default_rng(20240611)
        kinds = [
            ("add", [(16,), (16,)], lambda a, b: a + b, 1e-5, 1e-6),
            ("mul", [(4, 8), (4, 8)], lambda a, b: a * b, 1e-5, 1e-6),
            ("matmul", [(8, 16), (16, 4)], lambda a, b: a @ b, 1e-4, 1e-4),
            ("relu", [(32,)], lambda a: np.maximum(a, np.float32(0)), 1e-5, 1e-6),
            ("reduce_sum", [(8, 32)], lambda a: a.sum(axis=1), 1e-4, 1e-4),
        ]
        tests = []
        for i in range(n):
            module, shapes, ref, rtol, atol = kinds[i % len(kinds)]
            inputs = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
            expected = [np.asarray(ref(*inputs), dtype=np.float32)]
            tests.append((f"t{i:03d}_{module}", module, module, inputs, expected, rtol, atol))
        return tests
""")

SCONSTRUCT = """\
from iree_rules import *

{data_code}
for name in {modules!r}:
    iree_module(name=name, src=name + ".mlir", target_backends=["llvm-cpu"], cpu="generic")

for name, module, function, inputs, expected, rtol, atol in make_tests({n}):
    iree_test(name=name, module=module, function=function, inputs=inputs, expected=expected,
              devices=["local-task"], rtol=rtol, atol=atol)
"""


@dataclass
class CliTest:
    name: str
    argv: list[str]  # the full iree-run-module command line


def make_tests(n: int) -> list[tuple[str, str, str, list[np.ndarray], list[np.ndarray], float, float]]:
    namespace: dict[str, Any] = {}
    exec(DATA_CODE, namespace)
    return namespace["make_tests"](n)


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------

PASS_TIME = re.compile(r"^PASS (\S+) \(([\d.]+) ms\)$", re.M)
RAN = re.compile(r"^(\d+) tests? run, (\d+) up to date", re.M)
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)


@dataclass
class SconsRun:
    wall_s: float
    ran: int
    up_to_date: int
    passed: int
    failed: int
    skipped: int
    pass_ms: list[float]
    stdout: str


@dataclass
class Bench:
    root: Path  # the SCons project (also holds the built modules)
    cli_dir: Path  # pre-written .npy files for the CLI baseline
    run_module: str
    native_run_module: str | None  # the binary the console script wraps, if found
    env: dict[str, str]
    cli_tests: list[CliTest] = field(default_factory=list)
    scons_runs: list[SconsRun] = field(default_factory=list)  # full runs at -jJOBS
    cached_runs: list[SconsRun] = field(default_factory=list)

    # -- SCons ---------------------------------------------------------------

    def scons(self, *args: str) -> tuple[subprocess.CompletedProcess, float]:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=self.root,
                              env=self.env, capture_output=True, text=True)
        return proc, time.perf_counter() - t

    def scons_test(self, *args: str) -> SconsRun:
        proc, wall = self.scons("test", *args)
        ran, summary = RAN.search(proc.stdout), SUMMARY.search(proc.stdout)
        if proc.returncode != 0 or not ran or not summary:
            raise SystemExit(f"error: scons test {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        p, f, s = (int(x) for x in summary.groups())
        return SconsRun(wall, int(ran.group(1)), int(ran.group(2)), p, f, s,
                        [float(m) for _, m in PASS_TIME.findall(proc.stdout)], proc.stdout)

    def delete_results(self) -> int:
        paths = list(self.root.glob("*.result.json"))
        for p in paths:
            p.unlink()
        return len(paths)

    def scons_full(self, jobs: int | None = None) -> float:
        """All 100 tests run (results deleted first); the whole process' wall time."""
        jobs = jobs or JOBS
        self.delete_results()
        run = self.scons_test(f"-j{jobs}")
        if run.ran != N_TESTS or (run.passed, run.failed, run.skipped) != (N_TESTS, 0, 0):
            raise SystemExit(f"error: scons -j{jobs} ran {run.ran} tests, {run.passed} passed, "
                             f"{run.failed} failed, {run.skipped} skipped; expected {N_TESTS} run "
                             f"and passed:\n{run.stdout[-3000:]}")
        if len(run.pass_ms) != N_TESTS:
            raise SystemExit(f"error: {len(run.pass_ms)} PASS lines, expected {N_TESTS}")
        if jobs == JOBS:
            self.scons_runs.append(run)
        return run.wall_s

    def scons_cached(self) -> float:
        """``scons -Q test`` with nothing changed since the last run: no test may run."""
        run = self.scons_test()
        if (run.passed, run.failed, run.skipped) != (N_TESTS, 0, 0):
            raise SystemExit(f"error: cached rerun: {run.passed} passed, {run.failed} failed, "
                             f"{run.skipped} skipped")
        self.cached_runs.append(run)
        return run.wall_s

    # -- the CLI baseline ----------------------------------------------------

    def cli_one(self, test: CliTest, native: bool = False) -> subprocess.CompletedProcess:
        argv = test.argv
        if native:
            assert self.native_run_module
            argv = [self.native_run_module, *argv[1:]]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True)

    def cli(self, workers: int, native: bool = False) -> float:
        """The CLI loop, ``workers`` processes at a time; ``native``: the wrapped binary."""
        t = time.perf_counter()
        if workers == 1:
            procs = [self.cli_one(x, native) for x in self.cli_tests]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                procs = list(pool.map(lambda x: self.cli_one(x, native), self.cli_tests))
        elapsed = time.perf_counter() - t
        bad = [(x.name, p) for x, p in zip(self.cli_tests, procs, strict=False) if p.returncode != 0]
        if len(procs) != N_TESTS:
            raise SystemExit(f"error: {len(procs)} CLI processes ran, expected {N_TESTS}")
        if bad:
            name, p = bad[0]
            raise SystemExit(f"error: {len(bad)} CLI tests failed; first {name} ({p.returncode}):\n"
                             f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        return elapsed


def cli_argv(run_module: str, module: Path, function: str, inputs: list[Path],
             expected: list[Path], rtol: float, atol: float) -> list[str]:
    return [
        run_module, "--device=local-task", f"--module={module}", f"--function={function}",
        *[f"--input=@{p}" for p in inputs],
        *[f"--expected_output=@{p}" for p in expected],
        f"--expected_rtol={rtol!r}", f"--expected_f32_threshold={atol!r}",
    ]


def find_run_module() -> str:
    return user_tool("iree-run-module")


def find_native_run_module(exe: str) -> str | None:
    """The native binary behind the pip wheel's ``iree-run-module`` console script.

    The wheel installs a Python script that starts an interpreter, imports
    ``iree._runtime`` and then runs this binary in a subprocess; the binary
    alone is what a user with a native IREE build (or the full path) runs.
    """
    try:
        head = Path(exe).read_bytes()[:2]
    except OSError:
        return None
    if head != b"#!":
        return None  # already a binary
    proc = subprocess.run([sys.executable, "-c", "from iree._runtime import libs; print(libs.library_path)"],
                          capture_output=True, text=True)
    native = Path(proc.stdout.strip()) / "iree-run-module"
    return str(native) if proc.returncode == 0 and native.is_file() else None


def setup(tmp: Path) -> Bench:
    root, cli_dir = tmp / "project", tmp / "cli"
    root.mkdir(parents=True)
    cli_dir.mkdir(parents=True)
    for name, text in MODULES.items():
        (root / f"{name}.mlir").write_text(text)
    (root / "SConstruct").write_text(SCONSTRUCT.format(
        data_code=DATA_CODE, modules=list(MODULES), n=N_TESTS))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    run_module = find_run_module()
    bench = Bench(root=root, cli_dir=cli_dir, run_module=run_module,
                  native_run_module=find_native_run_module(run_module), env=env)

    tests = make_tests(N_TESTS)
    names = [t[0] for t in tests]
    if len(set(names)) != N_TESTS:
        raise SystemExit("error: test names are not distinct")
    seen: set[bytes] = set()
    for name, module, function, inputs, expected, rtol, atol in tests:
        key = b"".join(a.tobytes() for a in inputs)
        if key in seen:
            raise SystemExit(f"error: {name} repeats another test's inputs")
        seen.add(key)
        in_paths = [cli_dir / f"{name}.in{i}.npy" for i in range(len(inputs))]
        exp_paths = [cli_dir / f"{name}.exp{i}.npy" for i in range(len(expected))]
        for p, a in zip(in_paths + exp_paths, inputs + expected, strict=False):
            np.save(p, a, allow_pickle=False)
        bench.cli_tests.append(CliTest(name, cli_argv(
            bench.run_module, root / f"{module}.vmfb", function, in_paths, exp_paths, rtol, atol)))
    return bench


def build(bench: Bench) -> None:
    """Compile the modules and write the literal .npy files (not timed)."""
    proc, wall = bench.scons(f"-j{JOBS}", ".")
    if proc.returncode != 0:
        raise SystemExit(f"error: building the modules failed:\n{proc.stdout}\n{proc.stderr}")
    missing = [m for m in MODULES if not (bench.root / f"{m}.vmfb").is_file()]
    if missing:
        raise SystemExit(f"error: modules not built: {missing}")
    print(f"built {len(MODULES)} modules and the test data in {wall:.1f} s (not timed)")


def check_same_data(bench: Bench) -> None:
    """The .npy files the build wrote equal the CLI's pre-written ones."""
    for t in bench.cli_tests:
        for arg in t.argv:
            if arg.startswith(("--input=@", "--expected_output=@")):
                cli_path = Path(arg.split("@", 1)[1])
                stem, kind = cli_path.name.split(".")[:2]
                built = bench.root / (f"{stem}.input{kind[2:]}.npy" if kind.startswith("in")
                                      else f"{stem}.expected{kind[3:]}.npy")
                if not built.is_file():
                    raise SystemExit(f"error: the build did not write {built.name}")
                a, b = np.load(cli_path), np.load(built)
                if a.dtype != b.dtype or not np.array_equal(a, b):
                    raise SystemExit(f"error: {built.name} differs from the CLI's {cli_path.name}")


def check_cli_is_a_test(bench: Bench) -> None:
    """iree-run-module must fail on a wrong value and honour its tolerance flags."""
    t = next(x for x in bench.cli_tests if x.name.endswith("_add"))
    exp_arg = next(a for a in t.argv if a.startswith("--expected_output=@"))
    expected = np.load(exp_arg.split("@", 1)[1])
    probe = bench.cli_dir / "probe.npy"

    def run_with(values: np.ndarray, rtol: float, atol: float) -> int:
        np.save(probe, values.astype(np.float32), allow_pickle=False)
        argv = [a for a in t.argv if not a.startswith("--expected_")]
        argv += [f"--expected_output=@{probe}", f"--expected_rtol={rtol!r}",
                 f"--expected_f32_threshold={atol!r}"]
        return subprocess.run(argv, env=bench.env, capture_output=True).returncode

    off = expected.copy()
    off[3] += 0.01
    scaled = expected * np.float32(1.01)
    checks = [
        ("exact values pass", run_with(expected, 1e-5, 1e-6) == 0),
        ("one element off by 0.01 fails", run_with(off, 1e-5, 1e-6) != 0),
        ("it passes with --expected_f32_threshold=0.02", run_with(off, 1e-5, 0.02) == 0),
        ("values 1% off fail with rtol 1e-3", run_with(scaled, 1e-3, 0.0) != 0),
        ("and pass with --expected_rtol=0.02", run_with(scaled, 0.02, 0.0) == 0),
    ]
    probe.unlink()
    failed = [what for what, ok in checks if not ok]
    if failed:
        raise SystemExit("error: iree-run-module does not check as expected: " + "; ".join(failed))
    print("iree-run-module checks outputs: " + "; ".join(what for what, _ in checks))


# --------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------

DEVICE_PROBE = textwrap.dedent("""\
    import time
    t0 = time.perf_counter()
    import iree.runtime as rt
    t1 = time.perf_counter()
    d = rt.get_driver("local-task").create_default_device()
    t2 = time.perf_counter()
    print(f"{t1 - t0:.4f} {t2 - t1:.4f}")
""")

# Put at the top of a copy of the SConstruct (``scons -f SConstruct.phases``):
# wall-clock marks between the phases of one ``scons test`` process, printed at
# exit as ``PHASE name ms``; BENCH_CACHE_VERSION=1 memoizes the rules'
# ``_runtime_version`` (an importlib.metadata lookup per action signature) to
# show what that would save. Marks are relative to BENCH_T0 (set just before
# the process is started), so the first phase includes interpreter start-up.
PHASES_HEAD = textwrap.dedent("""\
    import atexit as _atexit, functools as _functools, os as _os, sys as _sys, time as _time
    _marks = [("python + SCons start-up", _time.time())]
    def _mark(name):
        _marks.append((name, _time.time()))
    import numpy
    _mark("import numpy")
    from iree_rules import *
    _mark("import iree_rules")
    import iree_rules.test_rule as _tr
    _calls = [0]
    _version = getattr(_tr, "_runtime_version", None)  # absent if the rules changed: no probe
    if _version is not None:
        if _os.environ.get("BENCH_CACHE_VERSION"):
            _version = _functools.cache(_version)
        def _counted_version():
            _calls[0] += 1
            return _version()
        _tr._runtime_version = _counted_version
    _run = _tr.TEST_ACTION.execfunction
    def _timed_run(target, source, env):
        if not any(n == "tests (actions + SCons between them)" for n, _ in _marks):
            _mark("SCons: scan, signatures until the 1st test")
        try:
            return _run(target, source, env)
        finally:
            _mark("tests (actions + SCons between them)")
    _tr.TEST_ACTION.execfunction = _timed_run
    def _report():
        prev, total = float(_os.environ["BENCH_T0"]), {}
        for name, t in _marks:
            total[name] = total.get(name, 0.0) + t - prev
            prev = t
        total["summary, JUnit, exit"] = _time.time() - prev
        for name, d in total.items():
            _sys.stderr.write(f"PHASE {name}|{d * 1000:.1f}\\n")
        _sys.stderr.write(f"PHASE_VERSION_CALLS {_calls[0]}\\n")
    _atexit.register(_report)
""")


def phases_sconstruct(text: str) -> str:
    """The benchmark's SConstruct with :data:`PHASES_HEAD` and marks between its parts."""
    text = text.replace("from iree_rules import *\n", PHASES_HEAD, 1)
    text = text.replace("\nfor name in ", "\n_mark('SConstruct: data code')\nfor name in ", 1)
    text = text.replace("\nfor name, module,", "\n_mark('SConstruct: 5 iree_module')\nfor name, module,", 1)
    return text + "_mark('SConstruct: 100 iree_test')\n"


def run_phases(bench: Bench, jobs: int, cache_version: bool) -> tuple[dict[str, float], int, float]:
    """One instrumented ``scons test -jN`` with all tests run: (phase ms, version calls, wall s)."""
    bench.delete_results()
    env = dict(bench.env, BENCH_T0=repr(time.time()))
    if cache_version:
        env["BENCH_CACHE_VERSION"] = "1"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", "-f", "SConstruct.phases", "test", f"-j{jobs}"],
                          cwd=bench.root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    ran = RAN.search(proc.stdout)
    if proc.returncode != 0 or not ran or int(ran.group(1)) != N_TESTS:
        raise SystemExit(f"error: instrumented scons test failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    phases: dict[str, float] = {}
    calls = 0
    for line in proc.stderr.splitlines():
        if line.startswith("PHASE "):
            name, ms = line[6:].rsplit("|", 1)
            phases[name] = float(ms)
        elif line.startswith("PHASE_VERSION_CALLS "):
            calls = int(line.split()[1])
    return phases, calls, wall


def diagnose(bench: Bench) -> None:
    """Where the time of ``scons test`` goes, in a few probes (medians of 3)."""
    env, py = bench.env, sys.executable
    print("\ndiagnostics (medians of 3):")

    def med(fn: Callable[[], object]) -> float:
        return statistics.median(wall(fn) for _ in range(3))

    bare = med(lambda: subprocess.run([py, "-c", "pass"], env=env, check=True))
    print(f"  python start-up                                  {bare:7.3f} s")
    probes = [subprocess.run([py, "-c", DEVICE_PROBE], env=env, check=True, capture_output=True,
                             text=True).stdout.split() for _ in range(3)]
    imp = statistics.median(float(p[0]) for p in probes)
    dev = statistics.median(float(p[1]) for p in probes)
    print(f"  import iree.runtime (in-process)                 {imp:7.3f} s")
    print(f"  create the local-task device (in-process)        {dev:7.3f} s")
    sc_help = med(lambda: bench.scons("-h"))
    print(f"  scons -Q -h (start-up, read SConstruct)          {sc_help:7.3f} s")
    one = []
    for _ in range(3):
        next(iter(bench.root.glob("*.result.json"))).unlink()
        run = bench.scons_test()
        if run.ran != 1:
            raise SystemExit(f"error: expected 1 test to run, {run.ran} ran")
        one.append(run.wall_s)
    print(f"  scons -Q test, one test to run                   {statistics.median(one):7.3f} s")
    pass_ms = [ms for r in bench.scons_runs for ms in r.pass_ms]
    per_run_ms = statistics.median(sum(r.pass_ms) for r in bench.scons_runs)
    print(f"  PASS times (the invoke alone, per test): median {statistics.median(pass_ms):.2f} ms, "
          f"max {max(pass_ms):.1f} ms, sum per run {per_run_ms / 1000:.3f} s")
    cli_one = med(lambda: bench.cli_one(bench.cli_tests[0]))
    print(f"  one iree-run-module process (console script)     {cli_one:7.3f} s")
    if bench.native_run_module:
        native_one = med(lambda: bench.cli_one(bench.cli_tests[0], native=True))
        print(f"  one native iree-run-module process               {native_one:7.3f} s")

    # Phases of one scons test process, -j1 and -jN, as is and with the version memoized.
    (bench.root / "SConstruct.phases").write_text(phases_sconstruct((bench.root / "SConstruct").read_text()))
    configs = [(1, False), (JOBS, False), (1, True), (JOBS, True)]
    runs: dict[tuple[int, bool], list[tuple[dict[str, float], int, float]]] = {c: [] for c in configs}
    for _ in range(3):
        for c in configs:
            runs[c].append(run_phases(bench, *c))
    names = list(runs[configs[0]][0][0])
    heads = [f"-j{j}" + (" memo" if m else "") for j, m in configs]
    print(f"\n  phases of one `scons -Q test` with all {N_TESTS} tests run (median ms; 'memo' = "
          "_runtime_version memoized):")
    print(f"    {'phase':<44}" + "".join(f"{h:>10}" for h in heads))
    for name in names:
        print(f"    {name:<44}" + "".join(
            f"{statistics.median(r[0].get(name, 0.0) for r in runs[c]):10.1f}" for c in configs))
    print(f"    {'whole process (wall)':<44}" + "".join(
        f"{statistics.median(r[2] for r in runs[c]) * 1000:10.1f}" for c in configs))
    print(f"    {'_runtime_version() calls':<44}" + "".join(f"{runs[c][0][1]:>10}" for c in configs))
    bench.delete_results()
    bench.scons_test()  # leave every result recorded again


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


CRASH_PAIRS = 8


def crash_recovery(tmp: Path, rounds: int) -> float | None:
    """Median ms from a run worker's crash to the next case's request in a ready worker.

    A check file of CRASH_PAIRS cases whose kernel writes through a null pointer,
    each followed by a passing case, runs through the build's run pool; every crash
    must be reported as CRASH and every other case must pass. None where the
    crashing kernel cannot be built (not x86-64, no ``cc``).
    """
    import platform
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from crash_kernel import CRASH_C, CRASH_CASE, OK_CASE, crash_module

    from iree_build.testing.manifest import load_manifest
    from iree_build.testing.results import flatten
    from iree_build.testing.run_pool import RunPool

    if platform.machine() != "x86_64" or shutil.which("cc") is None:
        print("crash recovery: not measured (the crashing kernel needs x86-64 and cc)")
        return None
    root = tmp / "crash"
    (root / "kernels").mkdir(parents=True)
    (root / "kernels" / "crash.c").write_text(CRASH_C)
    cases = "".join(CRASH_CASE.format(name=f"test_crash_{i}") + OK_CASE.format(name=f"test_ok_{i}")
                    for i in range(CRASH_PAIRS))
    (root / "crashes.mlir").write_text(crash_module(cases))
    (root / "SConstruct").write_text(
        "from iree_rules import *\n"
        "Object('kernels/crash_x86_64.o', 'kernels/crash.c',\n"
        "       CCFLAGS='-O1 -ffreestanding -fno-builtin -fno-stack-protector -fPIC')\n"
        "iree_check_test_suite(name='crashes', srcs=['crashes.mlir'], devices=['local-task'])\n")
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", "-C", str(root), "."],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: building the crash module failed:\n{proc.stdout}\n{proc.stderr}")
    (spec,) = load_manifest(root / "iree_tests.json").tests
    pool = RunPool()
    try:
        pool.run_test(spec, root)  # warm-up: the first worker and the spare
        pool.recoveries_ms.clear()
        for _ in range(rounds):
            result = pool.run_test(spec, root)
            got = sorted((r.name.split("::")[1].split("[")[0].rsplit("_", 1)[0], r.status)
                         for r in flatten([result]))
            want = sorted([("test_crash", "crashed"), ("test_ok", "passed")] * CRASH_PAIRS)
            if got != want:
                raise SystemExit(f"error: the crash file gave {got}")
    finally:
        pool.close()
    samples = pool.recoveries_ms
    print(f"crash recovery: {len(samples)} crashes, median {statistics.median(samples):.1f} ms, "
          f"min {min(samples):.1f}, max {max(samples):.1f} (from noticing the crash to the next "
          "case's request in a ready worker)")
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    global JOBS
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the variants (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    ap.add_argument("--diagnose", action="store_true",
                    help="probe where scons test's time goes (also when the target is missed)")
    ap.add_argument("--jobs", type=int, default=JOBS,
                    help="the parallel variants' -j and CLI processes at a time (default 2)")
    args = ap.parse_args(argv)
    JOBS = args.jobs
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    with workdir("iree_test_runner_", args.keep) as tmp:
        bench = setup(tmp)
        print(f"{N_TESTS} tests over {len(MODULES)} modules ({', '.join(MODULES)}) on local-task")
        print(f"iree-run-module: {bench.run_module}; cores: {os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.2f}")
        if bench.native_run_module:
            print(f"  (a Python console script; the native binary it runs, timed as 'native': "
                  f"{bench.native_run_module})")
        build(bench)
        check_same_data(bench)
        check_cli_is_a_test(bench)
        bench.cli(JOBS)  # warm-up: page cache, every test checked once
        bench.scons_full()
        bench.scons_runs.clear()

        variants: dict[str, Callable[[], float]] = {
            f"scons -j{JOBS}": bench.scons_full,
            "scons -j1": lambda: bench.scons_full(1),
            "scons cached": bench.scons_cached,  # nothing changed since the -j1 run
            f"cli x{JOBS}": lambda: bench.cli(JOBS),
            "cli x1": lambda: bench.cli(1),
        }
        if bench.native_run_module:  # for the findings: the binary without its Python wrapper
            variants[f"native x{JOBS}"] = lambda: bench.cli(JOBS, native=True)
            variants["native x1"] = lambda: bench.cli(1, native=True)
        results: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            for name, fn in variants.items():
                results[name].append(fn())
            print(f"round {r + 1}/{args.rounds}: "
                  + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()), flush=True)

        print(f"load average {os.getloadavg()[0]:.2f} (above ~0.5, other processes share the "
              f"{os.cpu_count()} cores and the figures are noisy)")
        med = {k: statistics.median(v) for k, v in results.items()}
        s = med[f"scons -j{JOBS}"]
        speedup = med["cli x1"] / med["scons -j1"]
        par_speedup = med[f"cli x{JOBS}"] / s
        cached_ran = max(run.ran for run in bench.cached_runs)
        print()
        print(f"{'variant':<13} {'median s':>9} {'per test ms':>12} {'min s':>7} {'max s':>7}  checked")
        for k, v in results.items():
            if k == "scons cached":
                what = f"{cached_ran} run, {bench.cached_runs[-1].up_to_date} up to date (max over rounds)"
            elif k.startswith("scons"):
                what = f"{N_TESTS} run, {N_TESTS} passed"
            else:
                what = f"{N_TESTS} processes exited 0"
            print(f"{k:<13} {med[k]:9.3f} {med[k] / N_TESTS * 1000:12.1f} {min(v):7.3f} {max(v):7.3f}  {what}")
        print(f"speedup vs scons -j{JOBS}: " + ", ".join(
            f"{k} {med[k] / s:.2f}x" for k in results if not k.startswith("scons")))
        print(f"scons per test beyond the cached run: -j{JOBS} "
              f"{(s - med['scons cached']) / N_TESTS * 1000:.1f} ms, -j1 "
              f"{(med['scons -j1'] - med['scons cached']) / N_TESTS * 1000:.1f} ms")

        if args.diagnose or speedup < SPEEDUP_TARGET:
            diagnose(bench)
        recovery = crash_recovery(tmp, args.rounds)

        print()
        print(f"BENCH runner_vs_cli_speedup {speedup:.3f}")
        print(f"BENCH runner_vs_cli_parallel_speedup {par_speedup:.3f}")
        print(f"BENCH cached_rerun_tests_run {cached_ran}")
        if recovery is not None:
            print(f"BENCH crash_recovery_ms {recovery:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

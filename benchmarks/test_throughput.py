"""Tests at the machine's speed: the runner and ``scons test`` against native ``iree-run-module``.

What is measured
----------------
For each size (``--sizes``, default 100 and 1000) a temporary project of three tiny
CPU modules (``add``, ``mul``, ``relu``; ``llvm-cpu``, ``cpu=generic``) and that many
``iree_test`` targets over them on ``local-task``, each with its own random inputs
and numpy's expected outputs (literal arrays in the SConstruct). Built once, not
timed. Then, interleaved in rounds (``--rounds``, default 3), medians of the wall
time of:

``native x2``    the native ``iree-run-module`` binary of the runtime wheel, one
                 process per test on the build's own ``.npy`` files, two at a time
``runner -j2``   ``python -m iree_build test DIR --retest -j 2`` (every test runs)
``runner -j1``   the same with ``-j 1``
``scons -j2``    ``python -m SCons -Q test -j2`` after deleting every result file
``scons cached`` ``python -m SCons -Q test`` with nothing to do (``0 tests run``)
``plain noop``   a no-op ``scons -Q test`` of a plain-SCons project of the same
                 graph: per module a ``Command`` copying the source, per test a
                 ``Command`` from the module and its ``.npy`` files, under ``test``
``plain -j2``    the plain project's ``scons -Q test -j2`` after deleting its result
                 files: each test's action only writes a small JSON file. No test
                 runs: SCons' own cost for this graph with one node per test
``runner one``   ``python -m iree_build test DIR --retest -j 2`` with a ``--filter``
                 that selects the first test only: what a run costs apart from its
                 tests (start-up, the runtime's import, the manifest, the reports)

Every variant is checked to pass all tests (exit codes, ``N passed, 0 failed, 0
skipped`` and ``N tests run``); before timing, each is checked to fail one wrong
expected value (``BENCH_WRONG=1`` shifts the first test's expectation by 1).

Output, per size N::

    BENCH nN_<variant>_s X                     medians, seconds
    BENCH nN_runner_j2_vs_native X             native x2 / runner -j2  (>= 3 at 1000, 1.5 at 100)
    BENCH nN_runner_j2_vs_j1 X                 runner -j1 / runner -j2 (>= 1.6)
    BENCH nN_scons_j2_vs_native X              native x2 / scons -j2   (>= 2 at 1000, 1 at 100)
    BENCH nN_scons_ms_per_test_beyond_cached X (scons -j2 - cached) / N in ms (<= 0.7)
    BENCH nN_cached_vs_plain_noop X            scons cached / plain noop (<= 1.2)
    BENCH nN_plain_j2_vs_native X              native x2 / plain -j2: plain SCons, one node per
                                               test, running no test at all
    BENCH nN_plain_ms_per_test_beyond_noop X   (plain -j2 - plain noop) / N in ms
    BENCH nN_runner_one_vs_native X            native x2 / runner one: the most the runner can reach
                                               at this size, were its tests free

Check suites (``--check-files F``, default 40; 0 leaves them out): one
``iree_check_test_suite`` over ``F`` small check files of
``check_suite.py`` (two or three cases each, ``llvm-cpu`` on ``local-task``),
compiled once, not timed. Each file is one test whose cases run in one run-worker
call; the files run in parallel. The variants, in the same rounds: ``native x2``
(per case one native ``iree-run-module --function=CASE``, two at a time; it does
less, since it treats the ``check`` imports as optional and judges nothing),
``runner -j2``, ``runner -j1``, ``scons -j2`` (result files deleted) and
``scons cached``. Every variant must run every case; the runner and SCons are
checked to fail a wrong check (a file added by ``BENCH_WRONG=1``)::

    BENCH checksC_<variant>_s X                C cases, medians, seconds
    BENCH checksC_runner_j2_vs_native X
    BENCH checksC_runner_j2_vs_j1 X
    BENCH checksC_scons_j2_vs_native X

``--jobs N`` (default 2) measures N at a time instead of 2 (the native loop, the runner's
``-j`` and ``scons -j``), for a machine of more cores; the names say N (``runner_jN``).

Run: ``python benchmarks/test_throughput.py [--rounds N] [--sizes 100,1000]
[--check-files F] [--jobs N] [--keep]``.
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
from pathlib import Path

import numpy as np
from _common import workdir
from test_runner import MODULES as ALL_MODULES
from test_runner import find_native_run_module, find_run_module

MODULES = {k: ALL_MODULES[k] for k in ("add", "mul", "relu")}

DATA_CODE = textwrap.dedent("""\
    import os
    import numpy as np

    def make_tests(n):
        rng = np.random.default_rng(20261205)
        kinds = [
            ("add", [(16,), (16,)], lambda a, b: a + b),
            ("mul", [(4, 8), (4, 8)], lambda a, b: a * b),
            ("relu", [(32,)], lambda a: np.maximum(a, np.float32(0))),
        ]
        tests = []
        for i in range(n):
            module, shapes, ref = kinds[i % len(kinds)]
            inputs = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
            expected = np.asarray(ref(*inputs), dtype=np.float32)
            if i == 0 and os.environ.get("BENCH_WRONG"):
                expected = expected + np.float32(1)
            tests.append((f"t{i:04d}_{module}", module, inputs, expected))
        return tests
""")

SCONSTRUCT = """\
from iree_rules import *

{data_code}
for name in {modules!r}:
    iree_module(name=name, src=name + ".mlir", target_backends=["llvm-cpu"], cpu="generic")

for name, module, inputs, expected in make_tests({n}):
    iree_test(name=name, module=module, function=module, inputs=inputs, expected=[expected],
              devices=["local-task"], rtol=1e-5, atol=1e-6)
"""

PLAIN = """\
import json

def copy(target, source, env):
    with open(str(target[0]), "wb") as out, open(str(source[0]), "rb") as src:
        out.write(src.read())

def result(target, source, env):
    with open(str(target[0]), "w") as out:
        json.dump({{"status": "passed", "sources": [str(s) for s in source]}}, out)

env = Environment(tools=[])
top = env.Dir("#")
for name in {modules!r}:
    env.Command(name + ".vmfb", name + ".mlir", copy)
for name, module, n_inputs in {tests!r}:
    files = [module + ".vmfb", *[f"{{name}}.input{{i}}.npy" for i in range(n_inputs)],
             name + ".expected0.npy"]
    r = env.Command(name + ".result.json", files, result)
    env.Alias("test", r)
    env.Ignore(top, r)
"""

JOBS = 2
"""``--jobs``: how many at a time (the native loop, the runner's -j and scons' -j)."""

RAN = re.compile(r"^(\d+) tests? run, (\d+) up to date", re.M)
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)


def make_tests(n: int) -> list[tuple[str, str, list[np.ndarray], np.ndarray]]:
    namespace: dict = {}
    exec(DATA_CODE, namespace)
    return namespace["make_tests"](n)


class Project:
    def __init__(self, tmp: Path, n: int, native: str) -> None:
        self.n, self.native = n, native
        self.root, self.plain = tmp / f"n{n}", tmp / f"n{n}_plain"
        self.env = dict(os.environ)
        self.env.pop("BENCH_WRONG", None)
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.root.mkdir(parents=True)
        for name, text in MODULES.items():
            (self.root / f"{name}.mlir").write_text(text)
        (self.root / "SConstruct").write_text(SCONSTRUCT.format(data_code=DATA_CODE, modules=list(MODULES), n=n))
        self.tests = [(name, module, len(inputs)) for name, module, inputs, _ in make_tests(n)]
        self.argv = [[native, "--device=local-task", f"--module={self.root / module}.vmfb",
                      f"--function={module}",
                      *[f"--input=@{self.root / name}.input{i}.npy" for i in range(k)],
                      f"--expected_output=@{self.root / name}.expected0.npy",
                      "--expected_rtol=1e-05", "--expected_f32_threshold=1e-06"]
                     for name, module, k in self.tests]

    def _run(self, argv: list[str], cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
        t = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env or self.env, capture_output=True, text=True)
        return proc, time.perf_counter() - t

    def scons(self, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
        return self._run([sys.executable, "-m", "SCons", "-Q", *args], self.root, env)

    def build(self) -> None:
        t = time.perf_counter()
        proc, _ = self.scons(f"-j{JOBS}", "test")
        self._expect(proc, "first build", self.n, 0)
        self.plain.mkdir()
        for name in MODULES:
            (self.plain / f"{name}.mlir").write_text(MODULES[name])
        for f in self.root.glob("*.npy"):
            (self.plain / f.name).write_bytes(f.read_bytes())
        (self.plain / "SConstruct").write_text(PLAIN.format(modules=list(MODULES), tests=self.tests))
        proc, _ = self._run([sys.executable, "-m", "SCons", "-Q", f"-j{JOBS}", "test"], self.plain)
        if proc.returncode != 0:
            raise SystemExit(f"error: plain build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        print(f"n={self.n}: built in {time.perf_counter() - t:.1f} s (not timed)", flush=True)

    def _expect(self, proc: subprocess.CompletedProcess, what: str, passed: int, failed: int,
                ran: int | None = None) -> None:
        summary, got_ran = SUMMARY.search(proc.stdout), RAN.search(proc.stdout)
        ok = (summary and summary.groups() == (str(passed), str(failed), "0")
              and (proc.returncode == 0) == (failed == 0)
              and (ran is None or (got_ran and int(got_ran.group(1)) == ran)))
        if not ok:
            raise SystemExit(f"error: {what}: expected {passed} passed, {failed} failed"
                             f"{'' if ran is None else f', {ran} run'} (exit {proc.returncode}):\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")

    # -- the variants --------------------------------------------------------------------
    def native_x2(self, expect_failed: int = 0) -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=JOBS) as pool:
            codes = list(pool.map(lambda a: subprocess.run(a, capture_output=True).returncode, self.argv))
        elapsed = time.perf_counter() - t
        failed = sum(1 for c in codes if c != 0)
        if failed != expect_failed:
            raise SystemExit(f"error: native: {failed} of {self.n} failed, expected {expect_failed}")
        return elapsed

    def runner(self, jobs: int, expect_failed: int = 0) -> float:
        proc, elapsed = self._run([sys.executable, "-m", "iree_build", "test", str(self.root), "--retest",
                                   "-j", str(jobs)], self.root)
        self._expect(proc, f"runner -j{jobs}", self.n - expect_failed, expect_failed, self.n)
        return elapsed

    def scons_full(self, jobs: int = 0) -> float:
        jobs = jobs or JOBS
        for p in self.root.glob("*.result.json"):
            p.unlink()
        proc, elapsed = self.scons("test", f"-j{jobs}")
        self._expect(proc, f"scons -j{jobs}", self.n, 0, self.n)
        return elapsed

    def scons_cached(self) -> float:
        proc, elapsed = self.scons("test")
        self._expect(proc, "scons cached", self.n, 0, 0)
        return elapsed

    def plain_noop(self) -> float:
        proc, elapsed = self._run([sys.executable, "-m", "SCons", "-Q", "test"], self.plain)
        if proc.returncode != 0 or "result(" in proc.stdout or "copy(" in proc.stdout:
            raise SystemExit(f"error: plain no-op did something:\n{proc.stdout[-2000:]}")
        return elapsed

    def plain_full(self) -> float:
        for p in self.plain.glob("*.result.json"):
            p.unlink()
        proc, elapsed = self._run([sys.executable, "-m", "SCons", "-Q", "test", f"-j{JOBS}"], self.plain)
        if proc.returncode != 0 or proc.stdout.count("result(") != self.n:
            raise SystemExit(f"error: plain full build did not run {self.n} actions:\n{proc.stdout[-2000:]}")
        return elapsed

    def runner_one(self) -> float:
        first = self.tests[0][0]
        proc, elapsed = self._run([sys.executable, "-m", "iree_build", "test", str(self.root), "--retest",
                                   "-j", str(JOBS), "--filter", f"{first}*"], self.root)
        self._expect(proc, "runner, one test", 1, 0, 1)
        return elapsed

    def check_fails_wrong(self) -> None:
        """Each variant fails a wrong expected value (then the right one is rebuilt)."""
        wrong = dict(self.env, BENCH_WRONG="1")
        proc, _ = self.scons("test", f"-j{JOBS}", env=wrong)
        self._expect(proc, "scons with one wrong expectation", self.n - 1, 1, 1)
        self.runner(JOBS, expect_failed=1)
        self.native_x2(expect_failed=1)
        self.scons_full()  # the runner wrote a failed result where SCons keeps its own


CHECK_SCONSTRUCT = """\
import os
from iree_rules import *
srcs = sorted(Glob("checks/*.mlir"), key=str)
if os.environ.get("BENCH_WRONG"):
    srcs.append(File("wrong/check_wrong.mlir"))
iree_check_test_suite(name="suite", srcs=srcs, target_backends=["llvm-cpu"], cpu="generic",
                      devices=["local-task"])
"""

WRONG_CHECK = """\
func.func @wrong() {
  %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
  check.expect_almost_eq_const(%a, dense<[1.0, 3.0]> : tensor<2xf32>) : tensor<2xf32>
  return
}
"""


class CheckProject(Project):
    """A check-test suite: each file one test, its cases one run-worker call."""

    def __init__(self, tmp: Path, files: int, native: str) -> None:
        from check_suite import make_files

        self.native, self.files = native, files
        self.root = tmp / f"checks{files}"
        self.env = dict(os.environ)
        self.env.pop("BENCH_WRONG", None)
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        (self.root / "checks").mkdir(parents=True)
        (self.root / "wrong").mkdir()
        (self.root / "wrong" / "check_wrong.mlir").write_text(WRONG_CHECK)
        self.cases: list[tuple[str, str]] = []  # (file stem, function)
        for stem, (text, names) in make_files(files).items():
            (self.root / "checks" / f"{stem}.mlir").write_text(text)
            self.cases += [(stem, f) for f in names]
        self.n = len(self.cases)
        (self.root / "SConstruct").write_text(CHECK_SCONSTRUCT)
        self.argv: list[list[str]] = []

    def build(self) -> None:
        import json

        t = time.perf_counter()
        proc, _ = self.scons(f"-j{JOBS}", "test")
        self._expect(proc, "first build", self.n, 0)
        manifests = [p for p in self.root.rglob("iree_tests.json")]
        if len(manifests) != 1:
            raise SystemExit(f"error: expected one test manifest under {self.root}, found {manifests}")
        self.build_dir = manifests[0].parent
        modules = {Path(e["module"]).name.split(".")[0]: self.build_dir / e["module"]
                   for e in json.loads(manifests[0].read_text())["tests"]}
        self.argv = [[self.native, "--device=local-task", f"--module={next(m for k, m in modules.items() if stem in k)}",
                      f"--function={function}"] for stem, function in self.cases]
        print(f"checks ({self.files} files, {self.n} cases): built in {time.perf_counter() - t:.1f} s "
              "(not timed)", flush=True)

    def runner(self, jobs: int, expect_failed: int = 0) -> float:
        proc, elapsed = self._run([sys.executable, "-m", "iree_build", "test", str(self.build_dir), "--retest",
                                   "-j", str(jobs)], self.root)
        self._expect(proc, f"runner -j{jobs}", self.n, expect_failed, self.n + expect_failed)
        return elapsed

    def scons_full(self, jobs: int = 0) -> float:
        jobs = jobs or JOBS
        for p in self.build_dir.rglob("*.result.json"):
            p.unlink()
        proc, elapsed = self.scons("test", f"-j{jobs}")
        self._expect(proc, f"scons -j{jobs}", self.n, 0, self.n)
        return elapsed

    def check_fails_wrong(self) -> None:
        """SCons and the runner fail a wrong check (a file added to the suite), then the
        suite is rebuilt without it. The native loop cannot: it judges no check."""
        wrong = dict(self.env, BENCH_WRONG="1")
        proc, _ = self.scons("test", f"-j{JOBS}", env=wrong)
        self._expect(proc, "scons with a wrong check", self.n, 1, 1)
        self.runner(JOBS, expect_failed=1)
        proc, _ = self.scons("test", f"-j{JOBS}")
        self._expect(proc, "scons after the wrong check", self.n, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--check-files", type=int, default=40, help="check files of the check suite (0: none)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--jobs", type=int, default=2, help="N: the native loop N at a time, the runner and scons at -jN")
    args = ap.parse_args(argv)
    global JOBS
    JOBS = args.jobs
    native = find_native_run_module(find_run_module())
    if not native:
        raise SystemExit("error: the native iree-run-module binary was not found")
    sizes = [int(s) for s in args.sizes.split(",")]
    with workdir("iree_test_throughput_", args.keep) as tmp:
        projects = [Project(tmp, n, native) for n in sizes]
        if args.check_files:
            projects.append(CheckProject(tmp, args.check_files, native))
        for p in projects:
            p.build()
            p.check_fails_wrong()
        print(f"each variant fails a wrong expectation; cores {os.cpu_count()}, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        variants: dict[str, Callable[[Project], float]] = {
            f"native_x{JOBS}": lambda p: p.native_x2(),
            f"runner_j{JOBS}": lambda p: p.runner(JOBS),
            "runner_j1": lambda p: p.runner(1),
            f"scons_j{JOBS}": lambda p: p.scons_full(),
            "scons_cached": lambda p: p.scons_cached(),
            "plain_noop": lambda p: p.plain_noop(),
            f"plain_j{JOBS}": lambda p: p.plain_full(),
            "runner_one": lambda p: p.runner_one(),
        }
        check_variants = (f"native_x{JOBS}", f"runner_j{JOBS}", "runner_j1", f"scons_j{JOBS}", "scons_cached")

        def label(p: Project) -> str:
            return f"checks{p.n}" if isinstance(p, CheckProject) else f"n{p.n}"

        def kinds(p: Project) -> list[str]:
            return [k for k in variants if not isinstance(p, CheckProject) or k in check_variants]

        times = {(label(p), k): [] for p in projects for k in kinds(p)}
        loads = [os.getloadavg()[0]]
        for r in range(args.rounds):
            for p in projects:
                for k in kinds(p):
                    times[label(p), k].append(variants[k](p))
                print(f"round {r + 1} {label(p)}: " + ", ".join(
                    f"{k} {times[label(p), k][-1]:.3f}" for k in kinds(p)), flush=True)
                loads.append(os.getloadavg()[0])
        print(f"load (1-minute average) while measuring: {min(loads):.2f} to {max(loads):.2f} on "
              f"{os.cpu_count()} cores")
        for p in projects:
            n = label(p)
            m = {k: statistics.median(times[n, k]) for k in kinds(p)}
            for k in kinds(p):
                print(f"BENCH {n}_{k}_s {m[k]:.3f}")
            native, runner, scons = m[f"native_x{JOBS}"], m[f"runner_j{JOBS}"], m[f"scons_j{JOBS}"]
            print(f"BENCH {n}_runner_j{JOBS}_vs_native {native / runner:.2f}")
            print(f"BENCH {n}_runner_j{JOBS}_vs_j1 {m['runner_j1'] / runner:.2f}")
            print(f"BENCH {n}_scons_j{JOBS}_vs_native {native / scons:.2f}")
            if isinstance(p, CheckProject):
                continue
            print(f"BENCH {n}_scons_ms_per_test_beyond_cached "
                  f"{(scons - m['scons_cached']) / p.n * 1000:.2f}")
            print(f"BENCH {n}_cached_vs_plain_noop {m['scons_cached'] / m['plain_noop']:.2f}")
            plain = m[f"plain_j{JOBS}"]
            print(f"BENCH {n}_plain_j{JOBS}_vs_native {native / plain:.2f}")
            print(f"BENCH {n}_plain_ms_per_test_beyond_noop {(plain - m['plain_noop']) / p.n * 1000:.2f}")
            print(f"BENCH {n}_runner_one_vs_native {native / m['runner_one']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

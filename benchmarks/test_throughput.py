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

Run: ``python benchmarks/test_throughput.py [--rounds N] [--sizes 100,1000] [--keep]``.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

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
        proc, _ = self.scons("-j2", "test")
        self._expect(proc, "first build", self.n, 0)
        self.plain.mkdir()
        for name in MODULES:
            (self.plain / f"{name}.mlir").write_text(MODULES[name])
        for f in self.root.glob("*.npy"):
            (self.plain / f.name).write_bytes(f.read_bytes())
        (self.plain / "SConstruct").write_text(PLAIN.format(modules=list(MODULES), tests=self.tests))
        proc, _ = self._run([sys.executable, "-m", "SCons", "-Q", "-j2", "test"], self.plain)
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
        with ThreadPoolExecutor(max_workers=2) as pool:
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

    def scons_full(self, jobs: int = 2) -> float:
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

    def check_fails_wrong(self) -> None:
        """Each variant fails a wrong expected value (then the right one is rebuilt)."""
        wrong = dict(self.env, BENCH_WRONG="1")
        proc, _ = self.scons("test", "-j2", env=wrong)
        self._expect(proc, "scons with one wrong expectation", self.n - 1, 1, 1)
        self.runner(2, expect_failed=1)
        self.native_x2(expect_failed=1)
        self.scons_full()  # the runner wrote a failed result where SCons keeps its own


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    native = find_native_run_module(find_run_module())
    if not native:
        raise SystemExit("error: the native iree-run-module binary was not found")
    sizes = [int(s) for s in args.sizes.split(",")]
    with workdir("iree_test_throughput_", args.keep) as tmp:
        projects = [Project(tmp, n, native) for n in sizes]
        for p in projects:
            p.build()
            p.check_fails_wrong()
        print(f"each variant fails a wrong expectation; cores {os.cpu_count()}, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        variants: dict[str, Callable[[Project], float]] = {
            "native_x2": Project.native_x2,
            "runner_j2": lambda p: p.runner(2),
            "runner_j1": lambda p: p.runner(1),
            "scons_j2": Project.scons_full,
            "scons_cached": Project.scons_cached,
            "plain_noop": Project.plain_noop,
        }
        times = {(p.n, k): [] for p in projects for k in variants}
        for r in range(args.rounds):
            for p in projects:
                for k, fn in variants.items():
                    times[p.n, k].append(fn(p))
                print(f"round {r + 1} n={p.n}: " + ", ".join(
                    f"{k} {times[p.n, k][-1]:.3f}" for k in variants), flush=True)
        print(f"load {os.getloadavg()[0]:.2f}")
        for p in projects:
            m = {k: statistics.median(times[p.n, k]) for k in variants}
            n = p.n
            for k in variants:
                print(f"BENCH n{n}_{k}_s {m[k]:.3f}")
            print(f"BENCH n{n}_runner_j2_vs_native {m['native_x2'] / m['runner_j2']:.2f}")
            print(f"BENCH n{n}_runner_j2_vs_j1 {m['runner_j1'] / m['runner_j2']:.2f}")
            print(f"BENCH n{n}_scons_j2_vs_native {m['native_x2'] / m['scons_j2']:.2f}")
            print(f"BENCH n{n}_scons_ms_per_test_beyond_cached "
                  f"{(m['scons_j2'] - m['scons_cached']) / n * 1000:.2f}")
            print(f"BENCH n{n}_cached_vs_plain_noop {m['scons_cached'] / m['plain_noop']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

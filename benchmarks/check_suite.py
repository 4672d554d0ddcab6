"""How much faster ``scons test`` runs a check-test suite than a user's shell loop.

What is measured
----------------
Fifty distinct, small IREE check-dialect files (``check.expect_eq_const``,
``check.expect_almost_eq_const``, ``check.expect_all_true``,
``check.expect_true`` on element-wise add/mul/sub of f32 and i32 tensors of
several shapes, small ``linalg.matmul`` s, row reductions (sum, max) and
comparisons), two or three exported no-argument test functions each, every
check correct (the expected values are computed here with numpy from small
integer/half-integer data, so they are exact in f32), are generated in a
temporary folder. Then, alternating in rounds (``--rounds``, default 3) so
that drift in the machine's load hits every variant alike, medians of:

``rules -j2``
    A project whose SConstruct declares one ``iree_check_test_suite`` over the
    fifty files (``llvm-cpu`` on ``local-task``, the rules' defaults: the
    ``generic`` CPU for this host's triple). From a clean state (the build
    folder and ``.sconsign`` deleted) ``python -m SCons -Q -C DIR test -j2``:
    the wall time of the whole SCons process, i.e. start-up, reading the
    SConstruct, compiling the fifty modules, running every exported function
    as a case against the Python ``check`` module, the summary. The closing
    line must say that every case passed and none failed.
``cli x2``
    What a user without these rules runs: per file the venv's (the first on
    PATH) ``iree-compile --iree-hal-target-device=local
    --iree-hal-local-target-device-backends=llvm-cpu
    --iree-llvmcpu-target-cpu=generic --iree-llvmcpu-target-triple=<host>
    f.mlir -o f.vmfb``, then per exported function ``iree-run-module
    --device=local-task --module=f.vmfb --function=NAME``, one process each.
    Two files at a time (a thread pool of two workers, each compiling its file
    and then running its functions one after the other), so that both sides
    use the two cores. Every process must exit with 0.
``cli x1``
    The same loop, one file after the other.

Note that the CLI loop does *less* work than the rules: ``iree-run-module``
treats the ``check`` module's imports as optional, so the checks are not
judged at all (a wrong expected value still exits 0; the benchmark shows this
once before timing). The rules compile and judge every check.

Why
---
The rules compile in persistent compile workers (the compiler library loaded
once, not per file) and run all of a file's cases in-process through
``iree.runtime`` on a shared device, instead of paying a process start-up, a
compiler-library load, a device creation and a module load per file and per
function. The issue's target: ``cli x2 / rules -j2`` at least 2.

What bounds the figure: both sides do the same compiler work (same flags), and
for these files it dominates. Measured on the two-core machine this was written
on (12 of the files, medians of 3): in-process compiles ~0.59 s/file
including the one-time library import, ``iree-compile`` ~0.75 s/file (of it
~0.17 s process start-up and library load), ``iree-run-module`` ~0.044 s per
function (~0.11 s/file). So against the same loop spread over both cores, even
a rules build with zero overhead of its own is at most about (0.75 + 0.11) /
0.59 ~ 1.5 times faster: compiling dominates.

The headline figure is the issue's comparison as written: ``scons test -j2``
against what a user without the rules runs, a loop of one process per file
and per function (``cli x1``). The same loop spread over both cores (``cli
x2``, a thread pool of two) is printed beside it and timed in the first round
only (``--parallel-rounds N``), since it is not the headline.

Output: a small table, then::

    BENCH check_suite_speedup X            cli x1 / rules -j2   (target >= 2)
    BENCH check_suite_parallel_speedup X   cli x2 / rules -j2
    BENCH check_suite_cases N              cases run (and passed) by the rules

Run: ``python benchmarks/check_suite.py [--rounds N] [--parallel-rounds N]
[--diagnose] [--keep]``. ``--diagnose`` adds probes of where the time goes:
process start-ups, one ``iree-run-module`` process, the fixed cost of an
up-to-date ``scons test``, and the compiler work itself (one process compiling
the fifty files in-process, the least any driver can spend).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import children_cpu, workdir

N_FILES = 50
JOBS = 2
SPEEDUP_TARGET = 2.0

# --------------------------------------------------------------------------
# The check files
# --------------------------------------------------------------------------

DTYPES = {"f32": np.float32, "i32": np.int32}


def _literal(arr: np.ndarray, dt: str) -> str:
    """An MLIR dense-literal body (``[[1.0, 2.5], ...]``) for ``arr``."""

    def fmt(x: object) -> str:
        if isinstance(x, list):
            return "[" + ", ".join(fmt(v) for v in x) + "]"
        return repr(float(x)) if dt == "f32" else str(int(x))

    return fmt(arr.tolist())


def _ttype(shape: tuple[int, ...], dt: str) -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{dt}>" if shape else f"tensor<{dt}>"


def _values(rng: random.Random, shape: tuple[int, ...], dt: str, lo: int = -8, hi: int = 8) -> np.ndarray:
    """Small integers (f32: integers and halves), so every result is exact in f32/i32."""
    n = int(np.prod(shape)) if shape else 1
    if dt == "f32":
        data = [rng.randint(2 * lo, 2 * hi) / 2 for _ in range(n)]
    else:
        data = [rng.randint(lo, hi) for _ in range(n)]
    return np.array(data, dtype=DTYPES[dt]).reshape(shape)


def _const(name: str, arr: np.ndarray, dt: str) -> str:
    return f"  %{name} = util.unfoldable_constant dense<{_literal(arr, dt)}> : {_ttype(arr.shape, dt)}"


def _expect(value: str, expected: np.ndarray, dt: str) -> str:
    t = _ttype(expected.shape, dt)
    op = "expect_almost_eq_const" if dt == "f32" else "expect_eq_const"
    return f"  check.{op}({value}, dense<{_literal(expected, dt)}> : {t}) : {t}"


def _func(name: str, body: list[str]) -> str:
    return f"func.func @{name}() {{\n" + "\n".join(body) + "\n  return\n}\n"


SHAPES = [(4,), (8,), (16,), (3, 5), (2, 6), (4, 4), (2, 3, 4), (32,), (5, 7)]


def _elementwise(rng: random.Random, name: str) -> str:
    """One or two of add/mul/sub on two tensors."""
    dt = rng.choice(["f32", "i32"])
    shape = rng.choice(SHAPES)
    a, b = _values(rng, shape, dt), _values(rng, shape, dt)
    t = _ttype(shape, dt)
    sfx = "f" if dt == "f32" else "i"
    ops = {"add": np.add, "mul": np.multiply, "sub": np.subtract}
    chain = rng.sample(list(ops), rng.choice([1, 1, 2]))
    body = [_const("a", a, dt), _const("b", b, dt)]
    cur, val = "%a", a
    for i, op in enumerate(chain):
        body.append(f"  %v{i} = arith.{op}{sfx} {cur}, %b : {t}")
        cur, val = f"%v{i}", ops[op](val, b).astype(DTYPES[dt])
    body.append(_expect(cur, val, dt))
    return _func(f"{name}_{'_'.join(chain)}_{dt}", body)


def _matmul(rng: random.Random, name: str) -> str:
    dt = rng.choice(["f32", "i32"])
    m, k, n = rng.choice([2, 3, 4, 8]), rng.choice([2, 4, 5, 8]), rng.choice([2, 3, 4, 6])
    a, b = _values(rng, (m, k), dt, -4, 4), _values(rng, (k, n), dt, -4, 4)
    zero = "0.0" if dt == "f32" else "0"
    out = _ttype((m, n), dt)
    body = [
        _const("a", a, dt), _const("b", b, dt),
        f"  %cst = arith.constant {zero} : {dt}",
        f"  %e = tensor.empty() : {out}",
        f"  %z = linalg.fill ins(%cst : {dt}) outs(%e : {out}) -> {out}",
        f"  %r = linalg.matmul ins(%a, %b : {_ttype((m, k), dt)}, {_ttype((k, n), dt)})"
        f" outs(%z : {out}) -> {out}",
        _expect("%r", (a @ b).astype(DTYPES[dt]), dt),
    ]
    return _func(f"{name}_matmul_{m}x{k}x{n}_{dt}", body)


def _reduce(rng: random.Random, name: str) -> str:
    """Row-wise sum or max: tensor<MxN> -> tensor<M>."""
    dt = rng.choice(["f32", "i32"])
    kind = rng.choice(["sum", "max"])
    m, n = rng.choice([2, 3, 4, 8]), rng.choice([4, 5, 8, 16])
    a = _values(rng, (m, n), dt)
    init, op = {
        ("sum", "f32"): ("0.0", "arith.addf"), ("sum", "i32"): ("0", "arith.addi"),
        ("max", "f32"): ("-3.0e38", "arith.maximumf"), ("max", "i32"): ("-2147483648", "arith.maxsi"),
    }[kind, dt]
    expected = (a.sum(axis=1) if kind == "sum" else a.max(axis=1)).astype(DTYPES[dt])
    src, out = _ttype((m, n), dt), _ttype((m,), dt)
    body = [
        _const("a", a, dt),
        f"  %cst = arith.constant {init} : {dt}",
        f"  %e = tensor.empty() : {out}",
        f"  %z = linalg.fill ins(%cst : {dt}) outs(%e : {out}) -> {out}",
        "  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, "
        "affine_map<(d0, d1) -> (d0)>],",
        '                       iterator_types = ["parallel", "reduction"]}',
        f"      ins(%a : {src}) outs(%z : {out}) {{",
        f"  ^bb0(%x: {dt}, %acc: {dt}):",
        f"    %s = {op} %x, %acc : {dt}",
        f"    linalg.yield %s : {dt}",
        f"  }} -> {out}",
        _expect("%r", expected, dt),
    ]
    return _func(f"{name}_reduce_{kind}_{m}x{n}_{dt}", body)


def _compare(rng: random.Random, name: str) -> str:
    """a < a + 1 element-wise (expect_all_true), and a scalar expect_true."""
    dt = rng.choice(["f32", "i32"])
    shape = rng.choice(SHAPES)
    a = _values(rng, shape, dt)
    t, tb = _ttype(shape, dt), _ttype(shape, "i1")
    one, cmp = ("1.0", "arith.cmpf olt") if dt == "f32" else ("1", "arith.cmpi slt")
    s = rng.randint(1, 100)
    body = [
        _const("a", a, dt),
        f"  %one = arith.constant dense<{one}> : {t}",
        f"  %b = {'arith.addf' if dt == 'f32' else 'arith.addi'} %a, %one : {t}",
        f"  %lt = {cmp}, %a, %b : {t}",
        f"  check.expect_all_true(%lt) : {tb}",
        f"  %s = util.unfoldable_constant {s} : i32",
        "  check.expect_true(%s) : i32",
    ]
    return _func(f"{name}_compare_{dt}", body)


KINDS: list[Callable[[random.Random, str], str]] = [_elementwise, _matmul, _reduce, _compare]


def make_files(n: int = N_FILES) -> dict[str, tuple[str, list[str]]]:
    """``n`` distinct check files: name -> (MLIR text, exported function names)."""
    rng = random.Random(20250611)
    files: dict[str, tuple[str, list[str]]] = {}
    for i in range(n):
        funcs = []
        count = 2 + (i % 2)  # 2 or 3 test functions
        kinds = [KINDS[(i + j) % len(KINDS)] for j in range(count)]
        for j, kind in enumerate(kinds):
            funcs.append(kind(rng, f"test{j}"))
        text = "\n".join(funcs)
        names = re.findall(r"^func\.func @(\w+)\(", text, re.M)
        assert len(names) == len(set(names)) == count
        files[f"check_{i:02d}"] = (text, names)
    assert len({t for t, _ in files.values()}) == n, "check files are not distinct"
    return files


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------

SCONSTRUCT = """\
from iree_rules import *
SConscript("checks/SConscript", variant_dir="build", duplicate=False)
"""

SCONSCRIPT = """\
iree_check_test_suite(name="suite", srcs=Glob("*.mlir"), target_backends=["llvm-cpu"],
                      devices=["local-task"])
"""


def compile_flags() -> list[str]:
    """What a user passes by hand; the same compiler work as the rules' defaults."""
    import llvmlite.binding as llvm

    return [
        "--iree-hal-target-device=local",
        "--iree-hal-local-target-device-backends=llvm-cpu",
        "--iree-llvmcpu-target-cpu=generic",
        f"--iree-llvmcpu-target-triple={llvm.get_process_triple()}",
    ]


def check_rules_flags(flags: list[str]) -> None:
    """Warn if the rules' default flags drifted from ours (the work would differ)."""
    try:
        from iree_build.targets.backends import device_flags
        from iree_build.targets.host_cpu import resolve

        theirs = device_flags(["llvm-cpu"]) + resolve("generic").flags()
    except Exception as e:  # the benchmark still measures; just say so
        print(f"warning: could not read the rules' default flags ({e})", file=sys.stderr)
        return
    if sorted(theirs) != sorted(flags):
        print(f"warning: the rules' default flags {theirs} differ from the benchmark's {flags}",
              file=sys.stderr)


def find_tool(name: str, path: str) -> str:
    exe = shutil.which(name, path=path)
    if not exe:
        sys.exit(f"error: no {name} on PATH (pip install iree-base-compiler iree-base-runtime)")
    return exe


CLOSING = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$")
RAN = re.compile(r"^(\d+) tests? run, (\d+) up to date")
PASS_TIME = re.compile(r"^PASS (\S+) \(([\d.]+) ms\)$", re.M)


@dataclass
class CliTimes:
    compile_s: list[float] = field(default_factory=list)
    run_s: list[float] = field(default_factory=list)


@dataclass
class Bench:
    root: Path  # the SCons project
    files: dict[str, tuple[str, list[str]]]
    flags: list[str]
    iree_compile: str
    iree_run_module: str
    env: dict[str, str]
    cases: int = 0  # cases run by the last rules run
    case_ms: list[float] = field(default_factory=list)  # per-case times of the last rules run
    cli_detail: dict[str, CliTimes] = field(default_factory=dict)

    @property
    def checks(self) -> Path:
        return self.root / "checks"

    @property
    def n_cases(self) -> int:
        return sum(len(names) for _, names in self.files.values())

    # -- variant A: the rules ------------------------------------------------

    def clean_rules(self) -> None:
        shutil.rmtree(self.root / "build", ignore_errors=True)
        for p in self.root.glob(".sconsign*"):
            p.unlink()

    def rules(self) -> float:
        self.clean_rules()
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "SCons", "-Q", "-C", str(self.root), "test", f"-j{JOBS}"],
            env=self.env, capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - t
        lines = proc.stdout.strip().splitlines()
        closing = CLOSING.match(lines[-1]) if lines else None
        want = self.n_cases
        if proc.returncode != 0 or not closing or closing.groups() != (str(want), "0", "0"):
            raise SystemExit(f"error: scons test -j{JOBS} did not pass all {want} cases "
                             f"(exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        ran = next((RAN.match(ln) for ln in lines if RAN.match(ln)), None)
        if not ran or ran.group(1) != str(want):
            raise SystemExit(f"error: expected '{want} tests run' (one per case):\n{proc.stdout}")
        passes = PASS_TIME.findall(proc.stdout)
        if len(passes) != want:
            raise SystemExit(f"error: {len(passes)} PASS lines, expected {want}:\n{proc.stdout}")
        self.cases = int(closing.group(1))
        self.case_ms = [float(ms) for _, ms in passes]
        return elapsed

    # -- variant B: the user's shell loop --------------------------------------

    def _one_file(self, out: Path, name: str) -> tuple[float, float]:
        """Compile one file, then run each of its functions: (compile s, run s)."""
        src = self.checks / f"{name}.mlir"
        vmfb = out / f"{name}.vmfb"
        t0 = time.perf_counter()
        proc = subprocess.run([self.iree_compile, *self.flags, str(src), "-o", str(vmfb)],
                              env=self.env, capture_output=True, text=True)
        t1 = time.perf_counter()
        if proc.returncode != 0 or not vmfb.is_file() or vmfb.stat().st_size == 0:
            raise RuntimeError(f"iree-compile failed on {src}:\n{proc.stderr}")
        for func in self.files[name][1]:
            proc = subprocess.run(
                [self.iree_run_module, "--device=local-task", f"--module={vmfb}",
                 f"--function={func}"],
                env=self.env, capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"iree-run-module failed on {name}::{func}:\n"
                                   f"{proc.stdout}\n{proc.stderr}")
        return t1 - t0, time.perf_counter() - t1

    def cli(self, workers: int) -> float:
        out = self.root.parent / f"cli_x{workers}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        t = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(lambda n: self._one_file(out, n), self.files))
        except RuntimeError as e:
            raise SystemExit(f"error: cli x{workers}: {e}") from None
        elapsed = time.perf_counter() - t
        detail = self.cli_detail.setdefault(f"cli x{workers}", CliTimes())
        detail.compile_s.append(sum(c for c, _ in parts))
        detail.run_s.append(sum(r for _, r in parts))
        return elapsed


def setup(tmp: Path) -> Bench:
    files = make_files()
    root = tmp / "project"
    (root / "checks").mkdir(parents=True)
    for name, (text, _) in files.items():
        (root / "checks" / f"{name}.mlir").write_text(text)
    (root / "SConstruct").write_text(SCONSTRUCT)
    (root / "checks" / "SConscript").write_text(SCONSCRIPT)
    flags = compile_flags()
    check_rules_flags(flags)
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    return Bench(root=root, files=files, flags=flags,
                 iree_compile=find_tool("iree-compile", env["PATH"]),
                 iree_run_module=find_tool("iree-run-module", env["PATH"]), env=env)


WRONG = """\
func.func @test_wrong() {
  %a = util.unfoldable_constant dense<[1, 2]> : tensor<2xi32>
  check.expect_eq_const(%a, dense<[1, 3]> : tensor<2xi32>) : tensor<2xi32>
  return
}
"""


def probe_cli_judges(bench: Bench, tmp: Path) -> int:
    """Exit status of ``iree-run-module`` on a failing check (also warms the tools' page cache)."""
    src, vmfb = tmp / "wrong.mlir", tmp / "wrong.vmfb"
    src.write_text(WRONG)
    subprocess.run([bench.iree_compile, *bench.flags, str(src), "-o", str(vmfb)],
                   env=bench.env, check=True, capture_output=True)
    proc = subprocess.run([bench.iree_run_module, "--device=local-task", f"--module={vmfb}",
                           "--function=test_wrong"], env=bench.env, capture_output=True)
    return proc.returncode





# --------------------------------------------------------------------------
# Diagnostics (--diagnose): where the time goes
# --------------------------------------------------------------------------

# The compiler work the rules cannot avoid: ONE Python process, the compiler
# library loaded once, the fifty files compiled one after the other in-process
# (as the compile workers do), with the CLI loop's flags.
FLOOR_SCRIPT = """\
import json, sys, time
t0 = time.perf_counter()
from iree.compiler import api
t_import = time.perf_counter() - t0
job = json.loads(sys.argv[1])
times = []
for src, out in job["modules"]:
    t = time.perf_counter()
    with api.Session() as session:
        session.set_flags(*job["flags"])
        with api.Invocation(session) as inv, api.Source.open_file(session, src) as source, \\
                api.Output.open_file(out) as output:
            if not (inv.parse_source(source) and inv.execute()):
                sys.exit("compile failed: " + src)
            inv.output_vm_bytecode(output)
            output.keep()
    times.append(time.perf_counter() - t)
print(json.dumps({"import_s": t_import, "times": times}))
"""


def _wall(argv: list[str], bench: Bench, **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=bench.env, capture_output=True, check=True, **kw)
    return time.perf_counter() - t


def diagnose(bench: Bench, med: dict[str, float]) -> None:
    """Probes of the fixed and per-file costs on both sides (medians of 3 unless said)."""
    import json

    py = sys.executable
    print("\ndiagnostics:")

    def m3(argv: list[str], **kw: object) -> float:
        return statistics.median(_wall(argv, bench, **kw) for _ in range(3))

    print(f"  python start-up                              {m3([py, '-c', 'pass']):7.3f} s")
    print(f"  python + import iree.compiler.api            "
          f"{m3([py, '-c', 'from iree.compiler import api']):7.3f} s")
    print(f"  python + import iree.runtime                 "
          f"{m3([py, '-c', 'import iree.runtime']):7.3f} s")
    cli_fixed = m3([bench.iree_compile, "--version"])
    print(f"  iree-compile --version (process + library)   {cli_fixed:7.3f} s")
    bench.rules()  # leaves every module built and every result recorded
    name = next(iter(bench.files))
    vmfb = bench.root / "build" / f"suite_{name}_llvm-cpu.vmfb"
    run1 = statistics.median(
        _wall([bench.iree_run_module, "--device=local-task", f"--module={vmfb}",
               f"--function={bench.files[name][1][0]}"], bench) for _ in range(5))
    print(f"  one iree-run-module process (median of 5)    {run1:7.3f} s")
    cached = m3([py, "-m", "SCons", "-Q", "-C", str(bench.root), "test", f"-j{JOBS}"])
    print(f"  scons test -j{JOBS}, all up to date (fixed cost) {cached:7.3f} s")

    out = bench.root.parent / "floor"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    job = {"flags": bench.flags,
           "modules": [[str(bench.checks / f"{n}.mlir"), str(out / f"{n}.vmfb")] for n in bench.files]}
    t = time.perf_counter()
    proc = subprocess.run([py, "-c", FLOOR_SCRIPT, json.dumps(job)], env=bench.env,
                          capture_output=True, text=True)
    floor = time.perf_counter() - t
    if proc.returncode != 0:
        print(f"  floor process failed:\n{proc.stdout}\n{proc.stderr}")
        return
    times = json.loads(proc.stdout.strip().splitlines()[-1])["times"]
    print(f"  floor: one process compiling all {N_FILES} files in-process  {floor:7.3f} s "
          f"(per file median {statistics.median(times):.3f} s, min {min(times):.3f}, "
          f"max {max(times):.3f})")
    cli = bench.cli_detail.get("cli x1")
    if cli:
        comp = statistics.median(cli.compile_s)
        runs = statistics.median(cli.run_s)
        print(f"  cli x1 split: iree-compile {comp:.2f} s ({comp / N_FILES:.3f} s/file), "
              f"iree-run-module {runs:.2f} s ({runs / bench.n_cases:.3f} s/function)")
        print(f"  => per file the CLI pays ~{comp / N_FILES - sum(times) / N_FILES:.3f} s beyond the "
              f"in-process compile and {runs / N_FILES:.3f} s of run processes; the compile "
              f"itself ({sum(times) / N_FILES:.3f} s/file) is the same work on both sides")
        best = (comp + runs) / JOBS / (sum(times) / JOBS + cached)
        print(f"  => estimated bound on cli x2 / rules -j2 with perfect 2-way scaling: ~{best:.2f} "
              f"(measured {med['cli x2'] / med['rules -j2']:.2f})")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the variants (default 3)")
    ap.add_argument("--parallel-rounds", type=int, default=1,
                    help="rounds that also time 'cli x2' (default 1: the first)")
    ap.add_argument("--diagnose", action="store_true", help="also probe where the time goes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    with workdir("iree_check_suite_", args.keep) as tmp:
        bench = setup(tmp)
        print(f"{N_FILES} check files, {bench.n_cases} test functions; cores: {os.cpu_count()}")
        print(f"cli flags: {' '.join(bench.flags)}")
        print(f"iree-compile: {bench.iree_compile}\niree-run-module: {bench.iree_run_module}")
        rc = probe_cli_judges(bench, tmp)
        print(f"note: iree-run-module on a FAILING check exits {rc}"
              + (" -- the CLI loop does not judge the checks (check imports are optional);"
                 " the rules do" if rc == 0 else ""))

        variants: dict[str, Callable[[], float]] = {
            "rules -j2": bench.rules,
            "cli x2": lambda: bench.cli(JOBS),
            "cli x1": lambda: bench.cli(1),
        }
        par = max(0, min(args.parallel_rounds, args.rounds))
        if par == 0:
            del variants["cli x2"]
        results: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        load_before = os.getloadavg()[0]
        for r in range(args.rounds):
            done: list[str] = []
            for name, fn in variants.items():
                if name == "cli x2" and r >= par:
                    continue
                c = children_cpu()
                results[name].append(fn())
                cpu[name].append(children_cpu() - c)
                done.append(f"{name} {results[name][-1]:.2f} s")
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(done), flush=True)

        med = {k: statistics.median(v) for k, v in results.items()}
        print()
        print(f"{'variant':<10} {'median s':>9} {'per file s':>11} {'min s':>7} {'max s':>7}"
              f" {'cpu s':>7} {'runs':>5}  judges checks")
        for k, v in results.items():
            print(f"{k:<10} {med[k]:9.3f} {med[k] / N_FILES:11.3f} {min(v):7.3f} {max(v):7.3f}"
                  f" {statistics.median(cpu[k]):7.3f} {len(v):5d}  "
                  f"{'yes' if k.startswith('rules') else 'no'}")
        print("(wall times; 'cpu s' is the median user+sys CPU of the variant's processes)")
        for k, d in bench.cli_detail.items():
            print(f"{k}: iree-compile {statistics.median(d.compile_s):.2f} s, iree-run-module "
                  f"{statistics.median(d.run_s):.2f} s (summed over the workers' processes; "
                  f"{N_FILES} compiles, {bench.n_cases} runs)")
        ms = bench.case_ms
        print(f"rules: {bench.cases} cases, in-process case time total {sum(ms) / 1000:.3f} s "
              f"(median {statistics.median(ms):.2f} ms, max {max(ms):.2f} ms; last run)")
        load = max(load_before, os.getloadavg()[0])
        cores = os.cpu_count() or 1
        if load > 0.5 * cores:
            print(f"warning: load average was {load:.1f} on {cores} cores during the run: other "
                  "work competes for the CPU", file=sys.stderr)
        speedup = med["cli x1"] / med["rules -j2"]
        par_speedup = med["cli x2"] / med["rules -j2"] if "cli x2" in med else float("nan")
        if "cli x2" in cpu:
            cpu_ratio = statistics.median(cpu["cli x2"]) / statistics.median(cpu["rules -j2"])
            print(f"cpu: cli x2 / rules -j2 = {cpu_ratio:.3f} (CPU seconds: less sensitive to other "
                  "load on the machine than the wall times)")
        if speedup < SPEEDUP_TARGET:
            print(f"warning: speedup {speedup:.3f} is below the target {SPEEDUP_TARGET}"
                  + ("" if args.diagnose else "; --diagnose shows where the time goes"),
                  file=sys.stderr)
        if args.diagnose:
            diagnose(bench, med)
        print()
        print(f"BENCH check_suite_speedup {speedup:.3f}")
        print(f"BENCH check_suite_parallel_speedup {par_speedup:.3f}")
        print(f"BENCH check_suite_cases {bench.cases}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

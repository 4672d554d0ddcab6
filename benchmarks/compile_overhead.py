"""How much a build through the IREE rules costs beyond the compiler's own work.

What is measured
----------------
Twenty small, distinct MLIR modules (matmuls of several shapes and element
types, a 2- and a 3-layer MLP, element-wise chains, reductions, a softmax, a
convolution, ...) are generated in a temporary folder and built, from a clean
state each time, in four ways that do identical compiler work (the same flag
list: ``llvm-cpu`` on the ``local`` device, ``cpu=generic`` and this host's
triple, which is what the rules pass by default):

``rules -j1``
    ``python -m SCons -Q -j1`` in a project whose SConstruct declares the 20
    ``iree_module`` targets. Wall time of the whole SCons process: SCons
    start-up, reading the SConstruct, starting the compile worker, compiling.
``cli loop``
    What a user does without the rules: the ``iree-compile`` found on PATH
    (the venv's first), run once per module, one after the other.
``floor``
    ONE plain Python process that imports ``iree.compiler.api`` and compiles
    the 20 modules one after the other in-process (Session / Invocation /
    Source / Output, as ``iree.build``'s ``run_inprocess`` does). Wall time of
    the whole process, so interpreter start-up and loading the compiler library
    are in it once: this is the least a Python-driven build can cost.
``rules -j2``
    As ``rules -j1`` with ``-j2`` (two workers; the machine this was written
    for has two cores).

Why
---
The rules keep the compiler library loaded in persistent worker processes so
that a module pays only its pipeline work, not a process start-up and a 300 MB
library load as the CLI does. This benchmark checks that promise: the rules at
``-j1`` should be well under the CLI loop (target: ratio at most 0.75), close
to the in-process floor (at most 1.15) and scale with ``-j`` (``-j2`` at least
1.6 times faster than ``-j1``).

The variants alternate in rounds (``--rounds``, default 3) so that drift in the
machine's load hits them all alike; the median of each is reported. Every run
must leave exactly 20 non-empty ``.vmfb`` files, or the benchmark fails. "Clean
state" means no outputs and no ``.sconsign.dblite``; the rules' small cache of
compiler facts (``~/.cache/iree_build``) stays warm, as it is for any user after
their first build. Before the rounds, every module is compiled once with the
CLI (a module that does not compile fails the benchmark; this also warms the
page cache for the 300 MB compiler library).

On a shared machine, wall times are only as good as the machine is quiet: the
load average is checked and a warning printed when other work competed. Beside
the medians, the table gives each variant's CPU time (user + sys of its
processes) and the ratios by minimum wall time and by CPU time, which other
work disturbs less.

Output: a small table (seconds per variant and per module) and then one line
per figure::

    BENCH rules_vs_cli_ratio X     rules -j1 / cli loop     (target <= 0.75)
    BENCH rules_vs_floor_ratio X   rules -j1 / floor        (target <= 1.15)
    BENCH j2_speedup X             rules -j1 / rules -j2    (target >= 1.6)

Run: ``python benchmarks/compile_overhead.py [--rounds N] [--keep] [--diagnose]``.
``--diagnose`` adds a few overhead probes (SCons no-op build, SCons start-up
without compiles, compiler-library load time, per-module compile times).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import children_cpu, user_tool, wall, workdir

N_MODULES = 20

# --------------------------------------------------------------------------
# The modules
# --------------------------------------------------------------------------


def _matmul(m: int, k: int, n: int, dt: str = "f32", acc: str | None = None) -> str:
    acc = acc or dt
    zero = "0.0" if acc.startswith("f") else "0"
    return f"""\
func.func @matmul(%a: tensor<{m}x{k}x{dt}>, %b: tensor<{k}x{n}x{dt}>) -> tensor<{m}x{n}x{acc}> {{
  %cst = arith.constant {zero} : {acc}
  %e = tensor.empty() : tensor<{m}x{n}x{acc}>
  %z = linalg.fill ins(%cst : {acc}) outs(%e : tensor<{m}x{n}x{acc}>) -> tensor<{m}x{n}x{acc}>
  %r = linalg.matmul ins(%a, %b : tensor<{m}x{k}x{dt}>, tensor<{k}x{n}x{dt}>) outs(%z : tensor<{m}x{n}x{acc}>) -> tensor<{m}x{n}x{acc}>
  return %r : tensor<{m}x{n}x{acc}>
}}
"""


def _batch_matmul(b: int, m: int, k: int, n: int) -> str:
    return f"""\
func.func @batch_matmul(%a: tensor<{b}x{m}x{k}xf32>, %w: tensor<{b}x{k}x{n}xf32>) -> tensor<{b}x{m}x{n}xf32> {{
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<{b}x{m}x{n}xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<{b}x{m}x{n}xf32>) -> tensor<{b}x{m}x{n}xf32>
  %r = linalg.batch_matmul ins(%a, %w : tensor<{b}x{m}x{k}xf32>, tensor<{b}x{k}x{n}xf32>) outs(%z : tensor<{b}x{m}x{n}xf32>) -> tensor<{b}x{m}x{n}xf32>
  return %r : tensor<{b}x{m}x{n}xf32>
}}
"""


def _matvec(m: int, k: int) -> str:
    return f"""\
func.func @matvec(%a: tensor<{m}x{k}xf32>, %x: tensor<{k}xf32>) -> tensor<{m}xf32> {{
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<{m}xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<{m}xf32>) -> tensor<{m}xf32>
  %r = linalg.matvec ins(%a, %x : tensor<{m}x{k}xf32>, tensor<{k}xf32>) outs(%z : tensor<{m}xf32>) -> tensor<{m}xf32>
  return %r : tensor<{m}xf32>
}}
"""


def _mlp(batch: int, widths: list[int]) -> str:
    """``len(widths) - 1`` dense layers: matmul + bias add + relu (the last has no relu)."""
    args = [f"%x: tensor<{batch}x{widths[0]}xf32>"]
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        args += [f"%w{i}: tensor<{a}x{b}xf32>", f"%b{i}: tensor<{b}xf32>"]
    body = ["  %zero = arith.constant 0.0 : f32"]
    cur = "%x"
    layers = len(widths) - 1
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        t = f"tensor<{batch}x{b}xf32>"
        body += [
            f"  %e{i} = tensor.empty() : {t}",
            f"  %f{i} = linalg.fill ins(%zero : f32) outs(%e{i} : {t}) -> {t}",
            f"  %mm{i} = linalg.matmul ins({cur}, %w{i} : tensor<{batch}x{a}xf32>, tensor<{a}x{b}xf32>)"
            f" outs(%f{i} : {t}) -> {t}",
            f"  %h{i} = linalg.generic {{indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,"
            f" affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>],"
            f" iterator_types = [\"parallel\", \"parallel\"]}}"
            f" ins(%mm{i}, %b{i} : {t}, tensor<{b}xf32>) outs(%e{i} : {t}) {{",
            "  ^bb0(%v: f32, %bias: f32, %o: f32):",
            "    %s = arith.addf %v, %bias : f32",
        ]
        if i < layers - 1:
            body += ["    %r = arith.maximumf %s, %zero : f32", "    linalg.yield %r : f32"]
        else:
            body += ["    linalg.yield %s : f32"]
        body += [f"  }} -> {t}"]
        cur = f"%h{i}"
    out = f"tensor<{batch}x{widths[-1]}xf32>"
    return (
        f"func.func @mlp({', '.join(args)}) -> {out} {{\n"
        + "\n".join(body)
        + f"\n  return {cur} : {out}\n}}\n"
    )


def _elementwise(shape: str, ops: list[str], dt: str = "f32") -> str:
    """A chain of element-wise ops on tensors (``ops`` are arith/math op names)."""
    t = f"tensor<{shape}x{dt}>"
    lines = []
    cur = "%a"
    for i, op in enumerate(ops):
        if op in ("arith.addf", "arith.mulf", "arith.subf", "arith.maximumf", "arith.addi", "arith.muli"):
            lines.append(f"  %v{i} = {op} {cur}, %b : {t}")
        else:
            lines.append(f"  %v{i} = {op} {cur} : {t}")
        cur = f"%v{i}"
    return (
        f"func.func @elementwise(%a: {t}, %b: {t}) -> {t} {{\n"
        + "\n".join(lines)
        + f"\n  return {cur} : {t}\n}}\n"
    )


def _reduce_rows(m: int, n: int, kind: str) -> str:
    """Row-wise sum or max: tensor<MxN> -> tensor<M>."""
    init, op = {"sum": ("0.0", "arith.addf"), "max": ("-3.0e38", "arith.maximumf")}[kind]
    return f"""\
func.func @reduce_{kind}(%a: tensor<{m}x{n}xf32>) -> tensor<{m}xf32> {{
  %cst = arith.constant {init} : f32
  %e = tensor.empty() : tensor<{m}xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<{m}xf32>) -> tensor<{m}xf32>
  %r = linalg.generic {{indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>],
                       iterator_types = ["parallel", "reduction"]}}
      ins(%a : tensor<{m}x{n}xf32>) outs(%z : tensor<{m}xf32>) {{
  ^bb0(%x: f32, %acc: f32):
    %s = {op} %x, %acc : f32
    linalg.yield %s : f32
  }} -> tensor<{m}xf32>
  return %r : tensor<{m}xf32>
}}
"""


def _reduce_all(n: int) -> str:
    return f"""\
func.func @reduce_all(%a: tensor<{n}xf32>) -> tensor<f32> {{
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<f32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<f32>) -> tensor<f32>
  %r = linalg.generic {{indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>],
                       iterator_types = ["reduction"]}}
      ins(%a : tensor<{n}xf32>) outs(%z : tensor<f32>) {{
  ^bb0(%x: f32, %acc: f32):
    %s = arith.addf %x, %acc : f32
    linalg.yield %s : f32
  }} -> tensor<f32>
  return %r : tensor<f32>
}}
"""


def _softmax(m: int, n: int) -> str:
    return f"""\
func.func @softmax(%a: tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32> {{
  %e = tensor.empty() : tensor<{m}x{n}xf32>
  %r = linalg.softmax dimension(1) ins(%a : tensor<{m}x{n}xf32>) outs(%e : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
  return %r : tensor<{m}x{n}xf32>
}}
"""


def _transpose_add(m: int, n: int) -> str:
    return f"""\
func.func @transpose_add(%a: tensor<{m}x{n}xf32>, %b: tensor<{n}x{m}xf32>) -> tensor<{n}x{m}xf32> {{
  %e = tensor.empty() : tensor<{n}x{m}xf32>
  %t = linalg.transpose ins(%a : tensor<{m}x{n}xf32>) outs(%e : tensor<{n}x{m}xf32>) permutation = [1, 0]
  %r = arith.addf %t, %b : tensor<{n}x{m}xf32>
  return %r : tensor<{n}x{m}xf32>
}}
"""


def _conv2d(h: int, w: int, c: int, f: int) -> str:
    oh, ow = h - 2, w - 2
    out = f"tensor<1x{oh}x{ow}x{f}xf32>"
    return f"""\
func.func @conv(%x: tensor<1x{h}x{w}x{c}xf32>, %k: tensor<3x3x{c}x{f}xf32>) -> {out} {{
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : {out}
  %z = linalg.fill ins(%cst : f32) outs(%e : {out}) -> {out}
  %r = linalg.conv_2d_nhwc_hwcf {{dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}}
      ins(%x, %k : tensor<1x{h}x{w}x{c}xf32>, tensor<3x3x{c}x{f}xf32>) outs(%z : {out}) -> {out}
  return %r : {out}
}}
"""


def make_modules() -> dict[str, str]:
    """Twenty distinct small modules, name -> MLIR text."""
    mods: dict[str, str] = {
        "mm_f32_8x16x4": _matmul(8, 16, 4),
        "mm_f32_32x32x32": _matmul(32, 32, 32),
        "mm_f32_64x128x32": _matmul(64, 128, 32),
        "mm_f32_128x64x256": _matmul(128, 64, 256),
        "mm_f16_32x64x16": _matmul(32, 64, 16, "f16"),
        "mm_i32_16x32x8": _matmul(16, 32, 8, "i32"),
        "batch_mm_4x16x32x8": _batch_matmul(4, 16, 32, 8),
        "matvec_64x128": _matvec(64, 128),
        "mlp2_16x64x32x10": _mlp(16, [64, 32, 10]),
        "mlp3_8x128x64x32x4": _mlp(8, [128, 64, 32, 4]),
        "add_f32_1024": _elementwise("1024", ["arith.addf"]),
        "mul_exp_f32_16x64": _elementwise("16x64", ["arith.mulf", "math.exp"]),
        "tanh_sub_f32_32x32": _elementwise("32x32", ["math.tanh", "arith.subf", "arith.maximumf"]),
        "muladd_i32_256": _elementwise("256", ["arith.muli", "arith.addi"], "i32"),
        "reduce_sum_32x128": _reduce_rows(32, 128, "sum"),
        "reduce_max_64x16": _reduce_rows(64, 16, "max"),
        "reduce_all_4096": _reduce_all(4096),
        "softmax_8x64": _softmax(8, 64),
        "transpose_add_16x48": _transpose_add(16, 48),
        "conv2d_10x10x4x8": _conv2d(10, 10, 4, 8),
    }
    assert len(mods) == N_MODULES and len(set(mods.values())) == N_MODULES
    return mods


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------


def compile_flags() -> list[str]:
    """The flags the rules pass by default for llvm-cpu with cpu='generic'."""
    import llvmlite.binding as llvm

    triple = llvm.get_process_triple()
    return [
        "--iree-hal-target-device=local",
        "--iree-hal-local-target-device-backends=llvm-cpu",
        f"--iree-llvmcpu-target-triple={triple}",
        "--iree-llvmcpu-target-cpu=generic",
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
    if theirs != flags:
        print(f"warning: the rules' default flags {theirs} differ from the benchmark's {flags}",
              file=sys.stderr)


def find_iree_compile() -> str:
    return user_tool("iree-compile")


SCONSTRUCT = """\
from iree_rules import *

for name in {names!r}:
    iree_module(name=name, src=name + ".mlir", target_backends=["llvm-cpu"], cpu="generic")
"""

# The floor: one Python process, the compiler library loaded once, modules
# compiled one after the other exactly as iree.build's run_inprocess does.
FLOOR_SCRIPT = textwrap.dedent("""\
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
                inv.enable_console_diagnostics()
                if not (inv.parse_source(source) and inv.execute()):
                    sys.exit("compile failed: " + src)
                inv.output_vm_bytecode(output)
                output.keep()
        times.append(time.perf_counter() - t)
    print(json.dumps({"import_s": t_import, "times": times}))
""")


@dataclass
class Bench:
    root: Path  # the SCons project: SConstruct, sources, rules outputs
    names: list[str]
    flags: list[str]
    iree_compile: str
    env: dict[str, str]
    floor_detail: list[dict] = field(default_factory=list)

    @property
    def sources(self) -> list[Path]:
        return [self.root / f"{n}.mlir" for n in self.names]

    def out_dir(self, variant: str) -> Path:
        return self.root.parent / f"out_{variant}"

    # -- clean state & checks ------------------------------------------------

    def clean_rules(self) -> None:
        for p in self.root.glob("*.vmfb"):
            p.unlink()
        for p in self.root.glob(".sconsign*"):
            p.unlink()

    def clean_dir(self, variant: str) -> Path:
        d = self.out_dir(variant)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def expect_outputs(self, where: Path, variant: str) -> None:
        got = sorted(p for p in where.glob("*.vmfb") if p.stat().st_size > 0)
        want = {f"{n}.vmfb" for n in self.names}
        if {p.name for p in got} != want or len(got) != N_MODULES:
            missing = sorted(want - {p.name for p in got})
            raise SystemExit(
                f"error: {variant} produced {len(got)} non-empty .vmfb files, expected {N_MODULES}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )

    # -- the four variants -----------------------------------------------------

    def _scons(self, jobs: int, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "SCons", "-Q", f"-j{jobs}", *extra],
            cwd=self.root, env=self.env, capture_output=True, text=True,
        )

    def rules(self, jobs: int) -> float:
        self.clean_rules()
        t = time.perf_counter()
        proc = self._scons(jobs)
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"error: scons -j{jobs} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
        self.expect_outputs(self.root, f"rules -j{jobs}")
        return elapsed

    def cli(self) -> float:
        out = self.clean_dir("cli")
        t = time.perf_counter()
        for name, src in zip(self.names, self.sources, strict=False):
            proc = subprocess.run(
                [self.iree_compile, *self.flags, str(src), "-o", str(out / f"{name}.vmfb")],
                env=self.env, capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise SystemExit(f"error: iree-compile failed on {src}:\n{proc.stderr}")
        elapsed = time.perf_counter() - t
        self.expect_outputs(out, "cli loop")
        return elapsed

    def floor(self) -> float:
        out = self.clean_dir("floor")
        job = {
            "flags": self.flags,
            "modules": [[str(s), str(out / f"{n}.vmfb")] for n, s in zip(self.names, self.sources, strict=False)],
        }
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", FLOOR_SCRIPT, json.dumps(job)],
            env=self.env, capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"error: the floor process failed:\n{proc.stdout}\n{proc.stderr}")
        self.floor_detail.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        self.expect_outputs(out, "floor")
        return elapsed


def setup(root: Path) -> Bench:
    mods = make_modules()
    root.mkdir(parents=True, exist_ok=True)
    for name, text in mods.items():
        (root / f"{name}.mlir").write_text(text)
    names = list(mods)
    (root / "SConstruct").write_text(SCONSTRUCT.format(names=names))
    flags = compile_flags()
    check_rules_flags(flags)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return Bench(root=root, names=names, flags=flags, iree_compile=find_iree_compile(), env=env)


def check_modules(bench: Bench) -> None:
    """Every module must compile with the flags (also warms the page cache)."""
    out = bench.clean_dir("check")
    bad = []
    for name, src in zip(bench.names, bench.sources, strict=False):
        proc = subprocess.run(
            [bench.iree_compile, *bench.flags, str(src), "-o", str(out / f"{name}.vmfb")],
            env=bench.env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            bad.append(f"--- {name}\n{proc.stderr.strip()}")
    if bad:
        raise SystemExit("error: modules that do not compile:\n" + "\n".join(bad))
    bench.expect_outputs(out, "check")
    shutil.rmtree(out)


# --------------------------------------------------------------------------
# Diagnostics (--diagnose)
# --------------------------------------------------------------------------


def diagnose(bench: Bench) -> None:
    """Where the rules' time goes beyond the floor's, in a few probes."""
    env = bench.env
    py = sys.executable
    print("\ndiagnostics (median of 3 each):")

    def med(fn: Callable[[], object]) -> float:
        return statistics.median(wall(fn) for _ in range(3))

    bare_py = med(lambda: subprocess.run([py, "-c", "pass"], env=env, check=True))
    print(f"  python start-up                            {bare_py:7.3f} s")
    imp = med(lambda: subprocess.run([py, "-c", "from iree.compiler import api"], env=env, check=True))
    print(f"  python + import iree.compiler.api          {imp:7.3f} s")
    worker = med(lambda: subprocess.run(
        [py, "-m", "iree_build.compile.worker"], env=env, check=True, input="", text=True,
        stdout=subprocess.DEVNULL))
    print(f"  compile worker start + exit (no requests)  {worker:7.3f} s")
    sc_help = med(lambda: subprocess.run([py, "-m", "SCons", "-Q", "-h"], cwd=bench.root, env=env,
                                         capture_output=True, check=True))
    print(f"  scons -Q -h (start-up, read SConstruct)    {sc_help:7.3f} s")
    bench.rules(1)  # leave everything built
    noop = med(lambda: bench._scons(1))
    print(f"  scons -Q -j1 no-op (all up to date)        {noop:7.3f} s")
    one = []
    for _ in range(3):
        (bench.root / f"{bench.names[1]}.vmfb").unlink()
        one.append(wall(lambda: bench._scons(1)))
    print(f"  scons -Q -j1 rebuilding one module         {statistics.median(one):7.3f} s")
    if bench.floor_detail:
        d = bench.floor_detail[-1]
        times = d["times"]
        print(f"  floor: import {d['import_s']:.3f} s, compiles {sum(times):.3f} s "
              f"(min {min(times):.3f}, median {statistics.median(times):.3f}, max {max(times):.3f})")
        slow = sorted(zip(times, bench.names, strict=False), reverse=True)[:3]
        print("  slowest modules: " + ", ".join(f"{n} {t:.3f} s" for t, n in slow))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four variants (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    ap.add_argument("--diagnose", action="store_true", help="also probe where overhead goes")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    with workdir("iree_compile_overhead_", args.keep) as tmp:
        bench = setup(tmp / "project")
        print(f"{N_MODULES} modules, flags: {' '.join(bench.flags)}")
        print(f"iree-compile: {bench.iree_compile}; cores: {os.cpu_count()}")
        check_modules(bench)

        variants: dict[str, Callable[[], float]] = {
            "rules -j1": lambda: bench.rules(1),
            "cli loop": bench.cli,
            "floor": bench.floor,
            "rules -j2": lambda: bench.rules(2),
        }
        results: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        load_before = os.getloadavg()[0]
        for r in range(args.rounds):
            for name, fn in variants.items():
                c = children_cpu()
                results[name].append(fn())
                cpu[name].append(children_cpu() - c)
            print(f"round {r + 1}/{args.rounds}: "
                  + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()), flush=True)

        med = {k: statistics.median(v) for k, v in results.items()}
        print()
        print(f"{'variant':<10} {'median s':>9} {'per module s':>13} {'min s':>7} {'max s':>7}"
              f" {'cpu s':>7}")
        for k, v in results.items():
            print(f"{k:<10} {med[k]:9.3f} {med[k] / N_MODULES:13.3f} {min(v):7.3f} {max(v):7.3f}"
                  f" {statistics.median(cpu[k]):7.3f}")
        print("(wall times; 'cpu s' is the median user+sys CPU of the variant's processes)")
        mins = {k: min(v) for k, v in results.items()}
        cpus = {k: statistics.median(v) for k, v in cpu.items()}
        for label, d in (("min wall", mins), ("cpu", cpus)):
            print(f"by {label}: rules/cli {d['rules -j1'] / d['cli loop']:.3f}, "
                  f"rules/floor {d['rules -j1'] / d['floor']:.3f}"
                  + (f", j2 speedup {d['rules -j1'] / d['rules -j2']:.3f}" if label != "cpu" else ""))
        load = max(load_before, os.getloadavg()[0])
        cores = os.cpu_count() or 1
        if load > 0.5 * cores:
            print(f"warning: load average was {load:.1f} on {cores} cores during the run: other "
                  "work competes for the CPU and the wall times (and -j2 above all) suffer",
                  file=sys.stderr)

        if args.diagnose:
            diagnose(bench)

        print()
        print(f"BENCH rules_vs_cli_ratio {med['rules -j1'] / med['cli loop']:.3f}")
        print(f"BENCH rules_vs_floor_ratio {med['rules -j1'] / med['floor']:.3f}")
        print(f"BENCH j2_speedup {med['rules -j1'] / med['rules -j2']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a no-op ``scons`` and ``scons test`` cost in a large project, against plain SCons.

What is measured
----------------
Two generated projects of the same shape, each an SConstruct that reads
``src/SConscript`` under ``variant_dir="build"``, which reads 20 folder
SConscripts (``SConscript(dirs=...)``), each declaring 25 modules and 25 tests:

``iree``
    per folder 25 ``iree_module(name="mN", src="mN.mlir")`` (tiny distinct
    sources: ``a + N``, llvm-cpu, cpu=generic) and 25 ``iree_test`` of them on
    local-task with ``.npy`` inputs and expectations from the source tree:
    500 modules, 500 tests, one manifest.
``plain``
    the same files and target count with SCons' own ``Command`` builders: per
    module a ``Command("mN.vmfb", "mN.mlir", copy)``, per test a
    ``Command("tN.result.json", [module, inputs, expected], function)`` under
    the ``test`` alias and kept out of a plain ``scons`` (``Ignore`` on each
    folder, as the rules do), and one manifest ``Command``.

Both are built once (the 500 compiles and 500 tests; a few minutes on two
cores; ``--workdir DIR`` keeps and reuses the built projects across runs of
this script). Then, interleaved in rounds (``--rounds``, default 5), medians of
the wall time of one ``python -m SCons -Q`` process with nothing to do:

``scons``       the default targets (every module, the manifest)
``scons test``  the ``test`` alias (every module and result, the manifest)

Each no-op is checked: nothing compiled or copied, ``0 tests run, 500 up to date``.
``--debug=time`` gives each process' SConscript-reading time: the declaration
cost per declared target (module or test).

Output::

    BENCH noop_build_vs_plain X        iree scons / plain scons            (target <= 1.3)
    BENCH noop_test_vs_plain X         iree scons test / plain scons test  (target <= 1.3)
    BENCH noop_build_vs_plain_cpu X    the same with each process' CPU time (user + sys):
    BENCH noop_test_vs_plain_cpu X     steadier than wall time on a machine others share
    BENCH declare_ms_per_target X      iree SConscript time / 1000 declared targets
    BENCH declare_ms_per_target_plain X

Run: ``python benchmarks/noop_scale.py [--rounds N] [--workdir DIR] [--profile]``.
``--profile`` also writes and summarises a cProfile of each iree no-op
(SCons' own ``--profile``), to see where the time goes.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import children_cpu, workdir

FOLDERS = 20
PER_FOLDER = 25
N = FOLDERS * PER_FOLDER
ROUNDS = 5
TARGET = 1.3

MLIR = """\
func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {{
  %c = arith.constant dense<{k}.0> : tensor<4xf32>
  %0 = arith.addf %a, %c : tensor<4xf32>
  return %0 : tensor<4xf32>
}}
"""

SCONSTRUCT_IREE = """\
from iree_rules import *
SConscript("src/SConscript", variant_dir="build", duplicate=False)
"""

SCONSTRUCT_PLAIN = """\
import json

def copy(target, source, env):
    with open(str(target[0]), "wb") as out, open(str(source[0]), "rb") as src:
        out.write(src.read())

def result(target, source, env):
    with open(str(target[0]), "w") as out:
        json.dump({"status": "passed", "sources": [str(s) for s in source]}, out)

def manifest(target, source, env):
    with open(str(target[0]), "w") as out:
        json.dump({"tests": N_TESTS}, out)

env = Environment(tools=[])
top = env.Dir("#")

def plain_test(env, name, module, inputs):
    r = env.Command(name + ".result.json", [module, *inputs], result)
    env.Alias("test", r)
    d = r[0].dir
    while d is not None:
        env.Ignore(d, r)
        d = None if d is top else d.up()
    return r

env.AddMethod(plain_test, "PlainTest")
Export("env", "copy")
SConscript("src/SConscript", variant_dir="build", duplicate=False)
m = env.Command("build/iree_tests.json", [], manifest)
env.Alias("test", m)
""".replace("N_TESTS", str(N))

TOP_SCONSCRIPT = """\
SConscript(dirs=[{dirs}])
"""

FOLDER_IREE = """\
for n in range({first}, {last}):
    iree_module(name=f"m{{n}}", src=f"m{{n}}.mlir")
    iree_test(name=f"t{{n}}", module=f"m{{n}}", function="f", inputs=["x.npy"], expected=[f"e{{n}}.npy"])
"""

FOLDER_PLAIN = """\
Import("env", "copy")
for n in range({first}, {last}):
    module = env.Command(f"m{{n}}.vmfb", f"m{{n}}.mlir", copy)
    env.PlainTest(f"t{{n}}", module, ["x.npy", f"e{{n}}.npy"])
"""

SCONSCRIPT_TIME = re.compile(r"Total SConscript file execution time: ([\d.]+) seconds")
RAN = re.compile(r"^(\d+) tests? run, (\d+) up to date", re.M)


def generate(root: Path, kind: str) -> None:
    """Write one project (``iree`` or ``plain``) of FOLDERS x PER_FOLDER modules and tests."""
    root.mkdir(parents=True)
    (root / "SConstruct").write_text(SCONSTRUCT_IREE if kind == "iree" else SCONSTRUCT_PLAIN)
    src = root / "src"
    src.mkdir(parents=True)
    dirs = ", ".join(f'"g{i:02d}"' for i in range(FOLDERS))
    (src / "SConscript").write_text(TOP_SCONSCRIPT.format(dirs=dirs))
    x = np.arange(4, dtype=np.float32)
    for i in range(FOLDERS):
        folder = src / f"g{i:02d}"
        folder.mkdir()
        first, last = i * PER_FOLDER, (i + 1) * PER_FOLDER
        text = FOLDER_IREE if kind == "iree" else FOLDER_PLAIN
        (folder / "SConscript").write_text(text.format(first=first, last=last))
        np.save(folder / "x.npy", x, allow_pickle=False)
        for n in range(first, last):
            (folder / f"m{n}.mlir").write_text(MLIR.format(k=n))
            np.save(folder / f"e{n}.npy", x + np.float32(n), allow_pickle=False)


def scons(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """The finished process, its wall seconds and its CPU seconds (user + sys)."""
    cpu, t = children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", "-C", str(root), *args],
                          capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t, children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"error: scons {' '.join(args)} in {root} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc, wall, cpu


def ready(root: Path, kind: str) -> None:
    """Generate and build a project once; a built one (``--workdir``) is reused."""
    stamp = root / ".built"
    if stamp.exists():  # reused: bring it up to date with the rules as they are now
        scons(root, "-j2", ".", "test")
        return
    if root.exists():
        raise SystemExit(f"error: {root} exists but was not built by this script; remove it")
    generate(root, kind)
    t = time.perf_counter()
    proc, _, _ = scons(root, "-j2", ".", "test")
    if kind == "iree" and "500 passed, 0 failed, 0 skipped" not in proc.stdout:
        raise SystemExit(f"error: the first iree build did not pass its 500 tests:\n{proc.stdout[-2000:]}")
    print(f"built {kind}: {time.perf_counter() - t:.1f} s", flush=True)
    stamp.write_text("")


def noop(root: Path, kind: str, test: bool) -> tuple[float, float, float]:
    """(wall s, CPU s, SConscript s) of a no-op ``scons`` (or ``scons test``), checked to do nothing."""
    proc, wall, cpu = scons(root, "--debug=time", *(["test"] if test else []))
    out = proc.stdout
    did = [line for line in out.splitlines()
           if line.startswith(("IREE ", "PASS", "FAIL", "copy(", "result(", "manifest("))]
    if did:
        raise SystemExit(f"error: {kind} {'scons test' if test else 'scons'} was not a no-op: {did[:3]}")
    if kind == "iree" and test:
        ran = RAN.search(out)
        if not ran or ran.groups() != ("0", str(N)):
            raise SystemExit(f"error: iree scons test: expected '0 tests run, {N} up to date':\n{out[-1000:]}")
    read = SCONSCRIPT_TIME.search(out)
    if not read:
        raise SystemExit(f"error: no --debug=time figures from {kind}:\n{out[-1000:]}")
    return wall, cpu, float(read.group(1))


def profile(root: Path, out_dir: Path) -> None:
    """cProfile of each iree no-op, the functions with the most cumulative time."""
    for args in ((), ("test",)):
        path = out_dir / f"noop{'_test' if args else ''}.prof"
        scons(root, f"--profile={path}", *args)
        print(f"\n--- cProfile of iree no-op scons {' '.join(args)} ({path}) ---")
        stats = pstats.Stats(str(path))
        stats.sort_stats("cumulative").print_stats(r"iree_build|rules|iree_rules", 30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})")
    ap.add_argument("--workdir", type=Path, help="build the projects here and reuse them next time")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    ap.add_argument("--profile", action="store_true", help="also profile each iree no-op (cProfile)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    def run(base: Path) -> int:
        iree, plain = base / "iree", base / "plain"
        print(f"{N} modules and {N} tests in {FOLDERS} SConscripts (+ top), variant_dir; "
              f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}", flush=True)
        ready(plain, "plain")
        ready(iree, "iree")
        for root, kind in ((iree, "iree"), (plain, "plain")):  # warm the page cache
            noop(root, kind, False)
        variants = {
            "iree scons": lambda: noop(iree, "iree", False),
            "plain scons": lambda: noop(plain, "plain", False),
            "iree scons test": lambda: noop(iree, "iree", True),
            "plain scons test": lambda: noop(plain, "plain", True),
        }
        walls: dict[str, list[float]] = {k: [] for k in variants}
        cpus: dict[str, list[float]] = {k: [] for k in variants}
        reads: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            for name, fn in variants.items():
                w, c, s = fn()
                walls[name].append(w)
                cpus[name].append(c)
                reads[name].append(s)
            print(f"round {r + 1}/{args.rounds}: "
                  + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()), flush=True)
        med = {k: statistics.median(v) for k, v in walls.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        read = {k: statistics.median(v) for k, v in reads.items()}
        print(f"load average {os.getloadavg()[0]:.2f} (above ~0.5 the figures are noisy)")
        print(f"\n{'variant':<17} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7} {'SConscripts s':>14}")
        for k in variants:
            print(f"{k:<17} {med[k]:9.3f} {min(walls[k]):7.3f} {max(walls[k]):7.3f} {cpu[k]:7.3f} "
                  f"{read[k]:14.3f}")
        if args.profile:
            profile(iree, base)
        build_ratio = med["iree scons"] / med["plain scons"]
        test_ratio = med["iree scons test"] / med["plain scons test"]
        declared = 2 * N
        print()
        print(f"BENCH noop_build_vs_plain {build_ratio:.2f}")
        print(f"BENCH noop_test_vs_plain {test_ratio:.2f}")
        print(f"BENCH noop_build_vs_plain_cpu {cpu['iree scons'] / cpu['plain scons']:.2f}")
        print(f"BENCH noop_test_vs_plain_cpu {cpu['iree scons test'] / cpu['plain scons test']:.2f}")
        print(f"BENCH declare_ms_per_target {read['iree scons'] / declared * 1000:.3f}")
        print(f"BENCH declare_ms_per_target_plain {read['plain scons'] / declared * 1000:.3f}")
        missed = [n for n, v in (("noop_build_vs_plain", build_ratio), ("noop_test_vs_plain", test_ratio))
                  if v > TARGET]
        if missed:
            print(f"target missed (> {TARGET}): {', '.join(missed)}")
        return 0

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args.workdir)
    with workdir("iree_noop_scale_", args.keep) as tmp:
        return run(tmp)


if __name__ == "__main__":
    sys.exit(main())

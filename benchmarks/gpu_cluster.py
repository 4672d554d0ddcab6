"""The cluster on a 16-core GPU machine: -j16 compile scaling, and the GPU example's tests.

What it does (everything on this one machine, 127.0.0.1 only)
-------------------------------------------------------------
1. Starts a ``dask scheduler``, sixteen ``dask worker`` processes with
   ``--resources iree-compiler=1`` (the compile host: 16 processes) and one GPU
   worker with ``--resources cuda=1,local-task=1`` (and ``vulkan=1`` when the
   runtime finds a Vulkan device, i.e. the loader and ``VK_DRIVER_FILES`` are set
   up as in shared/gpu.md).
2. Builds 48 matmul modules of growing size (32^3 ... 1536^3, llvm-cpu) from a
   clean state at -j1 and at -j16, through the local pool and through the
   cluster (``--iree-cluster``), after one warm-up build of each. The cluster's
   modules must be byte-identical to the local ones. The warm-up cluster build
   starts the cluster agent (iree_build/cluster/agent.py), which the timed cluster
   builds attach to, as a user's later builds do; ``cluster -j16 no agent``
   (``IREE_CLUSTER_KEEPALIVE=0``) is a build that connects itself.
3. Builds and tests ``examples/gpu`` through the cluster (``scons test -j16
   --iree-cluster=...``) and prints its test lines and closing line.

Output (also written to ``OUT/gpu_cluster.log``)::

    BENCH j16_speedup_local X      local -j1 / local -j16
    BENCH j16_speedup X            cluster -j1 / cluster -j16   (target >= 8)
    BENCH cluster_vs_local_j16_ratio X
    BENCH j16_speedup_no_agent X   cluster -j1 / cluster -j16 without the agent
    BENCH raw_threads_speedup X    the same modules compiled in this process on 1 and on 16
                                   threads, no build tool: the machine's own ceiling

Each build also prints where its time went (SCons' ``--debug=time``, and a timeline of
the compiles: start-up, until the first compile, compiling, after the last), and for
-j1 the slowest modules.

Needs, importable by ``python3``: ``iree.compiler`` (with ``iree-lld`` executable),
``iree.runtime``, ``SCons``, ``toml``, ``llvmlite``, numpy and ``distributed``.
Run from the repository root: ``python3 benchmarks/gpu_cluster.py --out "$OUT"``.

Carrying it to the GPU machine (no network there; 64 MiB a call, so two calls)
------------------------------------------------------------------------------
The machine's image already has click, cloudpickle, jinja2, msgpack, packaging,
psutil, pyyaml, sortedcontainers, toolz, fsspec, llvmlite and numpy. Wheels for
the rest (22 MB), downloaded here into ``.whl/`` (ignored by ``.git/info/exclude``)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
      -d .whl distributed==2026.8.0 dask==2026.8.0 tornado locket tblib zict partd \
      iree-base-runtime==3.13.0 scons toml

The compiler as in shared/gpu.md, into ``.carry/iree-compiler.tar.xz`` (54 MB): unzip
the cp312 ``iree-base-compiler==3.13.0`` wheel, delete ``iree/compiler/_mlir_libs/iree-opt``
and ``iree-link``, ``tar -cf - iree *.dist-info | xz -T2 -6``. ``iree`` is a namespace
package, so the compiler stays in its own folder (``pip --target --upgrade`` would
replace a shared ``iree/`` folder). Call 1, carry ``[".carry"]``::

    mkdir -p /tmp/compiler && tar -xJf .carry/iree-compiler.tar.xz -C /tmp/compiler && chmod +x /tmp/compiler/iree/compiler/_mlir_libs/iree-*

Call 2 (within half a minute, carry ``[".whl"]``)::

    python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:/tmp/compiler || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_cluster.py --out $OUT

That machine sets ``PYTHONDONTWRITEBYTECODE=1``: a ``--no-compile`` install (as the
device notes suggest) leaves every process compiling ``distributed`` from source,
1.4 s instead of 0.7 s on each build's critical path. This script writes missing
bytecode itself (``_common.compile_installed``), as ``pip install`` would have.

For the Vulkan tests too, set the loader up first as shared/gpu.md says (then the
GPU worker also offers ``vulkan=1`` and the example runs with ``--iree-require-devices``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from compile_overhead import _matmul  # noqa: E402

N = 48
JOBS = 16


class Log:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "w", encoding="utf-8")

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def shim_rules(tmp: Path) -> None:
    """``import iree_rules`` from this checkout without installing it (also for workers)."""
    shim = tmp / "shim"
    shim.mkdir()
    (shim / "iree_rules").symlink_to(REPO / "rules")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(shim), str(REPO), os.environ.get("PYTHONPATH")) if p)
    sys.path[:0] = [str(shim)]


TRACED_SCONS = """\
# SCons with a timeline of its compiles: where a build's wall time goes beside them.
import atexit, sys, time
T0 = time.time()
import SCons.Script
import iree_rules.compile_action as ca
spans = []
_run = ca.run_request
def run_request(*args, **kwargs):
    t = time.time()
    try:
        return _run(*args, **kwargs)
    finally:
        spans.append((t, time.time()))
ca.run_request = run_request
import iree_build.cluster.connect as cn
connecting = []
_open = cn._open
def opened(config):
    t, kind = time.time(), "failed"
    try:
        got = _open(config)
        kind = "agent" if type(got).__name__ == "AgentCluster" else "in-process"
        return got
    finally:
        connecting.append((t, time.time(), kind))
cn._open = opened
def report():
    if spans:
        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        print(f"TRACE {T0:.6f} {first:.6f} {last:.6f} {time.time():.6f}", flush=True)
    for t, ready, kind in connecting:
        print(f"CONNECT {t:.6f} {ready:.6f} {kind}", flush=True)
atexit.register(report)
sys.argv[0] = "scons"
SCons.Script.main()
"""


def scons(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=root,
                          capture_output=True, text=True)
    return time.perf_counter() - t, proc


def traced_scons(root: Path, *args: str, env: dict[str, str] | None = None
                 ) -> tuple[float, subprocess.CompletedProcess, str]:
    """As :func:`scons`, also saying how long the process took before its first compile
    started and after its last one ended."""
    script = root.parent / "traced_scons.py"
    if not script.exists():
        script.write_text(TRACED_SCONS)
    started = time.time()
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), "-Q", *args], cwd=root, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t
    ended = started + elapsed
    m = re.search(r"^TRACE ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)$", proc.stdout, re.M)
    trace = ""
    if m:
        main, first, last, atexit_at = map(float, m.groups())
        trace = (f"start-up {main - started:.2f} s, until 1st compile {first - main:.2f} s, "
                 f"compiling {last - first:.2f} s, after the last {ended - last:.2f} s "
                 f"(exit hooks {ended - atexit_at:.2f} s)")
        c = re.search(r"^CONNECT ([\d.]+) ([\d.]+) (\S+)$", proc.stdout, re.M)
        if c:  # the cluster connection, which the first compiles wait for
            began, ready, kind = float(c[1]), float(c[2]), c[3]
            trace += (f"; connecting ({kind}) from {began - main:.2f} s took {ready - began:.2f} s, "
                      f"ready {ready - first:+.2f} s from the 1st compile's start")
    return elapsed, proc, trace


COMMAND_TIME = re.compile(r"^Command execution time: (\S+): ([\d.]+) seconds", re.M)
TOTAL_TIME = re.compile(r"^Total (build|SConscript file execution|SCons execution|command execution) time: "
                        r"([\d.]+) seconds", re.M)


def phases(out: str) -> str:
    """Where one build's time went, from SCons' ``--debug=time`` lines."""
    per = [float(t) for _, t in COMMAND_TIME.findall(out)]
    totals = {k: float(v) for k, v in TOTAL_TIME.findall(out)}
    if not per:
        return ""
    per.sort()
    return (f"SConscripts {totals.get('SConscript file execution', 0):.2f} s, SCons {totals.get('SCons execution', 0):.2f} s, "
            f"compiles: sum {sum(per):.1f} s, min {per[0]:.2f}, median {per[len(per) // 2]:.2f}, "
            f"max {per[-1]:.2f} s")


def build(root: Path, log: Log, n: int, *args: str, env: dict[str, str] | None = None
          ) -> tuple[float, dict[str, bytes]]:
    for p in [*root.glob("*.vmfb"), *root.glob(".sconsign*")]:
        p.unlink()
    elapsed, proc, trace = traced_scons(root, "--debug=time", *args, env=env)
    if proc.returncode != 0:
        log(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"error: scons {' '.join(args)} failed")
    outputs = {p.name: p.read_bytes() for p in root.glob("*.vmfb")}
    if len(outputs) != n:
        raise SystemExit(f"error: {len(outputs)} modules built, expected {n}")
    build.last_phases = f"{phases(proc.stdout)}\n    {trace}"  # type: ignore[attr-defined]
    if "-j1" in args:  # what each module took alone, to see which ones make the -j16 tail
        per = sorted(((float(t), name) for name, t in COMMAND_TIME.findall(proc.stdout)), reverse=True)
        build.last_phases += "\n    slowest: " + ", ".join(f"{n} {t:.2f}" for t, n in per[:8])  # type: ignore[attr-defined]
    return elapsed, outputs


def raw_threads(root: Path, names: list[str], threads: int) -> float:
    """Seconds to compile every module in this process on ``threads`` threads, one
    Session per compile, no build tool: the machine's own ceiling for -jN scaling."""
    from concurrent.futures import ThreadPoolExecutor

    from iree.compiler import api

    flags = ["--iree-hal-target-backends=llvm-cpu", "--iree-llvmcpu-target-cpu=generic",
             "--iree-llvmcpu-target-triple=x86_64-unknown-linux-gnu"]

    def compile_one(name: str) -> None:
        with api.Session() as session:
            session.set_flags(*flags)
            with api.Invocation(session) as inv, api.Source.open_file(
                    session, str(root / f"{name}.mlir")) as source, api.Output.open_membuffer() as out:
                if not (inv.parse_source(source) and inv.execute()):
                    raise SystemExit(f"error: raw compile of {name} failed")
                inv.output_vm_bytecode(out)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(compile_one, names))
    return time.perf_counter() - t


def cpu_summary() -> str:
    """Cores and threads per core, as lscpu says (16 CPUs may be 8 cores with SMT)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "lscpu not available"
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)")
    return "; ".join(" ".join(line.split()) for line in out.splitlines() if line.split(":")[0].strip() in keep)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or ".", help="folder for the log")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modules", type=int, default=N, help="(a smaller trial run)")
    ap.add_argument("--jobs", type=int, default=JOBS, help="(a smaller trial run)")
    args = ap.parse_args()
    n, jobs = args.modules, args.jobs
    Path(args.out).mkdir(parents=True, exist_ok=True)
    log = Log(Path(args.out) / "gpu_cluster.log")
    import importlib.util

    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package is missing
            return False

    missing = [m for m in ("iree.compiler", "iree.runtime", "distributed", "SCons", "toml", "llvmlite")
               if not found(m)]
    if missing:
        log(f"error: not importable: {', '.join(missing)} (carry them as this script's docstring says)")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="iree_gpu_cluster_"))
    os.environ["IREE_CLUSTER_AGENT_DIR"] = str(tmp / "agents")  # stopped with the cluster
    shim_rules(tmp)

    import distributed
    import iree.compiler.version as cv

    from iree_build.cluster.local import LocalCluster
    from iree_build.testing.devices import probe_device

    log(f"python {sys.version.split()[0]}, cores {os.cpu_count()}, iree-base-compiler {cv.VERSION}, "
        f"distributed {distributed.__version__}")
    import importlib.util as iu
    cached = Path(iu.cache_from_source(distributed.__file__)).exists()
    log(f"bytecode: distributed's {'is' if cached else 'is NOT'} cached; "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    for code in ("pass", "import SCons.Script", "import iree_rules", "import distributed",
                 "import iree.compiler.api"):  # fixed costs a build pays (the second of two runs)
        for _ in range(2):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            took = time.perf_counter() - t
        log(f"python -c {code!r}: {took:.3f} s")
    devices = {"cuda": 1, "local-task": 1}
    for name in ("cuda", "vulkan"):
        status = probe_device(name)
        log(f"{name}: {status.reason}")
        if name == "vulkan" and status.present:
            devices["vulkan"] = 1

    root = tmp / "matmuls"
    root.mkdir()
    names = []
    for i in range(n):
        s = 32 * (i + 1)
        names.append(f"mm_{s}")
        (root / f"mm_{s}.mlir").write_text(_matmul(s, s, s))
    (root / "SConstruct").write_text(
        "from iree_rules import *\n"
        f"for name in {names!r}:\n"
        "    iree_module(name=name, src=name + '.mlir', target_backends=['llvm-cpu'], cpu='generic')\n")

    (tmp / "dask").mkdir()
    cluster = LocalCluster(tmp / "dask")
    try:
        t = time.perf_counter()
        cluster.start_scheduler()
        compilers = [f"compile-{i}" for i in range(jobs)]
        for name in compilers:
            cluster.start_worker(name, {"iree-compiler": 1})
        cluster.start_worker("gpu", devices)
        cluster.wait_for([*compilers, "gpu"], timeout=180)
        log(f"cluster at {cluster.address}: {jobs} compile workers, gpu worker {devices} "
            f"(up in {time.perf_counter() - t:.1f} s)")
        on = f"--iree-cluster={cluster.address}"

        variants = {"local -j1": ("-j1",), "local -j16": (f"-j{jobs}",),
                    "cluster -j1": ("-j1", on), "cluster -j16": (f"-j{jobs}", on),
                    "cluster -j16 no agent": (f"-j{jobs}", on)}
        no_agent = {"IREE_CLUSTER_KEEPALIVE": "0"}  # each build connects itself
        _, reference = build(root, log, n, f"-j{jobs}")  # warm-up: page cache, compiler facts
        build(root, log, n, f"-j{jobs}", on)  # warm-up: every compile worker's compiler loaded
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                elapsed, outputs = build(root, log, n, *variants[name],
                                         env=no_agent if name.endswith("no agent") else None)
                if outputs != reference:
                    raise SystemExit(f"error: {name} built different bytes")
                times[name].append(elapsed)
                log(f"round {r + 1}: {name} {elapsed:.2f} s ({n / elapsed:.2f} modules/s); "
                    f"{build.last_phases}")  # type: ignore[attr-defined]
        med = {k: statistics.median(v) for k, v in times.items()}
        log(cpu_summary())
        raw_1 = raw_threads(root, names, 1)
        raw_n = raw_threads(root, names, jobs)
        log(f"raw in-process threads: 1 thread {raw_1:.2f} s, {jobs} threads {raw_n:.2f} s "
            f"({raw_1 / raw_n:.2f}x)")

        example = tmp / "gpu_example"
        shutil.copytree(REPO / "examples" / "gpu", example)
        require = ["--iree-require-devices"] if "vulkan" in devices else []
        elapsed, proc = scons(example, "test", f"-j{jobs}", on, *require)
        log(f"\n$ scons test -j{jobs} {on} {' '.join(require)}   (examples/gpu, {elapsed:.1f} s, "
            f"exit {proc.returncode})")
        log(proc.stdout.rstrip())
        if proc.stderr.strip():
            log(proc.stderr.rstrip()[-3000:])
    finally:
        cluster.stop()
    log()
    log(f"BENCH j16_speedup_local {med['local -j1'] / med['local -j16']:.3f}")
    log(f"BENCH j16_speedup {med['cluster -j1'] / med['cluster -j16']:.3f}")
    log(f"BENCH cluster_vs_local_j16_ratio {med['cluster -j16'] / med['local -j16']:.3f}")
    log(f"BENCH j16_speedup_no_agent {med['cluster -j1'] / med['cluster -j16 no agent']:.3f}")
    log(f"BENCH raw_threads_speedup {raw_1 / raw_n:.3f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""What sending compiles to a Dask cluster costs against the local worker pool.

What is measured
----------------
The twenty modules of ``compile_overhead.py`` are built from a clean state
(no outputs, no ``.sconsign.dblite``) by ``python -m SCons -Q -j2`` in two ways
that do identical compiler work:

``local -j2``
    the rules' own pool of two compile worker processes (the default).
``cluster -j2``
    the same build with ``--iree-cluster=ADDRESS``: a ``dask scheduler`` and two
    ``dask worker`` processes with ``--resources iree-compiler=1`` on this
    machine (127.0.0.1), started once before the rounds, as a cluster is. Every
    source travels to a worker, is compiled in its scratch folder, and the
    module comes back as bytes; the cluster's outputs must be byte-identical to
    the local ones, or the benchmark fails.

``cluster -j2 no agent``
    the same with ``IREE_CLUSTER_KEEPALIVE=0``: the build imports Dask and connects
    itself, where ``cluster -j2`` hands its work to the cluster agent that the
    warm-up build started (iree_build/cluster/agent.py), as a user's later builds do.

Each wall time is the whole SCons process. The variants alternate in rounds
(``--rounds``, default 3), the order flipping every round; medians are reported::

    BENCH cluster_vs_local_ratio X            cluster -j2 / local -j2     (target <= 1.2)
    BENCH cluster_no_agent_vs_local_ratio X   cluster -j2 no agent / local -j2

Run: ``python benchmarks/cluster_overhead.py [--rounds N] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import workdir
from compile_overhead import N_MODULES, SCONSTRUCT, make_modules

from iree_build.cluster.local import LocalCluster


def clean(root: Path) -> None:
    for p in [*root.glob("*.vmfb"), *root.glob(".sconsign*")]:
        p.unlink()


def build(root: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[float, dict[str, bytes]]:
    clean(root)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", "-j2", *extra], cwd=root,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"error: scons -j2 {' '.join(extra)} failed:\n{proc.stdout}\n{proc.stderr}")
    outputs = {p.name: p.read_bytes() for p in root.glob("*.vmfb") if p.stat().st_size > 0}
    if len(outputs) != N_MODULES:
        raise SystemExit(f"error: {len(outputs)} non-empty modules built, expected {N_MODULES}")
    return elapsed, outputs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the two variants (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    with workdir("iree_cluster_overhead_", args.keep) as tmp:
        root = tmp / "project"
        root.mkdir()
        mods = make_modules()
        for name, text in mods.items():
            (root / f"{name}.mlir").write_text(text)
        (root / "SConstruct").write_text(SCONSTRUCT.format(names=list(mods)))
        (tmp / "dask").mkdir()
        os.environ["IREE_CLUSTER_AGENT_DIR"] = str(tmp / "agents")  # stopped with the cluster
        cluster = LocalCluster(tmp / "dask")
        try:
            cluster.start_scheduler()
            for name in ("compile-a", "compile-b"):
                cluster.start_worker(name, {"iree-compiler": 1})
            cluster.wait_for(["compile-a", "compile-b"])
            on = f"--iree-cluster={cluster.address}"
            print(f"{N_MODULES} modules; cluster at {cluster.address} with 2 compile workers; "
                  f"cores: {os.cpu_count()}", flush=True)
            _, reference = build(root)  # warm-up: page cache, compiler facts, the workers' compilers
            build(root, on)
            variants = {"local -j2": (), "cluster -j2": (on,), "cluster -j2 no agent": (on,)}
            no_agent = {"IREE_CLUSTER_KEEPALIVE": "0"}
            times: dict[str, list[float]] = {k: [] for k in variants}
            load_before = os.getloadavg()[0]
            for r in range(args.rounds):
                order = list(variants) if r % 2 == 0 else list(reversed(variants))
                for name in order:
                    elapsed, outputs = build(root, *variants[name],
                                             env=no_agent if name.endswith("no agent") else None)
                    if outputs != reference:
                        differ = sorted(k for k in reference if outputs.get(k) != reference[k])
                        raise SystemExit(f"error: {name} built different bytes for {', '.join(differ)}")
                    times[name].append(elapsed)
                print(f"round {r + 1}/{args.rounds}: "
                      + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        finally:
            cluster.stop()
        med = {k: statistics.median(v) for k, v in times.items()}
        print()
        for k, v in times.items():
            print(f"{k:<22} median {med[k]:7.3f} s  min {min(v):7.3f}  max {max(v):7.3f}")
        load = max(load_before, os.getloadavg()[0])
        if load > 0.5 * (os.cpu_count() or 1):
            print(f"warning: load average was {load:.1f} on {os.cpu_count()} cores: other work "
                  "competes for the CPU", file=sys.stderr)
        print()
        print(f"BENCH cluster_vs_local_ratio {med['cluster -j2'] / med['local -j2']:.3f}")
        print(f"BENCH cluster_no_agent_vs_local_ratio {med['cluster -j2 no agent'] / med['local -j2']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

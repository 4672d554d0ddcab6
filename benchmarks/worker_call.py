"""What a run worker spends per tiny test: the ``"tests"`` batch loop, in process.

A run worker answers a batch of CPU function calls with
``run_worker._batch_item`` per test: parse the entry, sign it (hash its files),
load its data, call the function in a fresh ``VmContext``, compare, encode the
result, write its file and the reply line. With two workers and SCons sharing two
cores, this per-test CPU is what bounds ``scons -j2 test`` and the runner (issue 24).

This calls that loop directly, as the worker does (one ``FileHasher`` per run, the
worker's ``check`` modules), over every function-call test of a built tree, result
files going to a temporary folder (the tree's own are left alone). One warm-up pass,
then three passes, each a fresh run (so files are hashed and paths checked again);
every test must pass. Output::

    BENCH worker_call_ms X        median wall ms per test
    BENCH worker_call_cpu_ms X    median CPU ms per test (this process, its threads)

Run: ``python benchmarks/worker_call.py [DIR]``, ``DIR`` a built tree (its
``iree_tests.json``; e.g. the ``n1000`` folder that ``test_throughput.py --keep``
leaves). Without it, a 300-test tree is built first with the project's SCons, as
``test_throughput.py`` builds its own (not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, workdir

sys.path.insert(0, str(REPO))

from iree_build.testing.check_module import CheckModules  # noqa: E402
from iree_build.testing.devices import DevicePool  # noqa: E402
from iree_build.testing.manifest import MANIFEST_NAME, load_manifest  # noqa: E402
from iree_build.testing.run_worker import RETAIN_BYTES, _batch_item  # noqa: E402
from iree_build.testing.runner import device_identity  # noqa: E402
from iree_build.testing.signature import FileHasher  # noqa: E402


def build_tree(tmp: Path, n: int) -> Path:
    """A ``test_throughput.py`` project of ``n`` tests, built with SCons."""
    from test_throughput import Project

    project = Project(tmp, n, "iree-run-module")
    proc, _ = project.scons("-j2", "test")
    if proc.returncode != 0:
        sys.exit(f"building the {n}-test tree failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return project.root


def measure(tree: Path, passes: int = 3) -> tuple[float, float, int]:
    """(median wall ms, median CPU ms) per test over ``passes`` runs, and the test count."""
    manifest = load_manifest(tree / MANIFEST_NAME)
    entries = json.loads((tree / MANIFEST_NAME).read_text())["tests"]
    calls = [
        (spec, entry) for spec, entry in zip(manifest.tests, entries, strict=True) if spec.kind == "call"
    ]
    if not calls:
        sys.exit(f"{tree / MANIFEST_NAME}: no function-call tests")
    pool, checks = DevicePool(), CheckModules()
    base = str(tree.resolve())
    with tempfile.TemporaryDirectory(prefix="worker_call_") as out:
        items = [
            {
                "i": i,
                "spec": entry,
                "hardware": device_identity(spec),
                "result_file": os.path.join(out, f"{i}.json"),
            }
            for i, (spec, entry) in enumerate(calls)
        ]
        req = {"op": "tests", "base_dir": base, "retest": True, "passed_only": True}
        walls, cpus = [], []
        for n in range(passes + 1):
            hasher = FileHasher(retain=RETAIN_BYTES)  # a new run: nothing known yet
            wall, cpu = time.perf_counter(), time.process_time()
            replies = [_batch_item(pool, hasher, req, item, checks) for item in items]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            failed = [r for r in map(json.loads, replies) if r["result"]["status"] != "passed"]
            if failed:
                sys.exit(f"{len(failed)} test(s) did not pass, the first: {failed[0]['result']['message']}")
            if n:  # the first pass warms up
                walls.append(wall * 1e3 / len(items))
                cpus.append(cpu * 1e3 / len(items))
    return statistics.median(walls), statistics.median(cpus), len(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree", nargs="?", type=Path, help="a built tree (default: build 300 tests)")
    parser.add_argument("--keep", action="store_true", help="keep the tree it builds")
    args = parser.parse_args(argv)
    if args.tree is not None:
        wall, cpu, n = measure(args.tree)
    else:
        with workdir("iree_worker_call_", args.keep) as tmp:
            wall, cpu, n = measure(build_tree(tmp, 300))
    print(f"{n} tests, median of 3 passes")
    print(f"BENCH worker_call_ms {wall:.3f}")
    print(f"BENCH worker_call_cpu_ms {cpu:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU lanes: one worker process and one device instance per lane, one test at a time each.

Real modules on the software Vulkan driver (lavapipe) in real run workers. A host here
has one Vulkan device, so ``--device-lanes=vulkan:2`` gives its driver two lanes: two
workers, each its own device instance, as a host with two GPUs would have. Without a
Vulkan device the runtime tests skip with the device's reason; the pure parts run anyway.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from iree_build.__main__ import main as cli_main
from iree_build.testing import manifest, runner
from iree_build.testing.device_names import parse_lane_counts
from iree_build.testing.devices import device_status
from iree_build.testing.results import read_result
from iree_build.testing.run_pool import RunPool
from iree_build.testing.selection import Selection

PYTHON = sys.executable
IREE_COMPILE = shutil.which("iree-compile", path=str(Path(PYTHON).parent)) or shutil.which("iree-compile")

# A host-side loop of N dispatches: long enough (on lavapipe) for two lanes' tests to
# overlap; with a huge N, a device that never answers.
SPIN_MLIR = """
func.func @spin(%n: tensor<i32>, %a: tensor<64xf32>) -> tensor<64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %nv = tensor.extract %n[] : tensor<i32>
  %ni = arith.index_cast %nv : i32 to index
  %ones = arith.constant dense<1.0> : tensor<64xf32>
  %r = scf.for %i = %c0 to %ni step %c1 iter_args(%acc = %a) -> (tensor<64xf32>) {
    %s = arith.addf %acc, %ones : tensor<64xf32>
    scf.yield %s : tensor<64xf32>
  }
  return %r : tensor<64xf32>
}
"""
SPIN = 600  # dispatches per passing test
HANG = 2_000_000_000


def _vulkan() -> tuple[bool, str]:
    return device_status("vulkan")


needs_vulkan = pytest.mark.skipif(not _vulkan()[0], reason=f"no Vulkan device: {_vulkan()[1]}")


# --- what needs no device -----------------------------------------------------------


def test_lane_counts_are_one_option_and_a_bad_one_is_one_line() -> None:
    assert parse_lane_counts("vulkan:2, rocm:3") == {"vulkan": 2, "hip": 3}
    assert parse_lane_counts("") == {}
    for bad in ("vulkan", "vulkan:0", "local-task:2", "cuda:x"):
        with pytest.raises(ValueError, match=r"^--device-lanes: .* is not DRIVER:N"):
            parse_lane_counts(bad)
    assert cli_main(["test", "nowhere", "--device-lanes", "vulkan:zero"]) == 2


def test_one_gpu_by_uri_selects_the_tests_of_its_driver() -> None:
    one = Selection(devices=("cuda://1",))
    assert one.matches("t[cuda]", "cuda") and one.matches("t[cuda]", "cuda://1")
    assert not one.matches("t[cuda]", "cuda://0") and not one.matches("t[vulkan]", "vulkan")
    assert not Selection(devices=("cuda",)).matches("t[cuda]", "cuda://1")  # declared on that GPU only
    assert Selection(devices=("rocm://0",)).matches("t[hip]", "hip")


def test_lanes_of_a_driver_come_from_its_devices_or_the_option() -> None:
    pool = RunPool(keep_spare=False)
    try:
        assert pool.lanes("local-task") == ["cpu"]
        assert pool.lanes("cuda://1") == ["cuda://1"]  # named by URI: that GPU alone
        listed = pool.device_infos("vulkan")  # asked of a worker, which holds the runtime
        if os.environ.get("CI") == "true":  # CI installs lavapipe: the lanes must really run there
            assert listed
        assert pool.lanes("vulkan") == ([f"vulkan://{k}" for k in range(len(listed))] or ["vulkan"])
        pool.configure_lanes({"vulkan": 3, "cuda": 3})
        if listed:  # three lanes over the devices there are
            assert pool.lanes("vulkan") == ["vulkan://0", "vulkan://1", "vulkan://2"]
        if not pool.device_infos("cuda"):  # no GPU: one lane, whose tests say why they skip
            assert pool.lanes("cuda") == ["cuda"]
        pool.configure_lanes({"vulkan": 3}, only=("vulkan://2", "local-task"))
        assert pool.lanes("vulkan") == ["vulkan://2"]
        pool.configure_lanes({}, only=("cuda://2",))
        assert pool.lanes("cuda") == ["cuda://2"]  # absent or not, its worker says when it runs
    finally:
        pool.close()


# --- real runs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def spin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if IREE_COMPILE is None:
        pytest.fail("iree-compile not found next to the test interpreter")
    out = tmp_path_factory.mktemp("spin")
    (out / "spin.mlir").write_text(SPIN_MLIR)
    subprocess.run(
        [
            IREE_COMPILE,
            "--iree-hal-target-device=vulkan",
            str(out / "spin.mlir"),
            "-o",
            str(out / "spin.vmfb"),
        ],
        check=True,
        capture_output=True,
    )
    return out / "spin.vmfb"


def _tree(root: Path, spin: Path, tests: list[tuple[str, int, float]]) -> Path:
    """A built tree of ``spin`` tests on ``vulkan``: (name, dispatches, timeout)."""
    shutil.copy(spin, root / "spin.vmfb")
    entries = []
    for name, n, timeout in tests:
        np.save(root / f"{name}.n.npy", np.array(n, dtype=np.int32))
        np.save(root / f"{name}.a.npy", np.zeros(64, np.float32))
        np.save(root / f"{name}.out.npy", np.full(64, min(n, 1 << 24), np.float32))
        entry = {
            "name": f"{name}[vulkan]",
            "base": name,
            "device": "vulkan",
            "module": "spin.vmfb",
            "function": "spin",
            "inputs": [f"{name}.n.npy", f"{name}.a.npy"],
            "expected": [f"{name}.out.npy"],
            "rtol": 0.0,
            "atol": 0.0,
            "declared_at": "SConscript:1",
            "result": f"{name}.result.json",
        }
        if timeout:
            entry["timeout"] = timeout
        entries.append(entry)
    path = root / manifest.MANIFEST_NAME
    path.write_text(json.dumps({"format": manifest.FORMAT, "tests": entries}))
    return path


def _run(path: Path, pool: RunPool, **options) -> tuple[runner.RunReport, str]:
    out = io.StringIO()
    report = runner.run_manifest(path, runner.RunOptions(jobs=4, **options), out=out, pool=pool)
    return report, out.getvalue()


def _overlap(a, b) -> bool:
    return a.started < b.ended and b.started < a.ended


@needs_vulkan
def test_two_lanes_run_gpu_tests_side_by_side_one_at_a_time_each(tmp_path: Path, spin: Path) -> None:
    path = _tree(tmp_path, spin, [(f"s{i}", SPIN, 0) for i in range(6)])
    pool = RunPool()
    try:
        report, out = _run(path, pool, device_lanes={"vulkan": 2})
    finally:
        pool.close()
    assert report.exit_code == 0, out
    results = [read_result(tmp_path / f"s{i}.result.json") for i in range(6)]
    assert all(r is not None and r.status == "passed" for r in results), out
    by_lane: dict[str, list] = {}
    for r in results:
        by_lane.setdefault(r.lane, []).append(r)
    assert sorted(by_lane) == ["vulkan://0", "vulkan://1"], out
    for lane, ran in by_lane.items():  # one test at a time on a lane
        assert not any(_overlap(a, b) for i, a in enumerate(ran) for b in ran[i + 1 :]), lane
    zero, one = by_lane["vulkan://0"], by_lane["vulkan://1"]
    assert any(_overlap(a, b) for a in zero for b in one), "the two lanes never ran at once"
    # The same model on both lanes, and results that hold for it on either lane.
    assert {r.model for r in results} == {pool.lane_model("vulkan://0")} and results[0].model
    assert len({r.signature for r in results}) == 1 and results[0].signature


@needs_vulkan
def test_a_hung_lane_is_retired_alone_and_the_other_goes_on(tmp_path: Path, spin: Path) -> None:
    tests = [("hang", HANG, 4.0), *((f"s{i}", SPIN, 0) for i in range(5))]
    path = _tree(tmp_path, spin, tests)
    pool = RunPool()
    try:
        report, out = _run(path, pool, device_lanes={"vulkan": 2})
    finally:
        pool.close()
    ran = {r.name: r for r in report.results}  # a failure's result file is not kept
    hang = ran["hang[vulkan]"]
    assert hang is not None and hang.status == "timeout", out
    assert "no answer after 4 s" in hang.message and hang.lane in ("vulkan://0", "vulkan://1"), hang.message
    other = "vulkan://1" if hang.lane == "vulkan://0" else "vulkan://0"
    passed = [read_result(tmp_path / f"s{i}.result.json") for i in range(5)]
    assert all(r is not None and r.status == "passed" for r in passed), out
    beside = [r for r in passed if r.lane == other]
    assert beside and any(_overlap(hang, r) for r in beside), out  # the other lane went on
    assert len(pool.workers_of[other]) == 1, pool.workers_of  # its one worker was never replaced
    assert len(pool.workers_of[hang.lane]) >= 1 + (hang.lane in {r.lane for r in passed}), pool.workers_of
    assert report.exit_code == 1 and f"worker stopped) on {hang.lane}\n" in out, out
    assert all(f"PASS {r.name} ({r.time_ms:.1f} ms) on {r.lane}" in out for r in passed), out


@needs_vulkan
def test_a_crashed_lane_is_replaced_alone(tmp_path: Path, spin: Path) -> None:
    """A lane's worker killed mid-test (as the OOM killer or a driver reset would): that test
    is a CRASH, its lane gets a fresh worker, the other lane keeps its own."""
    path = _tree(tmp_path, spin, [("victim", HANG, 0), *((f"s{i}", SPIN, 0) for i in range(4))])
    pool = RunPool()
    done = threading.Event()
    killed: list[int] = []

    def kill_the_busy_lane() -> None:  # once the others are done, only the victim's lane is busy
        while not done.is_set():
            if all((tmp_path / f"s{i}.result.json").exists() for i in range(4)):
                with pool._lock:
                    busy = sorted(pool._busy)
                if len(busy) == 1:
                    killed.append(pool.workers_of[busy[0]][-1])
                    os.kill(killed[0], signal.SIGKILL)
                    return
            done.wait(0.05)

    killer = threading.Thread(target=kill_the_busy_lane, daemon=True)
    killer.start()
    try:
        report, out = _run(path, pool, device_lanes={"vulkan": 2})
    finally:
        done.set()
        killer.join()
        pool.close()
    victim = {r.name: r for r in report.results}["victim[vulkan]"]  # a failure's file is not kept
    assert killed and victim is not None and victim.status == "crashed", out
    assert "SIGKILL" in victim.message and victim.lane in ("vulkan://0", "vulkan://1"), victim.message
    other = "vulkan://1" if victim.lane == "vulkan://0" else "vulkan://0"
    passed = [read_result(tmp_path / f"s{i}.result.json") for i in range(4)]
    assert all(r is not None and r.status == "passed" for r in passed), out
    assert {r.lane for r in passed} >= {other}, out
    assert pool.workers_of[other] == pool.workers_of[other][:1], pool.workers_of  # never replaced
    assert killed[0] in pool.workers_of[victim.lane] and report.exit_code == 1, out


@needs_vulkan
def test_one_gpu_by_uri_runs_on_that_lane_only(tmp_path: Path, spin: Path) -> None:
    path = _tree(tmp_path, spin, [(f"s{i}", 10, 0) for i in range(3)])
    pool = RunPool()
    try:
        report, out = _run(path, pool, devices=["vulkan://1"], device_lanes={"vulkan": 2})
        assert report.exit_code == 0, out
        assert {read_result(tmp_path / f"s{i}.result.json").lane for i in range(3)} == {"vulkan://1"}
        report, out = _run(path, pool, devices=["vulkan://7"], retest=True)
    finally:
        pool.close()
    assert "SKIP s0[vulkan] (vulkan://7: no lane 7: vulkan has 1 device(s) here" in out, out


# --- scons test ---------------------------------------------------------------------

SCONS_TESTS = """\
import numpy as np
iree_module(name="spin", src="spin.mlir", target_backends=["vulkan-spirv"])
for i in range(4):
    iree_test(name=f"s{i}", module="spin", function="spin", devices=["vulkan"],
              inputs=[np.array(SPIN, dtype=np.int32), np.zeros(64, np.float32)],
              expected=[np.full(64, SPIN, np.float32)])
iree_test(name="one", module="spin", function="spin", devices=["vulkan://1"],
          inputs=[np.array(10, dtype=np.int32), np.zeros(64, np.float32)], expected=[np.full(64, 10, np.float32)])
""".replace("SPIN", str(SPIN))


@needs_vulkan
def test_scons_spreads_gpu_tests_over_lanes_and_one_gpu_is_a_uri(project) -> None:
    project.write(
        "SConstruct",
        'from iree_rules import *\nSConscript("src/SConscript", variant_dir="build", duplicate=False)\n',
    )
    project.write("src/SConscript", SCONS_TESTS)
    project.write("src/spin.mlir", SPIN_MLIR)
    run = project.scons("-j4", "test", "--iree-device-lanes=vulkan:2")
    assert run.returncode == 0, run.output
    assert (
        "PASS one[vulkan://1]" in run.stdout
        and run.stdout.splitlines()[-1] == "5 passed, 0 failed, 0 skipped"
    )
    results = {p.name: read_result(p) for p in project.path("build").glob("*.result.json")}
    assert results["one.vulkan-1.result.json"].lane == "vulkan://1", sorted(results)
    lanes = {r.lane for r in results.values()}
    assert lanes <= {"vulkan://0", "vulkan://1"} and "vulkan://1" in lanes, results
    for lane in lanes:  # one test at a time on a lane, in SCons' job threads too
        ran = [r for r in results.values() if r.lane == lane]
        assert not any(_overlap(a, b) for i, a in enumerate(ran) for b in ran[i + 1 :]), lane

    only = project.scons("-j4", "test", "--iree-devices=vulkan://0", "--iree-retest")
    assert only.returncode == 0, only.output
    assert only.stdout.splitlines()[-1] == "4 passed, 0 failed, 0 skipped", only.output  # not one[vulkan://1]
    assert {read_result(p).lane for p in project.path("build").glob("s*.vulkan.result.json")} == {
        "vulkan://0"
    }

    bad = project.scons("test", "--iree-device-lanes=vulkan")
    assert bad.returncode == 2 and "Traceback" not in bad.output
    assert "--iree-device-lanes: 'vulkan' is not DRIVER:N" in bad.stderr, bad.stderr


# --- a Dask worker offering two lanes -----------------------------------------------


@needs_vulkan
def test_a_cluster_worker_offering_two_lanes_runs_two_gpu_tests_at_once(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, spin: Path
) -> None:
    """``vulkan=2`` (two GPUs, here two lanes of lavapipe): two tests at once, each on its lane."""
    from iree_build.cluster.client import Cluster
    from iree_build.cluster.config import ClusterConfig
    from iree_build.cluster.device_tests import ClusterTests
    from iree_build.cluster.local import LocalCluster

    # Longer tests: each task starts a runner process, whose start-up varies by a second.
    path = _tree(tmp_path, spin, [(f"s{i}", 5 * SPIN, 0) for i in range(4)])
    local = LocalCluster(tmp_path_factory.mktemp("dask"))
    try:
        local.start_scheduler()
        local.start_worker("gpus", {"vulkan": 2}, nthreads=2, env={"IREE_DEVICE_LANES": "vulkan:2"})
        local.wait_for(["gpus"])
        cluster = Cluster(ClusterConfig.from_values(local.address))
        try:
            report, out = _run(path, RunPool(), remote=ClusterTests(cluster))
        finally:
            cluster.close()
    finally:
        local.stop()
    assert report.exit_code == 0, out
    results = [read_result(tmp_path / f"s{i}.result.json") for i in range(4)]
    by_lane: dict[str, list] = {}
    for r in results:
        by_lane.setdefault(r.lane, []).append(r)
    assert sorted(by_lane) == ["vulkan://0", "vulkan://1"], out
    for lane, ran in by_lane.items():
        assert not any(_overlap(a, b) for i, a in enumerate(ran) for b in ran[i + 1 :]), lane
    assert any(_overlap(a, b) for a in by_lane["vulkan://0"] for b in by_lane["vulkan://1"]), out


def test_a_device_uri_names_a_gpu_by_index_or_is_one_line(project) -> None:
    project.write("add.mlir", SPIN_MLIR)
    for bad in ("local-task://1", "cuda://GPU-1234", "cudaa://1"):
        project.write(
            "SConstruct",
            'from iree_rules import *\niree_module(name="m", src="add.mlir", target_backends=["cuda"])\n'
            f'iree_test(name="t", module="m", function="add", inputs=[[1.0], [1.0]], expected=[[2.0]], devices=["{bad}"])\n',
        )
        run = project.scons("test")
        assert run.returncode == 2 and "Traceback" not in run.output, run.output
        assert run.stderr.startswith("scons: *** SConstruct:3: iree_test devices: HAL device "), run.stderr
        assert "a device URI names one GPU of a driver by its index, e.g. 'cuda://1'" in run.stderr, run.stderr

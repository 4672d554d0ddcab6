"""Modules cross-compiled for aarch64, tested here under qemu-user (the emulated lane).

The aarch64 runtime tools come from the registry through the product's own fetch step
(``python -m iree_build runtime aarch64``, once per machine: a user cache); the tests
that run code skip with the reason when qemu-user (``apt-get install qemu-user
libc6-arm64-cross libstdc++6-arm64-cross``) or the wheel cannot be had.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ADD_MLIR, ENDLESS_LOOP, Project

from iree_build.errors import IreeBuildError
from iree_build.hardware import hardware_identity
from iree_build.testing.emulation import host_arch, lane_for, lane_hardware, parse_emulator

pytestmark = pytest.mark.skipif(host_arch() != "x86_64", reason="the lane is tested from x86-64")

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]

TYPES_MLIR = """\
func.func @bf(%a: tensor<2x3xbf16>) -> tensor<2x3xbf16> {
  %0 = arith.addf %a, %a : tensor<2x3xbf16>
  return %0 : tensor<2x3xbf16>
}
func.func @scal(%a: i32, %b: tensor<f32>) -> (i32, tensor<f32>) {
  %c = arith.addi %a, %a : i32
  return %c, %b : i32, tensor<f32>
}
func.func @f8(%a: tensor<3xf8E4M3FN>) -> tensor<3xf8E4M3FN> {
  return %a : tensor<3xf8E4M3FN>
}
func.func @dyn(%a: tensor<?xf32>) -> tensor<?xf32> {
  %0 = arith.addf %a, %a : tensor<?xf32>
  return %0 : tensor<?xf32>
}
"""

# A gather whose index comes from the caller: an index of 2**40 reads far outside the
# buffer, and the aarch64 code faults (SIGSEGV), as any CPU code reading out of bounds.
CRASH_MLIR = """\
func.func @gather(%src: tensor<4xf32>, %idx: tensor<4xi64>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %0 = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = ["parallel"]}
      ins(%idx : tensor<4xi64>) outs(%e : tensor<4xf32>) {
  ^bb0(%i: i64, %o: f32):
    %j = arith.index_cast %i : i64 to index
    %v = tensor.extract %src[%j] : tensor<4xf32>
    linalg.yield %v : f32
  } -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

HANG_MLIR = "func.func @hang() -> tensor<1xi32> {\n" + ENDLESS_LOOP + "  return %t : tensor<1xi32>\n}\n"

CHECK_MLIR = """\
func.func @test_one() {
  %a = util.unfoldable_constant dense<[1, 2]> : tensor<2xi32>
  check.expect_eq_const(%a, dense<[1, 2]> : tensor<2xi32>) : tensor<2xi32>
  return
}
"""

SCONSTRUCT = """\
from iree_rules import *
ADD = dict(inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
for name, src in (("add", "add.mlir"), ("types", "types.mlir"), ("crash", "crash.mlir"),
                  ("hang", "hang.mlir")):
    iree_module(name=name, src=src, toolchain="aarch64-linux")
iree_module(name="native", src="add.mlir")  # this machine's code: plain local-task
iree_test(name="native", module="native", function="add", expected=[[2.0, 3.0, 4.0, 5.0]], **ADD)
iree_test(name="good", module="add", function="add", expected=[[2.0, 3.0, 4.0, 5.0]],
          devices=["local-task", "local-sync"], **ADD)
iree_test(name="wrong", module="add", function="add", expected=[[2.0, 3.0, 4.0, 6.0]], **ADD)
iree_test(name="bf16", module="types", function="bf", inputs=["2x3xbf16=1 2 3 4 5 6"],
          expected=["2x3xbf16=2 4 6 8 10 12"])
iree_test(name="scalars", module="types", function="scal", inputs=[5, 2.5], expected=[10, 2.5])
iree_test(name="f8", module="types", function="f8", inputs=["3xf8E4M3FN=1 2 -0.5"],
          expected=["3xf8E4M3FN=1 2 -0.5"])
iree_test(name="dynamic", module="types", function="dyn", inputs=[[1.0, 2.0, 3.0]],
          expected=[[2.0, 4.0, 6.0]])
iree_test(name="in_bounds", module="crash", function="gather",
          inputs=[[1.0, 2.0, 3.0, 4.0], "4xi64=3 2 1 0"], expected=[[4.0, 3.0, 2.0, 1.0]])
iree_test(name="out_of_bounds", module="crash", function="gather",
          inputs=[[1.0, 2.0, 3.0, 4.0], "4xi64=1099511627776 0 0 0"], expected=[[1.0, 1.0, 1.0, 1.0]])
iree_test(name="endless", module="hang", function="hang", expected=["1xi32=0"], timeout=3)
iree_run(name="sum", module="add", function="add", **ADD)
iree_check_test_suite(name="checks", srcs=["check.mlir"], toolchain="aarch64-linux")
iree_benchmark(name="speed", module="add", function="add", inputs=["4xf32=1", "4xf32=2"],
               devices=["local-task"], repetitions=2, min_time="10x", warmup=0)
"""


def _qemu_missing() -> str:
    if shutil.which(QEMU[0]) is None or not os.path.isdir(QEMU[2]):
        return (
            "qemu-aarch64 or the arm64 C library is not installed (apt-get install qemu-user "
            "libc6-arm64-cross libstdc++6-arm64-cross)"
        )
    return ""


@pytest.fixture(scope="session")
def aarch64_tools() -> Path:
    """The aarch64 runtime tools, fetched by the product's own step (once per machine)."""
    why = _qemu_missing()
    if why:
        pytest.skip(why)
    proc = subprocess.run(
        [sys.executable, "-m", "iree_build", "runtime", "aarch64"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.skip(f"the aarch64 runtime wheel cannot be had: {proc.stderr.strip()[-300:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built(aarch64_tools: Path, tmp_path_factory: pytest.TempPathFactory):
    """One project of aarch64 modules, tested once under qemu (``scons -k test``)."""
    project = Project(tmp_path_factory.mktemp("aarch64"))
    project.write("SConstruct", SCONSTRUCT)
    for name, text in (
        ("add", ADD_MLIR),
        ("types", TYPES_MLIR),
        ("crash", CRASH_MLIR),
        ("hang", HANG_MLIR),
        ("check", CHECK_MLIR),
    ):
        project.write(f"{name}.mlir", text)
    scratch = tmp_path_factory.mktemp("tmpdir")  # the build's TMPDIR: what the workers leave
    run = project.scons("-k", "-j2", "test", "sum.npy", env={"TMPDIR": str(scratch)})
    run.left_in_tmpdir = sorted(p.name for p in scratch.iterdir())
    return project, run


def _line(run, start: str) -> str:
    found = [ln for ln in run.stdout.splitlines() if ln.startswith(start)]
    assert len(found) == 1, (start, run.output)
    return found[0]


def test_aarch64_modules_pass_fail_crash_and_time_out_under_qemu(built) -> None:
    project, run = built
    assert run.returncode != 0  # a wrong expectation, a crash and a hang fail the build
    for name in (
        "good[local-task@aarch64]",
        "good[local-sync@aarch64]",
        "bf16[local-task@aarch64]",
        "scalars[local-task@aarch64]",
        "f8[local-task@aarch64]",
        "dynamic[local-task@aarch64]",
        "in_bounds[local-task@aarch64]",
    ):
        assert _line(run, f"PASS {name} (").endswith(" ms)"), run.output
    assert _line(run, "FAIL wrong[local-task@aarch64] ") == (
        "FAIL wrong[local-task@aarch64] (output 0 mismatch: max abs err 1, max rel err 0.166667 "
        "(IREE's f32 default: rtol 1e-05, atol 0.0001); first at (3,): expected 6.0, got 5.0; "
        "1 of 4 elements differ)"
    )
    crash = _line(run, "CRASH out_of_bounds[local-task@aarch64] ")
    assert "(SIGSEGV while calling gather on local-task@aarch64 under qemu-aarch64" in crash, crash
    hang = _line(run, "TIMEOUT endless[local-task@aarch64] ")
    assert "no answer after 3 s while calling hang on local-task" in hang, hang
    # The stopped worker took its emulator with it: no qemu runs the endless module any more,
    # and its fork server removed the scratch folder the worker had no time to remove.
    assert run.left_in_tmpdir == [], run.left_in_tmpdir
    module = str(project.path("hang.vmfb"))
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert module.encode() not in cmdline.read_bytes(), cmdline
        except OSError:
            pass
    check = _line(run, "SKIP checks/check.mlir")
    assert "[local-task@aarch64]" in check and "needs IREE's check module" in check, check
    assert _line(run, "PASS native[local-task] (")
    assert run.stdout.splitlines()[-1] == "8 passed, 3 failed, 1 skipped", run.output

    import numpy as np

    assert np.load(project.path("sum.npy")).tolist() == [2.0, 3.0, 4.0, 5.0]  # iree_run, emulated

    junit = ET.parse(project.path("iree_test_results.xml")).getroot()
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert cases["out_of_bounds[local-task@aarch64]"].find("error").get("type") == "crashed"
    assert cases["wrong[local-task@aarch64]"].find("failure") is not None


def test_results_are_kept_per_emulator(built) -> None:
    project, _ = built
    again = project.scons("test", "--iree-devices=local-sync@aarch64")
    assert again.returncode == 0, again.output
    assert "0 tests run, 1 up to date" in again.stdout, again.output
    # The standalone runner reads the same results: same lane, same signature.
    runner = [sys.executable, "-m", "iree_build", "test", str(project.root), "--filter=good*"]
    same = subprocess.run(runner, capture_output=True, text=True, timeout=120)
    assert "0 tests run, 2 up to date" in same.stdout, same.stdout + same.stderr
    # Another emulator (another CPU model for qemu) is another lane: the tests run again.
    other = subprocess.run(
        [*runner, "--emulator=aarch64:" + " ".join(QEMU + ["-cpu", "max"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stdout + other.stderr
    assert "PASS good[local-sync@aarch64] (" in other.stdout and "2 tests run, 0 up to date" in other.stdout


def _qemu_saying(path: Path, version: str) -> str:
    """qemu-aarch64 behind a script that says ``version``: the same emulator command after an
    upgrade (a new file, as a package manager makes). Returns the ``ARCH:COMMAND`` for it."""
    new = path.with_name(path.name + ".new")
    new.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then echo "qemu-aarch64 version {version}"; exit 0; fi\n'
        'exec qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"\n'
    )
    new.chmod(0o755)
    os.replace(new, path)
    return f"aarch64:{path}"


def _runner(project: Project, *args: str, env: dict[str, str] | None = None, what: str = "test"):
    return subprocess.run(
        [sys.executable, "-m", "iree_build", what, str(project.root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_a_result_under_another_emulator_version_is_rerun(built, tmp_path: Path) -> None:
    project, _ = built
    qemu = tmp_path / "qemu"
    lane = _qemu_saying(qemu, "8.0.0")
    scons = ("test", "--iree-devices=local-sync@aarch64", f"--iree-emulator={lane}")
    assert "1 test run, 0 up to date" in project.scons(*scons).stdout  # another command
    assert "0 tests run, 1 up to date" in project.scons(*scons).stdout
    _qemu_saying(qemu, "8.0.1")  # the same command, upgraded: the stored pass holds no more
    upgraded = project.scons(*scons)
    assert "PASS good[local-sync@aarch64] (" in upgraded.stdout, upgraded.output
    assert "1 test run, 0 up to date" in upgraded.stdout, upgraded.output
    # The standalone runner keys alike; $IREE_EMULATORS declares this machine's emulator.
    runner = ("--devices=local-sync@aarch64", "--filter=good*")
    same = _runner(project, *runner, env={"IREE_EMULATORS": lane})
    assert "0 tests run, 1 up to date" in same.stdout, same.stdout + same.stderr
    _qemu_saying(qemu, "8.0.2")
    again = _runner(project, *runner, env={"IREE_EMULATORS": lane})
    assert again.returncode == 0 and "1 tests run, 0 up to date" in again.stdout, again.stdout + again.stderr
    assert "qemu-aarch64 version 8.0.2]" in lane_hardware("local-sync", "aarch64", (str(qemu),))
    # Another emulated architecture (same emulator) is other hardware; native code is not emulated.
    assert lane_hardware("local-sync", "riscv64", (str(qemu),)).startswith(f"riscv64 emulated by {qemu} [")
    assert lane_hardware("local-sync", "x86_64", (str(qemu),)) == hardware_identity("local-sync")
    bad = _runner(project, *runner, env={"IREE_EMULATORS": "qemu-aarch64"})
    assert bad.returncode == 2 and "$IREE_EMULATORS: 'qemu-aarch64' is not ARCH:COMMAND" in bad.stderr, (
        bad.stdout + bad.stderr
    )


def _tested(out: str) -> set[str]:
    """The tests or benchmarks a run reported on (their names)."""
    words = ("PASS ", "FAIL ", "SKIP ", "CRASH ", "TIMEOUT ", "XFAIL ", "ERROR ", "BENCH ")
    return {ln.split(" ", 2)[1].rstrip(":") for ln in out.splitlines() if ln.startswith(words)}


def test_a_lane_is_a_device_selector_in_every_front_end(built) -> None:
    project, _ = built
    good = {"good[local-task@aarch64]"}
    run = project.scons(
        "test", "--iree-retest", "--iree-devices=local-task@aarch64", "--iree-test-filter=good*"
    )
    assert run.returncode == 0 and _tested(run.stdout) == good, run.output
    native = project.scons("test", "--iree-retest", "--iree-devices=local-task")  # native code only
    assert native.returncode == 0 and _tested(native.stdout) == {"native[local-task]"}, native.output
    run = _runner(project, "--retest", "--devices=local-task@arm64", "--filter=good*")
    assert run.returncode == 0 and _tested(run.stdout) == good, run.stdout + run.stderr
    native = _runner(project, "--retest", "--devices=local-task")
    assert native.returncode == 0 and _tested(native.stdout) == {"native[local-task]"}, native.stdout
    bad = _runner(project, "--devices=cuda@aarch64")
    assert bad.returncode == 2 and "'cuda@aarch64' is not a lane" in bad.stderr, bad.stderr
    bench = project.scons("bench", "--iree-devices=local-task@aarch64")
    assert _tested(bench.stdout) == {"speed[local-task@aarch64]"}, bench.output
    assert _tested(project.scons("bench", "--iree-devices=local-task").stdout) == set()
    bench = _runner(project, "--devices=local-task@aarch64", what="bench")
    assert _tested(bench.stdout) == {"speed[local-task@aarch64]"}, bench.stdout + bench.stderr
    none = _runner(project, "--devices=local-task", what="bench")
    assert _tested(none.stdout) == set() and "no benchmarks selected" in none.stderr, (
        none.stdout + none.stderr
    )


def test_without_an_emulator_the_skip_line_says_how_to_configure_one(project: Project) -> None:
    project.write(
        "SConstruct",
        """\
        from iree_rules import *
        iree_module(name="arm", src="add.mlir", triple="aarch64-unknown-linux-gnu")
        iree_test(name="t", module="arm", function="add", inputs=[[1.0] * 4, [1.0] * 4],
                  expected=[[2.0] * 4])
        """,
    )
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert (
        "SKIP t[local-task@aarch64] (arm.vmfb holds aarch64 code only; this machine is x86_64: "
        "declare an emulator to test it here: emulator = ['qemu-aarch64', '-L', "
        "'/usr/aarch64-linux-gnu'] in its toolchain preset, IREE_EMULATORS={'aarch64': "
        "'qemu-aarch64 -L /usr/aarch64-linux-gnu'} in the SCons Environment, or "
        "--iree-emulator='aarch64:qemu-aarch64 -L /usr/aarch64-linux-gnu' (the standalone runner "
        "and cluster workers: --emulator='aarch64:...' or $IREE_EMULATORS='aarch64:...'))\n"
    ) in run.stdout, run.output
    # The command line names one: now the lane is declared, and what it lacks is said.
    named = project.scons("test", "--iree-emulator=aarch64:no-such-qemu -L /usr/aarch64-linux-gnu")
    assert (
        "SKIP t[local-task@aarch64] (arm.vmfb holds aarch64 code only; this machine is x86_64: "
        "the aarch64 emulator no-such-qemu is not installed (on Debian or Ubuntu: apt-get install "
        "qemu-user libc6-arm64-cross libstdc++6-arm64-cross))"
    ) in named.stdout, named.output
    required = project.scons("test", "--iree-require-devices")  # a missing lane fails when required
    assert required.returncode != 0, required.output
    assert _line(required, "FAIL t[local-task@aarch64] (device required: arm.vmfb holds aarch64 code only")
    assert required.stdout.splitlines()[-1] == "0 passed, 1 failed, 0 skipped", required.output
    bad = project.scons("test", "--iree-emulator=qemu-aarch64")
    assert bad.returncode == 2 and "--iree-emulator: 'qemu-aarch64' is not ARCH:COMMAND" in bad.output


def test_the_lane_says_what_it_lacks() -> None:
    assert lane_for("m.vmfb", "x86_64", "local-task", ()) == (None, "")  # native
    assert lane_for("m.vmfb", "aarch64", "cuda", ()) == (None, "")  # not a CPU lane
    _, why = lane_for("m.vmfb", "riscv64", "local-task", ("sh", "-c"))
    assert why.startswith(
        "m.vmfb holds riscv64 code only; this machine is x86_64: no riscv64 runtime "
        "tools (no iree-base-runtime wheel exists for riscv64: set "
        "$IREE_RUNTIME_TOOLS_RISCV64"
    ), why
    assert parse_emulator("arm64:qemu-aarch64 -L '/usr/aarch64-linux-gnu'") == ("aarch64", tuple(QEMU))
    with pytest.raises(IreeBuildError, match="is not ARCH:COMMAND"):
        parse_emulator("aarch64:")


def test_check_files_are_skipped_on_the_lane_for_want_of_the_check_module(aarch64_tools: Path, built) -> None:
    # The aarch64 wheel ships no iree-check-module (were it there, the lane could judge checks).
    assert not list(aarch64_tools.glob("iree-check-module*")), sorted(p.name for p in aarch64_tools.iterdir())
    lane, why = lane_for("c.vmfb", "aarch64", "local-task", tuple(QEMU), kind="check")
    assert lane is None and "a check file needs IREE's check module to be judged" in why
    lane, why = lane_for("c.vmfb", "aarch64", "local-task", tuple(QEMU))
    assert lane is not None and lane.tools == aarch64_tools and not why
    project, _ = built  # the standalone runner says the same, in one line, not a pass
    run = _runner(project, "--retest", "--filter=checks*")
    assert run.returncode == 0, run.stdout + run.stderr
    (skip,) = [ln for ln in run.stdout.splitlines() if "check.mlir" in ln]
    assert skip.startswith("SKIP checks/check.mlir") and "[local-task@aarch64] (" in skip, skip
    assert "needs IREE's check module to be judged" in skip, skip
    assert run.stdout.splitlines()[-1] == "0 passed, 0 failed, 1 skipped", run.stdout


def test_benchmarks_measure_the_emulated_code(built) -> None:
    import json

    project, _ = built
    run = project.scons("bench")
    assert run.returncode == 0, run.output
    assert _line(run, "BENCH speed[local-task@aarch64]: median ").endswith("2 repetitions x 10 calls")
    record = json.loads(project.path("iree_bench_results.json").read_text())
    (entry,) = record["results"]
    assert (
        "aarch64 emulated by qemu-aarch64 -L /usr/aarch64-linux-gnu [qemu-aarch64 version"
        in entry["hardware"]
    ), entry  # a baseline is compared only within the same lane


def test_a_cluster_worker_with_its_own_emulator_offers_and_runs_the_lane(built, tmp_path: Path) -> None:
    from iree_build.cluster.local import LocalCluster

    project, _ = built
    qemu = tmp_path / "worker-qemu"
    lane = _qemu_saying(qemu, "9.0.0")
    # The client names an emulator it does not have: the worker runs its own, and results are
    # keyed by the worker's emulator version, not by anything of the client's.
    args = ("--filter=good*", "--devices=local-task@aarch64", "--emulator=aarch64:/nonexistent/qemu")
    cluster = LocalCluster(tmp_path)
    try:
        cluster.start_scheduler()
        cluster.start_worker("arm", {"local-task@aarch64": 1}, env={"IREE_EMULATORS": lane})
        cluster.wait_for(["arm"])
        env = {"IREE_CLUSTER_KEEPALIVE": "0"}
        first = _runner(project, *args, "--retest", "--cluster", cluster.address, env=env)
        same = _runner(project, *args, "--cluster", cluster.address, env=env)
        _qemu_saying(qemu, "9.0.1")  # the worker's emulator upgraded under the running worker
        upgraded = _runner(project, *args, "--cluster", cluster.address, env=env)
        scons = project.scons("test", "--iree-retest", f"--iree-cluster={cluster.address}",
                              "--iree-devices=local-task@aarch64", "--iree-test-filter=good*",
                              "--iree-emulator=aarch64:/nonexistent/qemu", env=env)
    finally:
        cluster.stop()
    assert first.returncode == 0, first.stdout + first.stderr
    assert _tested(first.stdout) == {"good[local-task@aarch64]"}, first.stdout
    assert "PASS good[local-task@aarch64] (" in first.stdout, first.stdout
    assert "0 tests run, 1 up to date" in same.stdout, same.stdout + same.stderr
    assert "1 tests run, 0 up to date" in upgraded.stdout, upgraded.stdout + upgraded.stderr
    assert "PASS good[local-task@aarch64] (" in upgraded.stdout, upgraded.stdout
    assert scons.returncode == 0 and _tested(scons.stdout) == {"good[local-task@aarch64]"}, scons.output
    assert "PASS good[local-task@aarch64] (" in scons.stdout, scons.output


def test_the_aarch64_example_builds_and_tests_under_qemu(aarch64_tools: Path, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "aarch64"
    shutil.copytree(example, tmp_path / "aarch64", ignore=shutil.ignore_patterns("build", ".sconsign*"))
    run = Project(tmp_path / "aarch64").scons("test", "build/hidden.npy")
    assert run.returncode == 0, run.output
    for name in (
        "mlp_test[local-task@aarch64]",
        "mlp_test[local-sync@aarch64]",
        "matmul_test[local-task@aarch64]",
    ):
        assert f"PASS {name} (" in run.stdout, run.output
    assert (
        "IREE compile src/matmul.mlir -> build/matmul.vmfb [llvm-cpu, cpu=neoverse-n1, aarch64]" in run.stdout
    )
    assert "IREE run predict on local-task@aarch64 -> build/hidden.npy" in run.stdout
    assert run.stdout.splitlines()[-1] == "3 passed, 0 failed, 0 skipped"

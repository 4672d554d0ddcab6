"""Tests of the runtime test-runner engine (iree_build.testing + the CLI).

Real modules, real runtime: small MLIR files are compiled once per session with
``iree-compile`` (the tests may use the compiler; the engine must not).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from iree_build.__main__ import main as cli_main
from iree_build.testing import compare, devices, execute, manifest, results, runner
from iree_build.testing.devices import DevicePool, device_status
from iree_build.testing.manifest import ManifestError, TestSpec, load_manifest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
IREE_COMPILE = shutil.which("iree-compile", path=str(Path(PYTHON).parent)) or shutil.which(
    "iree-compile"
)

CPU_MLIR = """
func.func @predict(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %z = tensor.empty() : tensor<2x4xf32>
  %c0 = arith.constant 0.0 : f32
  %f = linalg.fill ins(%c0 : f32) outs(%z : tensor<2x4xf32>) -> tensor<2x4xf32>
  %r = linalg.matmul ins(%a, %b : tensor<2x3xf32>, tensor<3x4xf32>)
                     outs(%f : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %r : tensor<2x4xf32>
}
func.func @addsub(%a: tensor<4xi32>, %b: tensor<4xi32>) -> (tensor<4xi32>, tensor<4xi32>) {
  %r = arith.addi %a, %b : tensor<4xi32>
  %s = arith.subi %a, %b : tensor<4xi32>
  return %r, %s : tensor<4xi32>, tensor<4xi32>
}
func.func @notb(%a: tensor<4xi1>) -> tensor<4xi1> {
  %t = arith.constant dense<true> : tensor<4xi1>
  %r = arith.xori %a, %t : tensor<4xi1>
  return %r : tensor<4xi1>
}
func.func @scal(%a: i32, %b: f32) -> (i32, f32) {
  %r = arith.addi %a, %a : i32
  %s = arith.mulf %b, %b : f32
  return %r, %s : i32, f32
}
func.func @sqrt(%a: tensor<3xf32>) -> tensor<3xf32> {
  %r = math.sqrt %a : tensor<3xf32>
  return %r : tensor<3xf32>
}
"""

VK_MLIR = """
func.func @predict(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %z = tensor.empty() : tensor<2x4xf32>
  %c0 = arith.constant 0.0 : f32
  %f = linalg.fill ins(%c0 : f32) outs(%z : tensor<2x4xf32>) -> tensor<2x4xf32>
  %r = linalg.matmul ins(%a, %b : tensor<2x3xf32>, tensor<3x4xf32>)
                     outs(%f : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %r : tensor<2x4xf32>
}
"""

CPU_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=generic",
]
VK_FLAGS = ["--iree-hal-target-device=vulkan"]

A = np.arange(6, dtype=np.float32).reshape(2, 3)
B = np.ones((3, 4), dtype=np.float32)
MM = A @ B  # [[3]*4, [12]*4]


@pytest.fixture(scope="session")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """cpu.vmfb (llvm-cpu) and vk.vmfb (vulkan-spirv), compiled in parallel."""
    if IREE_COMPILE is None:
        pytest.fail("iree-compile not found next to the test interpreter")
    out = tmp_path_factory.mktemp("modules")
    jobs = {}
    for name, text, flags in (("cpu", CPU_MLIR, CPU_FLAGS), ("vk", VK_MLIR, VK_FLAGS)):
        src = out / f"{name}.mlir"
        src.write_text(text)
        dst = out / f"{name}.vmfb"
        jobs[name] = (
            dst,
            subprocess.Popen(
                [IREE_COMPILE, *flags, str(src), "-o", str(dst)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
    built = {}
    for name, (dst, proc) in jobs.items():
        log, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"iree-compile {name} failed:\n{log}"
        built[name] = dst
    return built


class Build:
    """A fake build folder: modules, .npy files and an iree_tests.json."""

    def __init__(self, root: Path, modules: dict[str, Path]) -> None:
        self.root = root
        self.tests: list[dict] = []
        for name, path in modules.items():
            shutil.copy(path, root / f"{name}.vmfb")

    def npy(self, name: str, value: np.ndarray) -> str:
        np.save(self.root / name, value)
        return name

    def add(
        self,
        base: str,
        device: str = "local-task",
        module: str = "cpu.vmfb",
        function: str = "predict",
        inputs: list[np.ndarray] | None = None,
        expected: list[np.ndarray] | None = None,
        rtol: float = 1e-5,
        atol: float = 1e-6,
    ) -> TestSpec:
        name = f"{base}[{device}]"
        inputs = [A, B] if inputs is None else inputs
        expected = [MM] if expected is None else expected
        entry = {
            "name": name,
            "base": base,
            "device": device,
            "module": module,
            "function": function,
            "inputs": [self.npy(f"{name}.in{i}.npy", x) for i, x in enumerate(inputs)],
            "expected": [self.npy(f"{name}.out{i}.npy", x) for i, x in enumerate(expected)],
            "rtol": rtol,
            "atol": atol,
            "declared_at": "SConscript:12",
            "result": f"{name}.result.json",
        }
        self.tests.append(entry)
        self.write()
        return manifest.parse_manifest(self.manifest, {"format": manifest.FORMAT, "tests": [entry]}).tests[0]

    @property
    def manifest(self) -> Path:
        return self.root / manifest.MANIFEST_NAME

    def write(self) -> None:
        doc = {"format": manifest.FORMAT, "tests": self.tests}
        self.manifest.write_text(json.dumps(doc, indent=2))

    def run(self, **options) -> tuple[runner.RunReport, list[str]]:
        out = io.StringIO()
        report = runner.run_manifest(self.manifest, runner.RunOptions(**options), out=out)
        return report, out.getvalue().splitlines()


@pytest.fixture
def build(tmp_path: Path, modules: dict[str, Path]) -> Build:
    return Build(tmp_path, modules)


@pytest.fixture(scope="session")
def pool() -> DevicePool:
    return devices.default_pool()


# --- execute.run_test ---------------------------------------------------------


def test_pass_on_local_task_and_local_sync(build: Build, pool: DevicePool) -> None:
    for device in ("local-task", "local-sync"):
        spec = build.add("mm", device=device)
        r = execute.run_test(spec, build.root, pool)
        assert (r.status, r.message) == ("passed", ""), r.message
        assert r.name == f"mm[{device}]" and r.device == device and r.base == "mm"
        assert 0 < r.time_ms < 5000


def test_float_mismatch_message(build: Build, pool: DevicePool) -> None:
    wrong = MM.copy()
    wrong[1, 2] = 12.5
    spec = build.add("mm_test", expected=[wrong])
    r = execute.run_test(spec, build.root, pool)
    assert r.status == "failed"
    assert r.message == (
        "mm_test[local-task]: output 0 mismatch: max abs err 0.5, max rel err 0.04 "
        "(rtol 1e-05, atol 1e-06); first at (1, 2): expected 12.5, got 12.0; "
        "1 of 8 elements differ"
    )


def test_tolerance_is_applied(build: Build, pool: DevicePool) -> None:
    near = MM + np.float32(1e-3)
    assert execute.run_test(build.add("loose", expected=[near], atol=1e-2), build.root, pool).ok
    r = execute.run_test(build.add("tight", expected=[near], atol=1e-4), build.root, pool)
    assert r.status == "failed" and "first at (0, 0)" in r.message


def test_shape_and_dtype_mismatch(build: Build, pool: DevicePool) -> None:
    r = execute.run_test(build.add("shape", expected=[MM.T.copy()]), build.root, pool)
    assert r.status == "failed"
    assert r.message == "shape[local-task]: output 0 shape mismatch: expected (4, 2), got (2, 4)"
    r = execute.run_test(build.add("dtype", expected=[MM.astype(np.float64)]), build.root, pool)
    assert r.message == "dtype[local-task]: output 0 dtype mismatch: expected float64, got float32"
    r = execute.run_test(build.add("count", expected=[MM, MM]), build.root, pool)
    assert r.message == "count[local-task]: function returned 1 output(s), expected 2"


def test_int_outputs_compare_exactly(build: Build, pool: DevicePool) -> None:
    a = np.array([1, 2, 3, 4], np.int32)
    b = np.array([10, 20, 30, 40], np.int32)
    ok = build.add("ints", function="addsub", inputs=[a, b], expected=[a + b, a - b])
    assert execute.run_test(ok, build.root, pool).ok
    off = (a - b).copy()
    off[2] += 1  # within any tolerance, but ints are exact
    spec = build.add("intsoff", function="addsub", inputs=[a, b], expected=[a + b, off], rtol=1.0, atol=10.0)
    r = execute.run_test(spec, build.root, pool)
    assert r.status == "failed"
    assert r.message == (
        "intsoff[local-task]: output 1 mismatch: max abs err 1, max rel err 0.0384615 "
        "(exact compare); first at (2,): expected -26, got -27; 1 of 4 elements differ"
    )


def test_bool_and_scalar_functions(build: Build, pool: DevicePool) -> None:
    x = np.array([True, False, True, False])
    assert execute.run_test(build.add("b", function="notb", inputs=[x], expected=[~x]), build.root, pool).ok
    bad = build.add("bbad", function="notb", inputs=[x], expected=[x])
    assert "first at (0,): expected True, got False" in execute.run_test(bad, build.root, pool).message
    ins = [np.array(3, np.int32), np.array(1.5, np.float32)]
    outs = [np.array(6, np.int32), np.array(2.25, np.float32)]
    r = execute.run_test(build.add("s", function="scal", inputs=ins, expected=outs), build.root, pool)
    assert r.ok, r.message


def test_nan_equals_nan(build: Build, pool: DevicePool) -> None:
    x = np.array([-1.0, 4.0, 9.0], np.float32)
    with np.errstate(invalid="ignore"):
        want = np.sqrt(x)
    assert np.isnan(want[0])
    assert execute.run_test(build.add("nan", function="sqrt", inputs=[x], expected=[want]), build.root, pool).ok
    r = execute.run_test(build.add("nan2", function="sqrt", inputs=[x], expected=[np.nan_to_num(want)]), build.root, pool)
    assert r.status == "failed" and "first at (0,): expected 0.0, got nan" in r.message


def test_no_expected_only_checks_the_call(build: Build, pool: DevicePool) -> None:
    assert execute.run_test(build.add("call", expected=[]), build.root, pool).ok


def test_errors_are_clear(build: Build, pool: DevicePool) -> None:
    r = execute.run_test(build.add("nofn", function="nope"), build.root, pool)
    assert r.status == "error"
    assert r.message.startswith("nofn[local-task]: function 'nope' not found in 'cpu.vmfb' (exports: ")
    assert "predict" in r.message and "SConscript:12" in r.message
    r = execute.run_test(build.add("argc", inputs=[A]), build.root, pool)
    assert r.status == "error"
    assert r.message == (
        "argc[local-task]: function 'predict' takes 2 input(s), the test gives 1 "
        "(declared at SConscript:12)"
    )
    r = execute.run_test(build.add("argshape", inputs=[B, B]), build.root, pool)
    assert r.status == "error" and "input0 shape dimension 0 mismatch" in r.message
    r = execute.run_test(build.add("wrongdev", module="vk.vmfb"), build.root, pool)
    assert r.status == "error"
    assert r.message == "wrongdev[local-task]: module 'vk.vmfb' was compiled for vulkan, cannot run on local-task"
    spec = build.add("gone")
    (build.root / spec.module).rename(build.root / "moved.vmfb")
    r = execute.run_test(spec, build.root, pool)
    assert (r.status, r.message) == ("error", "gone[local-task]: module 'cpu.vmfb' not found (build it first)")
    (build.root / spec.module).write_bytes(b"not a flatbuffer at all, definitely")
    r = execute.run_test(spec, build.root, pool)
    assert r.status == "error" and r.message.startswith("gone[local-task]: cannot load module 'cpu.vmfb': ")


def test_pickled_npy_is_refused(build: Build, pool: DevicePool) -> None:
    spec = build.add("pickle")
    np.save(build.root / spec.inputs[0], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = execute.run_test(spec, build.root, pool)
    assert r.status == "error" and "cannot read input 0" in r.message and "pickle" in r.message
    assert "allow_pickle" not in r.message  # numpy's hint to load it unsafely is not passed on


def test_a_file_that_is_not_npy_says_so(build: Build, pool: DevicePool) -> None:
    spec = build.add("garbage")
    (build.root / spec.inputs[0]).write_text("1 2 3 4\n")
    r = execute.run_test(spec, build.root, pool)
    assert r.status == "error"
    assert r.message.endswith(f"cannot read input 0 '{Path(spec.inputs[0]).name}': "
                              "not a .npy file (it has no NumPy header)"), r.message


def test_absent_devices_are_skipped_with_reason(build: Build, pool: DevicePool) -> None:
    for device in ("cuda", "webgpu", "rocm"):
        present, reason = device_status(device)
        r = execute.run_test(build.add("mm", device=device), build.root, pool)
        if present:  # on a GPU machine the CPU module cannot run there: error, not skip
            assert r.status == "error" and "compiled for" in r.message
        else:
            assert (r.status, r.message) == ("skipped", reason)
    assert device_status("webgpu") == (
        False,
        f"webgpu: driver not compiled into this iree-base-runtime ({devices.runtime_version()})",
    )
    if "cuda" in devices._compiled_in() and not device_status("cuda")[0]:
        assert device_status("cuda")[1].startswith("cuda: driver compiled in, no device present")
    assert device_status("rocm")[1].startswith("rocm (hip): ")
    assert device_status("local-task")[0] and device_status("local-sync")[0]


def test_vulkan_runs_when_present_else_skips(build: Build, pool: DevicePool) -> None:
    present, reason = device_status("vulkan")
    r = execute.run_test(build.add("mm", device="vulkan", module="vk.vmfb"), build.root, pool)
    if present:
        assert r.status == "passed", r.message
        wrong = MM.copy()
        wrong[0, 0] = 4.0
        bad = execute.run_test(build.add("mmbad", device="vulkan", module="vk.vmfb", expected=[wrong]), build.root, pool)
        assert bad.status == "failed" and "first at (0, 0): expected 4.0, got 3.0" in bad.message
    else:
        assert (r.status, r.message) == ("skipped", reason)
        assert reason.startswith("vulkan: ")


# --- devices ------------------------------------------------------------------


def test_pool_creates_each_device_once_across_threads() -> None:
    pool = DevicePool()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(pool.device("local-task"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(d is got[0] for d in got)
    assert pool.device("local-sync") is not got[0]
    with pytest.raises(devices.DeviceUnavailable, match="webgpu: driver not compiled"):
        pool.device("webgpu")
    assert pool.instance is devices.vm_instance() is DevicePool().instance
    assert devices.driver_name("rocm") == "hip" and devices.is_cpu_device("local-sync")
    assert not devices.is_cpu_device("cuda")


def test_gpu_devices_are_bound_to_one_thread() -> None:
    pool = DevicePool()
    here = threading.get_ident()
    assert pool.run_on("local-task", threading.get_ident) == here  # CPU: caller's thread
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(pool.run_on("vulkan", threading.get_ident)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and here not in seen
    assert pool.run_on("rocm", threading.get_ident) == pool.run_on("hip", threading.get_ident) != seen[0]
    assert pool.run_on("vulkan", lambda: pool.run_on("vulkan", threading.get_ident)) == seen[0]  # no deadlock
    if device_status("vulkan")[0]:
        assert pool.device("vulkan") is pool.device("vulkan")


def test_concurrent_cpu_tests_are_correct(build: Build, pool: DevicePool) -> None:
    rng = np.random.default_rng(0)
    specs = []
    for i in range(24):
        a = rng.standard_normal((2, 3)).astype(np.float32)
        b = rng.standard_normal((3, 4)).astype(np.float32)
        device = ("local-task", "local-sync")[i % 2]
        specs.append(build.add(f"par{i}", device=device, inputs=[a, b], expected=[a @ b], rtol=1e-5, atol=1e-5))
    out: dict[str, results.TestResult] = {}

    def work(spec: TestSpec) -> None:
        out[spec.name] = execute.run_test(spec, build.root, pool)

    threads = [threading.Thread(target=work, args=(s,)) for s in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in out.values()), [r.message for r in out.values() if not r.ok]
    assert len(out) == 24


# --- manifest -----------------------------------------------------------------


def _manifest_with(tmp_path: Path, **changes) -> Path:
    entry = {
        "name": "t[local-task]", "base": "t", "device": "local-task", "module": "m.vmfb",
        "function": "f", "inputs": ["a.npy"], "expected": ["b.npy"], "rtol": 1e-5,
        "atol": 1e-6, "declared_at": "SConscript:1", "result": "t.result.json",
    }
    entry.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del entry[key]
    path = tmp_path / "iree_tests.json"
    path.write_text(json.dumps({"format": manifest.FORMAT, "tests": [entry]}))
    return path


@pytest.mark.parametrize(
    "changes",
    [
        {"inputs": ["../outside.npy"]},
        {"inputs": ["sub/../../outside.npy"]},
        {"expected": ["/etc/passwd"]},
        {"module": "..\\m.vmfb"},
        {"result": "../t.result.json"},
        {"result": "a/b/../../.."},
    ],
)
def test_manifest_rejects_paths_leaving_the_build_dir(tmp_path: Path, changes: dict) -> None:
    path = _manifest_with(tmp_path, **changes)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    text = str(err.value)
    assert text.startswith(f"{path}: test 't[local-task]': path ") and "\n" not in text


def test_manifest_accepts_normalized_inside_paths(tmp_path: Path) -> None:
    path = _manifest_with(tmp_path, inputs=["sub/../a.npy", "./b/c.npy"])
    spec = load_manifest(path).tests[0]
    assert spec.inputs == ("a.npy", "b/c.npy")
    assert manifest.resolve(tmp_path, spec.inputs[1]) == tmp_path / "b" / "c.npy"


def test_manifest_rejects_bad_format_missing_keys_duplicates(tmp_path: Path) -> None:
    path = _manifest_with(tmp_path, rtol=None, atol=None)
    with pytest.raises(ManifestError, match=r"missing key\(s\): rtol, atol"):
        load_manifest(path)
    path.write_text(json.dumps({"format": "iree_build.tests/99", "tests": []}))
    with pytest.raises(ManifestError, match="unknown manifest format 'iree_build.tests/99'"):
        load_manifest(path)
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(path)
    good = json.loads(_manifest_with(tmp_path).read_text())
    good["tests"].append(dict(good["tests"][0]))
    path.write_text(json.dumps(good))
    with pytest.raises(ManifestError, match="duplicate test name 't\\[local-task\\]'"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="no test manifest here"):
        load_manifest(tmp_path / "nope" / "iree_tests.json")


def test_manifest_save_roundtrip_is_atomic(tmp_path: Path) -> None:
    spec = load_manifest(_manifest_with(tmp_path)).tests[0]
    target = tmp_path / "out" / "iree_tests.json"
    manifest.save_manifest(target, [spec])
    assert load_manifest(target).tests == [spec]
    assert [p.name for p in target.parent.iterdir()] == ["iree_tests.json"]  # no temp left


# --- results ------------------------------------------------------------------


def test_result_lines_summary_and_roundtrip(tmp_path: Path) -> None:
    ok = results.TestResult("mm[local-task]", "passed", time_ms=0.42, device="local-task", signature="s1")
    bad = results.TestResult("mm[local-sync]", "failed", "mm[local-sync]: output 0 mismatch: x")
    err = results.TestResult("e[local-task]", "error", "e[local-task]: boom")
    skip = results.TestResult("mm[cuda]", "skipped", "cuda: driver compiled in, no device present")
    assert results.result_line(ok) == "PASS mm[local-task] (0.4 ms)"
    assert results.result_line(bad) == "FAIL mm[local-sync] (output 0 mismatch: x)"
    assert results.result_line(skip) == "SKIP mm[cuda] (cuda: driver compiled in, no device present)"
    assert results.summary_line([ok, bad, err, skip]) == "1 passed, 2 failed, 1 skipped"
    path = tmp_path / "r" / "mm.result.json"
    results.write_result(ok, path)
    back = results.read_result(path)
    assert back is not None and back.to_json() == ok.to_json()
    path.write_text("{garbage")
    assert results.read_result(path) is None
    # A name or reason with a newline (a check case's quoted MLIR name, a declared reason)
    # stays on its one line, in the test's line and in the closing summary alike.
    odd = results.TestResult('c.mlir::"a\nPASS b"[local-task]', "failed", "x: check failed\n\x1b[2J")
    assert results.result_line(odd) == 'FAIL c.mlir::"a\\nPASS b"[local-task] (x: check failed\\n\\x1b[2J)'
    from iree_build.testing.summary import failure_lines

    lines = failure_lines([odd], [("m", "m.mlir:1:1: error: bad\ncontinued", "SConstruct:2")])
    assert lines == [
        "Failed compiles (1):",
        "  m: m.mlir:1:1: error: bad\\ncontinued (declared at SConstruct:2)",
        "Failed tests by cause (1):",
        '  value mismatch (1): c.mlir::"a\\nPASS b"[local-task]',
    ]


def test_junit_xml(tmp_path: Path) -> None:
    rs = [
        results.TestResult("mm[local-task]", "passed", time_ms=1500.0),
        results.TestResult("mm[local-sync]", "failed", "mm[local-sync]: output 0 <mismatch> & \x1b"),
        results.TestResult("e[local-task]", "error", "e[local-task]: boom"),
        results.TestResult("mm[cuda]", "skipped", "cuda: no device"),
    ]
    path = tmp_path / "junit.xml"
    results.write_junit(rs, path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
        "tests": "4", "failures": "1", "errors": "1", "skipped": "1", "time": "1.500",
    }
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("mm", "mm[local-task]"), ("mm", "mm[local-sync]"), ("e", "e[local-task]"), ("mm", "mm[cuda]"),
    ]
    assert cases[0].get("time") == "1.500000" and len(cases[0]) == 0
    assert cases[1].find("failure").get("message") == "mm[local-sync]: output 0 <mismatch> & ?"
    assert cases[2].find("error").get("message") == "e[local-task]: boom"
    assert cases[3].find("skipped").get("message") == "cuda: no device"


def test_compare_edge_cases() -> None:
    f = np.array([1.0, np.nan, np.inf], np.float32)
    assert compare.compare_outputs("t", [f], [f.copy()], 0.0, 0.0) is None
    msg = compare.compare_output("t", 0, np.array(2.5, np.float32), np.array(2.0, np.float32), 1e-5, 1e-6)
    assert msg == (
        "t: output 0 mismatch: max abs err 0.5, max rel err 0.25 (rtol 1e-05, atol 1e-06); "
        "first at (): expected 2.0, got 2.5; 1 of 1 elements differ"
    )
    assert compare.compare_output("t", 3, np.zeros(2, np.int8), np.zeros(2, np.int16), 0, 0) == (
        "t: output 3 dtype mismatch: expected int16, got int8"
    )
    big_endian = np.array([1.0, 2.0], dtype=">f4")
    assert compare.compare_output("t", 0, np.array([1.0, 2.0], np.float32), big_endian, 0, 0) is None


# --- runner: cache, selection, require-devices, JUnit -----------------------------


def _closing(lines: list[str]) -> list[str]:
    """The runner's closing lines from "N tests run", the page's path left out."""
    start = max(i for i, ln in enumerate(lines) if " tests run, " in ln)
    return [ln.split("; page: ")[0] for ln in lines[start:]]


def test_runner_cache_rerun_and_retest(build: Build) -> None:
    for i in range(3):
        build.add(f"c{i}", inputs=[A + i, B], expected=[(A + i) @ B])
    report, lines = build.run()
    assert report.exit_code == 0 and report.ran == 3 and report.cached == 0
    assert _closing(lines) == ["3 tests run, 0 up to date", "3 passed, 0 failed, 0 skipped"]
    report, lines = build.run()
    assert report.ran == 0 and report.cached == 3
    assert sorted(lines[:3]) == [f"PASS c{i}[local-task] (cached)" for i in range(3)]
    assert _closing(lines) == ["0 tests run, 3 up to date", "3 passed, 0 failed, 0 skipped"]
    # Change one input (and its expected value): only that test reruns.
    np.save(build.root / "c1[local-task].in0.npy", A + 10)
    np.save(build.root / "c1[local-task].out0.npy", (A + 10) @ B)
    report, lines = build.run()
    assert (report.ran, report.cached) == (1, 2)
    assert [ln for ln in lines if "cached" not in ln][0].startswith("PASS c1[local-task] (")
    # A changed input that now fails is rerun, and a failure is never cached.
    np.save(build.root / "c2[local-task].in0.npy", A + 11)
    report, _ = build.run()
    assert (report.ran, report.cached, report.exit_code) == (1, 2, 1)
    report, _ = build.run()
    assert (report.ran, report.cached, report.exit_code) == (1, 2, 1)
    report, lines = build.run(retest=True)
    assert (report.ran, report.cached) == (3, 0)
    assert _closing(lines) == ["3 tests run, 0 up to date", "Failed tests by cause (1):",
                               "  value mismatch (1): c2[local-task]", "2 passed, 1 failed, 0 skipped"]


def test_signature_covers_what_the_outcome_depends_on(build: Build) -> None:
    spec = build.add("sig")
    base = runner.test_signature(spec, build.root)
    assert base and base == runner.test_signature(spec, build.root)
    from dataclasses import replace

    for changed in (replace(spec, rtol=1e-3), replace(spec, atol=1.0), replace(spec, function="other"),
                    replace(spec, device="local-sync")):
        assert runner.test_signature(changed, build.root) != base
    (build.root / spec.module).write_bytes((build.root / spec.module).read_bytes() + b"\0")
    assert runner.test_signature(spec, build.root) != base
    assert runner.test_signature(replace(spec, inputs=("missing.npy",)), build.root) is None


def test_runner_selection_and_require_devices(build: Build) -> None:
    build.add("mm", device="local-task")
    build.add("mm", device="local-sync")
    build.add("mm", device="webgpu")
    build.add("other", device="local-task")
    report, lines = build.run(devices=["local-sync"])
    assert [r.name for r in report.results] == ["mm[local-sync]"]
    report, lines = build.run(pattern="mm[[]*", retest=True)
    assert len(report.results) == 3 and lines[-1] == "2 passed, 0 failed, 1 skipped"
    assert report.exit_code == 0
    assert "SKIP mm[webgpu] (webgpu: driver not compiled into this iree-base-runtime" in "\n".join(lines)
    report, lines = build.run(pattern="mm*", require_devices=True)
    assert report.exit_code == 1 and lines[-1] == "2 passed, 1 failed, 0 skipped"
    assert any(ln.startswith("FAIL mm[webgpu] (device required: webgpu: driver not compiled") for ln in lines)
    junit = ET.parse(build.root / runner.JUNIT_NAME).getroot().find("testsuite")
    assert junit is not None and junit.get("failures") == "1" and junit.get("skipped") == "0"
    with pytest.raises(runner.UsageError, match="unknown device 'cdua'"):
        build.run(devices=["cdua"])


# --- the command line, in-process and as a runtime-only subprocess ----------------


def test_cli_usage_and_manifest_errors(build: Build, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build.add("mm")
    assert cli_main(["test"]) == 2
    assert cli_main(["test", str(build.root), "-j", "0"]) == 2
    assert cli_main(["test", str(build.root), "--devices", "cdua"]) == 2
    assert cli_main(["bogus"]) == 2
    assert cli_main(["test", str(tmp_path / "no_such_dir")]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    _manifest_with(bad, inputs=["../../etc/passwd"])
    assert cli_main(["test", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 6 and all(ln.startswith("python -m iree_build: error: ") for ln in err)
    assert err[-1].endswith("path inputs[0]='../../etc/passwd' escapes the manifest directory")
    assert str(bad / "iree_tests.json") in err[-1]
    junit = tmp_path / "j" / "report.xml"
    assert cli_main(["test", str(build.manifest), "--junit", str(junit), "-j", "2"]) == 0
    assert ET.parse(junit).getroot().find("testsuite").get("tests") == "1"
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"


BLOCKER = """
import atexit, runpy, sys
BLOCKED = ("SCons", "llvmlite", "iree.compiler")
tried = []
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            tried.append(name)
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, Blocker())
atexit.register(lambda: tried and print("BLOCKED IMPORTS:", tried, file=sys.stderr))
sys.argv = ["iree_build", *sys.argv[1:]]
runpy.run_module("iree_build", run_name="__main__", alter_sys=True)
"""


def _runtime_only(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [PYTHON, "-c", BLOCKER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_blocker_really_blocks() -> None:
    proc = subprocess.run(
        [PYTHON, "-c", BLOCKER.replace('runpy.run_module("iree_build", run_name="__main__", alter_sys=True)',
                                      "import iree.compiler")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "blocked for this test: iree.compiler" in proc.stderr


def test_standalone_runner_without_scons_or_compiler(build: Build) -> None:
    wrong = MM.copy()
    wrong[1, 2] = 12.5
    build.add("mm", device="local-task")
    build.add("mm", device="local-sync")
    build.add("bad", expected=[wrong])
    build.add("mm", device="webgpu")  # never compiled into the wheel: always skipped
    build.add("mm", device="vulkan", module="vk.vmfb")
    vulkan = device_status("vulkan")[0]
    n_skip = 1 if vulkan else 2
    proc = _runtime_only("test", str(build.root), "--filter", "mm*", "-j", "4")
    assert "BLOCKED IMPORTS" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(ln.split(" (")[0] for ln in lines[:-2]) == [
        "PASS mm[local-sync]", "PASS mm[local-task]", ("PASS" if vulkan else "SKIP") + " mm[vulkan]",
        "SKIP mm[webgpu]",
    ]
    assert _closing(lines) == ["4 tests run, 0 up to date", f"{4 - n_skip} passed, 0 failed, {n_skip} skipped"]
    proc = _runtime_only("test", str(build.root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL bad[local-task] (output 0 mismatch: max abs err 0.5" in proc.stdout
    assert _closing(proc.stdout.splitlines())[0] == f"{1 + n_skip} tests run, {4 - n_skip} up to date"
    assert ET.parse(build.root / "iree_test_results.xml").getroot().find("testsuite").get("tests") == "5"
    proc = _runtime_only("test", str(build.root), "--filter", "mm*", "--require-devices")
    assert proc.returncode == 1 and proc.stdout.splitlines()[-1].endswith(f"{n_skip} failed, 0 skipped")
    bad = build.root / "iree_tests.json"
    bad.write_text(json.dumps({"format": "nope", "tests": []}))
    proc = _runtime_only("test", str(build.root))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        f"python -m iree_build: error: {bad}: unknown manifest format 'nope' (expected 'iree_build.tests/1')"
    )


# --- the run pool: locks and PIDs ---------------------------------------------------------

def _in_thread(fn, limit: float = 30.0):
    """``fn()``'s value, or AssertionError when it is still blocked after ``limit`` s."""
    got: list = []
    thread = threading.Thread(target=lambda: got.append(fn()), daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} blocked for {limit:g} s"
    return got[0]


@pytest.fixture
def stopped_zygote():
    """Stops the run pool's fork server (SIGSTOP: every fork request hangs, as a fork server
    stuck in a driver would) when called; resumes it afterwards."""
    import signal

    from iree_build.testing import run_pool

    stopped: list[int] = []

    class Control:
        @staticmethod
        def stop() -> None:
            pid = run_pool._zygote().proc.pid
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)

        @staticmethod
        def resume() -> None:
            while stopped:
                os.kill(stopped.pop(), signal.SIGCONT)

    yield Control
    Control.resume()


def test_a_hanging_probe_stalls_neither_other_devices_nor_cpu_tests(build: Build, stopped_zygote) -> None:
    """A probe of one device that hangs (its worker cannot even be started) holds no lock
    that a CPU test or another device's known status needs."""
    from iree_build.testing.run_pool import RunPool

    spec = build.add("mm")
    pool = RunPool(keep_spare=False)
    try:
        assert pool.run_test(spec, build.root).status == "passed"  # an idle CPU worker now
        assert pool.status("local-task").present
        stopped_zygote.stop()
        probing = threading.Thread(target=lambda: pool.status("cuda"), daemon=True)
        probing.start()
        time.sleep(0.5)  # it waits for a worker that cannot be forked
        assert probing.is_alive()
        assert _in_thread(lambda: pool.status("local-task")).present
        assert _in_thread(lambda: pool.run_test(spec, build.root)).status == "passed"
    finally:
        stopped_zygote.resume()
        pool.close()


def test_a_stuck_fork_of_the_spare_holds_up_no_other_test(build: Build, stopped_zygote) -> None:
    """Taking the spare worker forks the next one; while that fork hangs, tests running
    at the same time still take and give back workers."""
    from iree_build.testing.run_pool import RunPool

    spec = build.add("mm")
    pool = RunPool(keep_spare=True)
    try:
        assert pool.run_test(spec, build.root).status == "passed"  # one idle worker, one spare
        deadline = time.monotonic() + 30
        while pool._spare is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._spare is not None
        stopped_zygote.stop()
        barrier = threading.Barrier(2)

        def test_in_parallel():
            barrier.wait()
            return pool.run_test(spec, build.root).status

        results = []
        threads = [threading.Thread(target=lambda: results.append(test_in_parallel()), daemon=True)
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == ["passed", "passed"], "a test waited for the spare's fork"
    finally:
        stopped_zygote.resume()
        pool.close()


PID_REUSE = """\
import os, signal, sys, time
from iree_build.testing.manifest import load_manifest
from iree_build.testing.run_pool import RunPool

manifest = load_manifest(sys.argv[1])
pool = RunPool(keep_spare=False)

def run():
    result = pool.run_test(manifest.tests[0], manifest.base_dir)
    assert result.status == "passed", result.message
    return [w.pid for w in pool._idle["cpu"]]

[first] = run()
worker = pool._idle["cpu"][0]
os.kill(first, signal.SIGKILL)
deadline = time.monotonic() + 30
while worker.alive and time.monotonic() < deadline:
    time.sleep(0.01)
assert not worker.alive
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(first - 1))  # the next process of this PID namespace gets the dead worker's PID
second = run()
third = run()
print(first, str(second).replace(" ", ""), str(third).replace(" ", ""))
"""


def test_a_fresh_worker_with_a_dead_workers_pid_is_kept(build: Build, tmp_path: Path) -> None:
    """PIDs are reused: a worker forked with the PID of one that died (forced here in a PID
    namespace of its own) is alive, and is kept for the next test."""
    build.add("mm")
    script = tmp_path / "pid_reuse.py"
    script.write_text(PID_REUSE)
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"needs a PID namespace (unshare -p): {probe.stderr.decode().strip()}")
    proc = subprocess.run(["unshare", "-p", "-f", "--mount-proc", sys.executable, str(script),
                           str(build.manifest)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second, third = proc.stdout.split()
    assert second == third == f"[{first}]", proc.stdout

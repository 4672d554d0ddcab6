"""Tests of the Python ``check`` module and the check-file runner.

Check files written for this project are compiled once per module with
``iree-compile`` (tests may use the compiler; the engine must not) and run on
real devices with ``iree.runtime``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import iree.runtime as ireert
import ml_dtypes
import numpy as np
import pytest

from iree_build.testing.check_module import (
    CheckError,
    CheckLog,
    all_true_failure,
    almost_eq_failure,
    create_check_module,
    eq_failure,
)
from iree_build.testing.check_runner import check_functions, run_check_file
from iree_build.testing.devices import default_pool
from iree_build.testing.results import result_line

BIN = Path(sys.executable).parent
IREE_COMPILE = shutil.which("iree-compile", path=str(BIN)) or shutil.which("iree-compile")
IREE_RUN_MODULE = shutil.which("iree-run-module", path=str(BIN)) or shutil.which(
    "iree-run-module"
)
CPU_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=generic",
]
VULKAN_FLAGS = ["--iree-hal-target-device=vulkan"]

PASS_MLIR = """
func.func @test_add_f32() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %b = util.unfoldable_constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %c = arith.addf %a, %b : tensor<4xf32>
  check.expect_almost_eq_const(%c, dense<[6.0, 8.0, 10.0, 12.0]> : tensor<4xf32>) : tensor<4xf32>
  return
}
func.func @test_mul_i32() {
  %a = util.unfoldable_constant dense<[1, -2, 3, 40000]> : tensor<4xi32>
  %c = arith.muli %a, %a : tensor<4xi32>
  check.expect_eq_const(%c, dense<[1, 4, 9, 1600000000]> : tensor<4xi32>) : tensor<4xi32>
  return
}
func.func @test_eq_i8_2d() {
  %a = util.unfoldable_constant dense<[[1, 2], [3, 4]]> : tensor<2x2xi8>
  %b = util.unfoldable_constant dense<[[0, 1], [2, 3]]> : tensor<2x2xi8>
  %one = arith.constant dense<1> : tensor<2x2xi8>
  %c = arith.addi %b, %one : tensor<2x2xi8>
  check.expect_eq(%a, %c) : tensor<2x2xi8>
  return
}
func.func @test_scalars() {
  %a = util.unfoldable_constant 7 : i32
  %b = util.unfoldable_constant 7 : i32
  %eq = arith.cmpi eq, %a, %b : i32
  %ne = arith.cmpi ne, %a, %b : i32
  check.expect_true(%eq) : i1
  check.expect_false(%ne) : i1
  %sum = arith.addi %a, %b : i32
  check.expect_true(%sum) : i32
  return
}
func.func @test_all_true() {
  %a = util.unfoldable_constant dense<[1, -1, 5, 2]> : tensor<4xi32>
  check.expect_all_true(%a) : tensor<4xi32>
  %x = util.unfoldable_constant dense<[1, 2, 3]> : tensor<3xi32>
  %y = util.unfoldable_constant dense<[0, 1, 2]> : tensor<3xi32>
  %gt = arith.cmpi sgt, %x, %y : tensor<3xi32>
  check.expect_all_true(%gt) : tensor<3xi1>
  return
}
func.func @test_default_atol() {
  %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
  %b = util.unfoldable_constant dense<[1.00005, 1.99995]> : tensor<2xf32>
  check.expect_almost_eq(%a, %b) : tensor<2xf32>
  return
}
func.func @test_explicit_rtol() {
  %a = util.unfoldable_constant dense<[100.0, 200.0]> : tensor<2xf32>
  %b = util.unfoldable_constant dense<[100.5, 201.0]> : tensor<2xf32>
  check.expect_almost_eq(%a, %b, atol 0.0, rtol 0.01) : tensor<2xf32>
  return
}
func.func @test_f16() {
  %a = util.unfoldable_constant dense<[1.5, 2.25]> : tensor<2xf16>
  %c = arith.addf %a, %a : tensor<2xf16>
  check.expect_almost_eq_const(%c, dense<[3.0, 4.5]> : tensor<2xf16>) : tensor<2xf16>
  return
}
func.func @test_nan_matches_nan() {
  %z = util.unfoldable_constant dense<[0.0, 1.0]> : tensor<2xf32>
  %n = arith.divf %z, %z : tensor<2xf32>
  check.expect_almost_eq_const(%n, dense<[0x7FC00000, 1.0]> : tensor<2xf32>) : tensor<2xf32>
  return
}
util.global private mutable @counter = 0 : i32
func.func @test_counter_a() {
  %v = util.global.load @counter : i32
  %one = arith.constant 1 : i32
  %n = arith.addi %v, %one : i32
  util.global.store %n, @counter : i32
  %first = arith.cmpi eq, %n, %one : i32
  check.expect_true(%first) : i1
  return
}
func.func @test_counter_b() {
  %v = util.global.load @counter : i32
  %one = arith.constant 1 : i32
  %n = arith.addi %v, %one : i32
  util.global.store %n, @counter : i32
  %first = arith.cmpi eq, %n, %one : i32
  check.expect_true(%first) : i1
  return
}
func.func @helper_with_args(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}
func.func @helper_with_result() -> i32 {
  %c = arith.constant 1 : i32
  return %c : i32
}
"""
PASS_CASES = [
    "test_add_f32",
    "test_mul_i32",
    "test_eq_i8_2d",
    "test_scalars",
    "test_all_true",
    "test_default_atol",
    "test_explicit_rtol",
    "test_f16",
    "test_nan_matches_nan",
    "test_counter_a",
    "test_counter_b",
]

FAIL_MLIR = """
func.func @fail_expect_true() {
  %z = util.unfoldable_constant 0 : i32
  check.expect_true(%z) : i32
  return
}
func.func @fail_expect_false() {
  %o = util.unfoldable_constant 3 : i32
  check.expect_false(%o) : i32
  return
}
func.func @fail_expect_all_true() {
  %a = util.unfoldable_constant dense<[1, 0, 2, 0]> : tensor<4xi32>
  check.expect_all_true(%a) : tensor<4xi32>
  return
}
func.func @fail_expect_eq() {
  %a = util.unfoldable_constant dense<[1, 2, 3, 4]> : tensor<4xi32>
  %b = util.unfoldable_constant dense<[1, 2, 30, 4]> : tensor<4xi32>
  check.expect_eq(%a, %b) : tensor<4xi32>
  return
}
func.func @fail_expect_eq_const() {
  %a = util.unfoldable_constant dense<[1, 2, 3, 4]> : tensor<4xi32>
  check.expect_eq_const(%a, dense<[1, 2, 3, 5]> : tensor<4xi32>) : tensor<4xi32>
  return
}
func.func @fail_expect_almost_eq() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %b = util.unfoldable_constant dense<[1.0, 2.5, 3.0]> : tensor<3xf32>
  check.expect_almost_eq(%a, %b) : tensor<3xf32>
  return
}
func.func @fail_expect_almost_eq_const() {
  %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
  check.expect_almost_eq_const(%a, dense<[1.0, 2.001]> : tensor<2xf32>) : tensor<2xf32>
  return
}
func.func @passes_between_failures() {
  %a = util.unfoldable_constant dense<[1, 2]> : tensor<2xi32>
  check.expect_eq_const(%a, dense<[1, 2]> : tensor<2xi32>) : tensor<2xi32>
  return
}
func.func @fail_two_checks_then_pass() {
  %z = util.unfoldable_constant 0 : i32
  check.expect_true(%z) : i32
  %o = util.unfoldable_constant 1 : i32
  check.expect_false(%o) : i32
  check.expect_true(%o) : i32
  return
}
"""

VULKAN_MLIR = """
func.func @test_add_f32() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %b = util.unfoldable_constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %c = arith.addf %a, %b : tensor<4xf32>
  check.expect_almost_eq_const(%c, dense<[6.0, 8.0, 10.0, 12.0]> : tensor<4xf32>) : tensor<4xf32>
  check.expect_eq_const(%c, dense<[6.0, 8.0, 10.0, 12.0]> : tensor<4xf32>) : tensor<4xf32>
  return
}
func.func @fail_add_f32() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %b = util.unfoldable_constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %c = arith.addf %a, %b : tensor<4xf32>
  check.expect_almost_eq_const(%c, dense<[6.0, 8.0, 10.5, 12.0]> : tensor<4xf32>) : tensor<4xf32>
  return
}
"""


def _compile_all(sources: dict[str, tuple[str, list[str]]], out: Path) -> dict[str, Path]:
    """Compile MLIR texts concurrently; name -> .vmfb path."""
    if IREE_COMPILE is None:
        pytest.skip("iree-compile not installed")
    procs = {}
    for name, (text, flags) in sources.items():
        src = out / f"{name}.mlir"
        src.write_text(text)
        procs[name] = subprocess.Popen(
            [IREE_COMPILE, *flags, str(src), "-o", str(out / f"{name}.vmfb")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}.mlir did not compile:\n{err}"
    return {name: out / f"{name}.vmfb" for name in sources}


VULKAN = default_pool().status("vulkan")


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    sources = {"pass": (PASS_MLIR, CPU_FLAGS), "fail": (FAIL_MLIR, CPU_FLAGS)}
    if VULKAN.present:
        sources["vulkan"] = (VULKAN_MLIR, VULKAN_FLAGS)
    return _compile_all(sources, tmp_path_factory.mktemp("check"))


def _by_function(results: list) -> dict[str, object]:
    return {r.name.split("::", 1)[1].split("[", 1)[0]: r for r in results}


# --- listing cases --------------------------------------------------------------


def test_check_functions_lists_only_no_arg_no_result_exports(modules: dict[str, Path]) -> None:
    assert check_functions(modules["pass"]) == PASS_CASES  # no __init, no helpers


# --- passing files -----------------------------------------------------------


@pytest.mark.parametrize("device", ["local-task", "local-sync"])
def test_passing_file_all_cases_pass(modules: dict[str, Path], device: str) -> None:
    results = run_check_file(modules["pass"], device, default_pool(), "pass.mlir")
    assert [r.name for r in results] == [f"pass.mlir::{c}[{device}]" for c in PASS_CASES]
    for r in results:
        assert r.status == "passed", result_line(r)
        assert r.time_ms > 0
        assert r.device == device
        assert r.base == r.name.split("[", 1)[0]


def test_each_case_gets_a_fresh_context(modules: dict[str, Path]) -> None:
    """test_counter_a/b each expect the global to be 1 after one increment:
    both pass in run_check_file, the second fails when they share a context."""
    pool = default_pool()
    device = pool.device("local-task")
    instance = pool.instance
    module = ireert.VmModule.mmap(instance, str(modules["pass"]))
    log = CheckLog("shared")
    check = create_check_module(device, log)
    hal = ireert.create_hal_module(instance, device)
    context = ireert.VmContext(instance, [hal, check, module])
    for name in ("test_counter_a", "test_counter_b"):
        function = module.lookup_function(name)
        context.invoke(function, ireert.VmVariantList(0), ireert.VmVariantList(0))
    assert log.checks == 2 and len(log.failures) == 1
    assert "expected 0 to be nonzero" in log.failures[0].message
    del context, hal, check


# --- failing checks: one per kind --------------------------------------------

FAILURES = {
    "fail_expect_true": ("expect_true", ["expected 0 to be nonzero"]),
    "fail_expect_false": ("expect_false", ["expected 3 to be zero"]),
    "fail_expect_all_true": (
        "expect_all_true",
        ["2 of 4 elements are zero", "first at (1,)", "i32[4] [1 0 2 0]"],
    ),
    "fail_expect_eq": (
        "expect_eq",
        ["1 of 4 elements differ", "(2,)", "lhs 3 != rhs 30", "[1 2 30 4]"],
    ),
    "fail_expect_eq_const": (
        "expect_eq",
        ["1 of 4 elements differ", "(3,)", "lhs 4 != rhs 5", "[1 2 3 5]"],
    ),
    "fail_expect_almost_eq": (
        "expect_almost_eq",
        ["atol=0.0001, rtol=0", "max error 0.5 at (1,)", "lhs 2 vs rhs 2.5", "[1 2.5 3]"],
    ),
    "fail_expect_almost_eq_const": (
        "expect_almost_eq",
        ["atol=0.0001, rtol=0", "max error 0.001", "(tolerance there 0.0001)", "rhs 2.001"],
    ),
}


@pytest.fixture(scope="module")
def fail_results(modules: dict[str, Path]) -> dict[str, object]:
    return _by_function(run_check_file(modules["fail"], "local-task", default_pool(), "fail.mlir"))


@pytest.mark.parametrize("function", sorted(FAILURES))
def test_wrong_expectation_fails_with_values(fail_results: dict, function: str) -> None:
    check, fragments = FAILURES[function]
    r = fail_results[function]
    assert r.status == "failed", result_line(r)
    assert r.message.startswith(f"fail.mlir::{function}[local-task]: {function}: 1 of 1 checks")
    assert f"{check}: " in r.message
    for fragment in fragments:
        assert fragment in r.message, r.message
    assert "\n" not in r.message


def test_failures_are_isolated_and_non_fatal(fail_results: dict) -> None:
    assert fail_results["passes_between_failures"].status == "passed"
    r = fail_results["fail_two_checks_then_pass"]
    assert r.status == "failed"
    assert "2 of 3 checks failed" in r.message  # the function ran to the end
    assert "expected 0 to be nonzero" in r.message and "expected 1 to be zero" in r.message


@pytest.mark.skipif(IREE_RUN_MODULE is None, reason="iree-run-module not installed")
@pytest.mark.parametrize("function", ["fail_expect_true", "fail_expect_almost_eq"])
def test_iree_run_module_passes_failing_checks_silently(
    modules: dict[str, Path], function: str
) -> None:
    """The baseline problem: without a check module the failing check is skipped."""
    proc = subprocess.run(
        [
            IREE_RUN_MODULE,
            "--device=local-task",
            f"--module={modules['fail']}",
            f"--function={function}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# --- devices and errors --------------------------------------------------------


def test_absent_device_skips_every_case(modules: dict[str, Path]) -> None:
    status = default_pool().status("metal")
    if status.present:
        pytest.skip("metal is present here")
    results = run_check_file(modules["fail"], "metal", default_pool(), "fail.mlir")
    assert len(results) == 9
    assert all(r.status == "skipped" and r.message == status.reason for r in results)


def test_missing_module_is_one_error(tmp_path: Path) -> None:
    results = run_check_file(tmp_path / "nope.vmfb", "local-task", default_pool(), "nope.mlir")
    assert [(r.name, r.status) for r in results] == [("nope.mlir[local-task]", "error")]
    assert "not found" in results[0].message


def test_module_for_another_device_is_an_error(modules: dict[str, Path]) -> None:
    if not VULKAN.present:
        pytest.skip(VULKAN.reason)
    results = run_check_file(modules["pass"], "vulkan", default_pool(), "pass.mlir", ["test_f16"])
    assert results[0].status == "error"
    assert "cannot run on vulkan" in results[0].message


def test_unevaluable_check_is_an_error() -> None:
    """An integer operand to expect_almost_eq fails the call, as IREE's status does."""
    pool = default_pool()
    device = pool.device("local-task")
    log = CheckLog("direct")
    check = create_check_module(device, log)
    context = ireert.VmContext(pool.instance, [check])
    view = device.allocator.allocate_buffer_copy(
        memory_type=ireert.MemoryType.DEVICE_LOCAL,
        allowed_usage=ireert.BufferUsage.DEFAULT,
        device=device,
        buffer=np.array([1, 2], np.int32),
        element_type=ireert.HalElementType.SINT_32,
    )
    args = ireert.VmVariantList(5)
    for _ in range(3):  # the device slot takes any ref; the module reads via `device`
        args.push_ref(view)
    args.push_float(1e-4)
    args.push_float(0.0)
    with pytest.raises(RuntimeError):
        context.invoke(check.lookup_function("expect_almost_eq"), args, ireert.VmVariantList(0))
    assert log.error is not None and "unsupported element type i32" in log.error.message
    del context, check, args, view


@pytest.mark.skipif(not VULKAN.present, reason=f"vulkan absent: {VULKAN.reason}")
def test_vulkan_checks_are_judged(modules: dict[str, Path]) -> None:
    results = _by_function(run_check_file(modules["vulkan"], "vulkan", default_pool(), "v.mlir"))
    assert results["test_add_f32"].status == "passed", results["test_add_f32"].message
    r = results["fail_add_f32"]
    assert r.status == "failed" and r.name == "v.mlir::fail_add_f32[vulkan]"
    assert "expect_almost_eq" in r.message and "max error 0.5 at (2,)" in r.message


def test_engine_imports_only_the_runtime() -> None:
    code = (
        "import sys, iree_build.testing.check_runner\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('SCons', 'llvmlite')"
        " or m.startswith('iree.compiler')]\n"
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- comparison semantics (pure numpy) -----------------------------------------


def test_almost_eq_semantics() -> None:
    f32 = np.float32
    ok = almost_eq_failure
    special = np.array([np.inf, -np.inf, np.nan], f32)
    assert ok(special, special.copy(), 1e-4, 0) is None  # equal infs, NaN == NaN
    assert ok(np.array([np.nan], f32), np.array([1.0], f32), 1e-4, 0) is not None
    message = ok(np.array([1.0], f32), np.array([np.inf], f32), 1e9, 0)
    assert message is not None and "rhs not finite" in message
    assert ok(np.array([1.00009], f32), np.array([1.0], f32), 1e-4, 0) is None
    assert ok(np.array([1.0002], f32), np.array([1.0], f32), 1e-4, 0) is not None
    # rtol scales |rhs| (the reference), so the test is not symmetric.
    assert ok(np.array([1.0], f32), np.array([1.1], f32), 0.0, 0.095) is None
    assert ok(np.array([1.1], f32), np.array([1.0], f32), 0.0, 0.095) is not None
    assert ok(np.array([1.0], np.float16), np.array([1.001], np.float16), 1e-4, 0) is not None
    # 1.0004 rounds to 1.0 in f16: the comparison sees stored values.
    assert ok(np.array([1.0], np.float16), np.array([1.0004], np.float16), 1e-4, 0) is None
    bf16 = np.dtype(ml_dtypes.bfloat16)
    assert ok(np.array([1.0, 2.0], bf16), np.array([1.0, 2.0], bf16), 1e-4, 0) is None
    message = ok(np.array([1.0, 2.0], bf16), np.array([1.0, 2.5], bf16), 1e-4, 0)
    assert message is not None and "bf16[2]" in message and "max error 0.5" in message
    assert "shapes differ" in ok(np.zeros(4, f32), np.zeros((2, 2), f32), 1e-4, 0)
    assert "element types differ" in ok(np.zeros(2, f32), np.zeros(2, np.float64), 1e-4, 0)
    with pytest.raises(CheckError):
        ok(np.zeros(2, np.int32), np.zeros(2, np.int32), 1e-4, 0)


def test_eq_is_bytewise() -> None:
    assert eq_failure(np.array([np.nan], np.float32), np.array([np.nan], np.float32)) is None
    assert eq_failure(np.array([0.0], np.float32), np.array([-0.0], np.float32)) is not None
    assert "element types differ (lhs i32, rhs ui32)" in eq_failure(
        np.zeros(2, np.int32), np.zeros(2, np.uint32)
    )
    assert eq_failure(np.zeros((0, 3), np.int8), np.zeros((0, 3), np.int8)) is None
    message = eq_failure(np.arange(20, dtype=np.int64), np.arange(20, dtype=np.int64) * 2)
    assert "19 of 20 elements differ, first at (1,): lhs 1 != rhs 2" in message
    assert "...(+12)" in message  # long operands are cut


def test_all_true() -> None:
    assert all_true_failure(np.array([[1, 2], [3, -4]], np.int8)) is None
    assert "first at (1, 0)" in all_true_failure(np.array([[1, 2], [0, 4]], np.int8))
    assert all_true_failure(np.array([True, True])) is None
    assert all_true_failure(np.array([0.5, 0.0], np.float32)) is not None

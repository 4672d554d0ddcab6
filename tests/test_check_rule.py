"""iree_check_test_suite through real SCons runs: cases, failures, strict xfail, skips."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import Project

ADD = """\
func.func @test_add_f32() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %b = util.unfoldable_constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %c = arith.addf %a, %b : tensor<4xf32>
  check.expect_almost_eq_const(%c, dense<[6.0, 8.0, 10.0, 12.0]> : tensor<4xf32>) : tensor<4xf32>
  return
}
func.func @test_add_i32() {
  %a = util.unfoldable_constant dense<[1, 2, 3, 4]> : tensor<4xi32>
  %c = arith.addi %a, %a : tensor<4xi32>
  check.expect_eq_const(%c, dense<[2, 4, 6, 8]> : tensor<4xi32>) : tensor<4xi32>
  return
}
"""

WRONG = """\
func.func @test_wrong_sum() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %c = arith.addf %a, %a : tensor<3xf32>
  check.expect_almost_eq_const(%c, dense<[2.0, 4.0, 6.5]> : tensor<3xf32>) : tensor<3xf32>
  return
}
func.func @test_right() {
  %t = util.unfoldable_constant 1 : i32
  check.expect_true(%t) : i32
  return
}
"""


def suite(project: Project, extra: str = "") -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        SConscript("checks/SConscript", variant_dir="build", duplicate=False)
        """)
    project.write("checks/SConscript", f"""\
        iree_check_test_suite(name="checks", srcs=Glob("*.mlir"), target_backends=["llvm-cpu", "vmvx"],
                              devices=["local-task"]{extra})
        """)
    project.write("checks/add.mlir", ADD)
    project.write("checks/wrong.mlir", WRONG)


def lines(run, word: str) -> list[str]:
    return sorted(ln for ln in run.stdout.splitlines() if ln.startswith(word + " "))


def test_cases_pass_and_a_wrong_check_fails_with_its_values(project: Project) -> None:
    suite(project)
    run = project.scons("test", "-k", "-j2")
    assert run.returncode == 2, run.output
    passed = [ln.split(" (")[0] for ln in lines(run, "PASS")]
    assert "PASS checks/add.mlir::test_add_f32[llvm-cpu:local-task]" in passed
    assert "PASS checks/add.mlir::test_add_i32[vmvx:local-task]" in passed
    assert "PASS checks/wrong.mlir::test_right[vmvx:local-task]" in passed
    fails = lines(run, "FAIL")
    assert len(fails) == 2
    assert fails[0].startswith("FAIL checks/wrong.mlir::test_wrong_sum[llvm-cpu:local-task] (test_wrong_sum: 1 of 1 checks "
                               "failed: expect_almost_eq: 1 of 3 elements not within atol=0.0001")
    assert "max error 0.5" in fails[0]
    assert run.stdout.splitlines()[-1] == "6 passed, 2 failed, 0 skipped"
    report = ET.parse(project.path("build/iree_test_results.xml")).getroot().find("testsuite")
    assert report.get("tests") == "8" and report.get("failures") == "2"

    cached = project.scons("test", "-k")
    assert not [ln for ln in lines(cached, "PASS") if "add.mlir" in ln]  # passing files are not rerun
    assert len(lines(cached, "FAIL")) == 2  # failing files are, as a whole
    assert cached.stdout.splitlines()[-1] == "6 passed, 2 failed, 0 skipped"


def test_strict_xfail_and_declared_skips(project: Project) -> None:
    suite(project, extra=""",
                              xfail=[("wrong.mlir", "*", "local-task", "sum is known wrong"),
                                     ("add.mlir", "vmvx", "*")],
                              skip=[("wrong.mlir", "vmvx", "*", "too slow on vmvx")]""")
    run = project.scons("test", "-k")
    assert run.returncode == 2, run.output  # add.mlir on vmvx passes although declared to fail
    assert lines(run, "XFAIL")[0].startswith(
        "XFAIL checks/wrong.mlir::test_wrong_sum[llvm-cpu:local-task] (expected failure (sum is known wrong):")
    # A declared skip lists the file's cases, each skipped (counted as CTest counts them).
    assert "SKIP checks/wrong.mlir::test_wrong_sum[vmvx:local-task] (too slow on vmvx)" in run.stdout
    assert "SKIP checks/wrong.mlir::test_right[vmvx:local-task] (too slow on vmvx)" in run.stdout
    (xpass,) = lines(run, "FAIL")
    assert xpass.startswith("FAIL checks/add.mlir[vmvx:local-task] (passed, but is declared as an expected failure")
    assert run.stdout.splitlines()[-1] == "6 passed, 1 failed, 2 skipped"  # an XFAIL counts as passed, as in CTest


def test_check_suite_on_vulkan_and_through_the_standalone_runner(project: Project) -> None:
    from iree_build.testing.devices import device_status

    project.write("SConstruct", """\
        from iree_rules import *
        iree_check_test_suite(name="gpu", srcs=["add.mlir"], target_backends=["vulkan-spirv", "llvm-cpu"],
                              devices=["vulkan", "local-sync"])
        """)
    project.write("add.mlir", ADD)
    assert project.scons().returncode == 0
    proc = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root)],
                          capture_output=True, text=True)
    out = proc.stdout.splitlines()
    if device_status("vulkan")[0]:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "PASS gpu/add.mlir::test_add_f32[vulkan]" in "\n".join(out)
        assert out[-1] == "4 passed, 0 failed, 0 skipped"
    else:
        assert out[-1] == "2 passed, 0 failed, 2 skipped"
    if os.environ.get("CI") == "true":  # CI installs lavapipe: the check suite must run on vulkan there
        assert device_status("vulkan")[0]
    # The branch of a machine without a Vulkan driver, also where one is installed.
    hidden = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root), "--retest"],
                            capture_output=True, text=True,
                            env={**os.environ, "VK_DRIVER_FILES": "/nonexistent.json",
                                 "VK_ICD_FILENAMES": "/nonexistent.json"})
    assert hidden.returncode == 0, hidden.stdout + hidden.stderr
    assert hidden.stdout.splitlines()[-1] == "2 passed, 0 failed, 2 skipped"
    assert "SKIP gpu/add.mlir::test_add_f32[vulkan] (vulkan: driver compiled in, no device present" in hidden.stdout
    # Required, the missing device fails each case with the reason, in both front ends.
    no_vulkan = {**os.environ, "VK_DRIVER_FILES": "/nonexistent.json", "VK_ICD_FILENAMES": "/nonexistent.json"}
    required = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root), "--retest",
                               "--require-devices", "--devices=vulkan"],
                              capture_output=True, text=True, env=no_vulkan)
    scons = project.scons("test", "--iree-require-devices", "--iree-devices=vulkan", "--iree-retest", env=no_vulkan)
    for run in (required, scons):
        assert run.returncode != 0
        out = run.stdout.splitlines()
        assert out[-1] == "0 passed, 2 failed, 0 skipped", run.stdout
        assert ("FAIL gpu/add.mlir::test_add_i32[vulkan] (device required: vulkan: driver compiled in, "
                "no device present") in run.stdout, run.stdout
        assert "  device missing (2): " in run.stdout


def test_a_plain_test_of_a_check_function_is_judged_too(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="w", src="wrong.mlir")
        iree_test(name="plain", module="w", function="test_wrong_sum")
        iree_test(name="fine", module="w", function="test_right")
        """)
    project.write("wrong.mlir", WRONG)
    run = project.scons("test", "-k")
    assert run.returncode == 2, run.output
    assert "FAIL plain[local-task] (test_wrong_sum: 1 of 1 checks failed: expect_almost_eq:" in run.stdout
    assert "PASS fine[local-task]" in run.stdout

"""iree_test / iree_run / `scons test` end to end, with real SCons processes and devices."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
from conftest import ADD_MLIR, Project

SCONSTRUCT = """\
from iree_rules import *
import numpy as np
SConscript("src/SConscript", variant_dir="build", duplicate=False)
"""

TESTS = """\
iree_module(name="add", src="add.mlir", target_backends=["llvm-cpu", "cuda"])
iree_test(name="lit", module="add", function="add",
          inputs=[[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]], expected=[[11.0, 22.0, 33.0, 44.0]])
iree_test(name="files", module="add", function="add", inputs=["a.npy", "b.npy"],
          expected=lambda a, b: a + b, devices=["local-task", "local-sync", "cuda"])
iree_test(name="wrong", module="add", function="add",
          inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], expected=[[2.0, 3.0, 4.0, 6.0]], atol=0.5)
"""


def project_with_tests(project: Project, sconscript: str = TESTS) -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/SConscript", sconscript)
    project.write("src/add.mlir", ADD_MLIR)
    np.save(project.path("src/a.npy"), np.arange(4, dtype=np.float32))
    np.save(project.path("src/b.npy"), np.full(4, 0.5, dtype=np.float32))


def lines(run, prefix: str) -> list[str]:
    return sorted(ln for ln in run.stdout.splitlines() if ln.startswith(prefix))


def test_pass_fail_skip_summary_and_junit(project: Project) -> None:
    project_with_tests(project)
    run = project.scons("test", "-k")
    assert run.returncode == 2, run.output
    assert [ln.split(" (")[0] for ln in lines(run, "PASS")] == [
        "PASS files[local-sync]", "PASS files[local-task]", "PASS lit[local-task]"]
    (skip,) = lines(run, "SKIP")
    assert skip.startswith("SKIP files[cuda] (cuda: driver compiled in, no device present")
    (fail,) = lines(run, "FAIL")
    assert fail.startswith("FAIL wrong[local-task] (output 0 mismatch: max abs err 1, max rel err 0.166667 "
                           "(rtol 1e-05, atol 0.5); first at (3,): expected 6.0, got 5.0")
    assert run.stdout.splitlines()[-1] == "3 passed, 1 failed, 1 skipped"
    assert "scons: *** [build/wrong.local-task.result.json] test wrong[local-task] failed" in run.stderr

    suite = ET.parse(project.path("build/iree_test_results.xml")).getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["wrong[local-task]"].find("failure").get("message").startswith(
        "wrong[local-task]: output 0 mismatch")
    assert cases["files[cuda]"].find("skipped").get("message").startswith("cuda: driver compiled in, no device present")
    assert cases["lit[local-task]"].find("failure") is None


def test_require_devices_turns_skips_into_failures(project: Project) -> None:
    project_with_tests(project)
    run = project.scons("test", "--iree-devices=cuda", "--iree-require-devices")
    assert run.returncode == 2
    assert run.stdout.splitlines()[-1] == "0 passed, 1 failed, 0 skipped"
    assert "could not run and --iree-require-devices is set: cuda: driver compiled in, no device present" in run.stderr
    assert "FAIL files[cuda] (device required: cuda: driver compiled in, no device present" in run.stdout, run.output


def test_results_are_cached_and_only_affected_tests_rerun(project: Project) -> None:
    project_with_tests(project, TESTS.split('iree_test(name="wrong"')[0])
    first = project.scons("test")
    assert first.returncode == 0, first.output
    assert first.stdout.splitlines()[-2].startswith("3 tests run, 0 up to date")

    second = project.scons("test")
    assert lines(second, "PASS") == []
    assert second.stdout.splitlines()[-2].startswith("0 tests run, 3 up to date")
    assert second.stdout.splitlines()[-1] == "3 passed, 0 failed, 1 skipped"

    np.save(project.path("src/b.npy"), np.full(4, 2.0, dtype=np.float32))  # one input of `files`
    third = project.scons("test")
    assert [ln.split(" (")[0] for ln in lines(third, "PASS")] == ["PASS files[local-sync]", "PASS files[local-task]"]

    project.write("src/SConscript", project.path("src/SConscript").read_text().replace(
        "expected=[[11.0, 22.0, 33.0, 44.0]])", "expected=[[11.0, 22.0, 33.0, 44.0]], rtol=1e-3)"))
    fourth = project.scons("test")
    assert [ln.split(" (")[0] for ln in lines(fourth, "PASS")] == ["PASS lit[local-task]"]

    forced = project.scons("test", "--iree-retest")
    assert len(lines(forced, "PASS")) == 3


def test_filters_and_plain_scons_runs_no_test(project: Project) -> None:
    project_with_tests(project)
    plain = project.scons("-j2")
    assert plain.returncode == 0, plain.output
    assert lines(plain, "PASS") == [] and lines(plain, "FAIL") == [] and lines(plain, "SKIP") == []
    assert project.path("build/iree_tests.json").exists()  # the manifest is part of the build

    only = project.scons("test", "--iree-test-filter=files*", "--iree-devices=local-sync")
    assert only.returncode == 0, only.output
    assert [ln.split(" (")[0] for ln in lines(only, "PASS")] == ["PASS files[local-sync]"]
    assert only.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"


def test_declaration_errors(project: Project) -> None:
    project_with_tests(project, "")
    cases = {
        'iree_module(name="add", src="add.mlir")\n'
        'iree_test(name="t", module="add", function="add", inputs=[1.0, 2.0], devices=["cuda"])':
            "src/SConscript:2: iree_test devices: device 'cuda' cannot run a module built for llvm-cpu; "
            "its code runs on: local-sync, local-task",
        'iree_module(name="add", src="add.mlir")\n'
        'iree_test(name="t", module="add", function="add", inputs=["missing.npy"])':
            "src/SConscript:2: iree_test inputs: data file src/missing.npy not found",
        'iree_module(name="add", src="add.mlir")\n'
        'iree_test(name="ok", module="add", function="add", inputs=[[1.0], [2.0]], expected=[[3.0]])\n'
        'iree_test(name="t", module="add", function="add", inputs=["missing.npy"])':
            "src/SConscript:3: iree_test inputs: data file src/missing.npy not found",
        'iree_test(name="t", module="nope", function="add")':
            "src/SConscript:1: iree_test module: module 'nope' is not declared here",
        'iree_module(name="add", src="add.mlir")\n'
        'iree_test(name="t", module="add", function="add", devices=["tpu"])':
            "src/SConscript:2: iree_test devices: unknown HAL device 'tpu'",
    }
    for text, message in cases.items():
        project.write("src/SConscript", text + "\n")
        run = project.scons("test")
        assert run.returncode == 2, run.output
        assert message in run.stderr, run.stderr
        assert "Traceback" not in run.output
        assert "skipped" not in run.stdout and "JUnit" not in run.stdout, run.stdout  # one line only


def test_iree_run_outputs_feed_a_test(project: Project) -> None:
    project_with_tests(project, """\
        iree_module(name="add", src="add.mlir")
        y = iree_run(name="y", module="add", function="add", inputs=["a.npy", "b.npy"])
        iree_test(name="twice", module="add", function="add", inputs=[y, y],
                  expected=[[1.0, 3.0, 5.0, 7.0]])
        """)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert "IREE run add on local-task -> build/y.npy" in run.stdout
    np.testing.assert_array_equal(np.load(project.path("build/y.npy")), np.arange(4) + 0.5)
    assert run.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"


BLOCKER = """\
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("SCons", "llvmlite") or name.startswith("iree.compiler"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
from iree_build.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_standalone_runner_on_a_scons_built_tree_without_scons_or_compiler(project: Project) -> None:
    project_with_tests(project)
    assert project.scons().returncode == 0  # builds modules, data and manifest; runs no test
    proc = subprocess.run([sys.executable, "-c", BLOCKER, "test", str(project.path("build"))],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "3 passed, 1 failed, 1 skipped"
    assert "is blocked" not in proc.stderr


def _vulkan_present() -> bool:
    from iree_build.testing.devices import device_status

    return device_status("vulkan")[0]


def test_vulkan_module_runs_on_vulkan_or_is_skipped_with_reason(project: Project) -> None:
    project_with_tests(project, """\
        iree_module(name="addv", src="add.mlir", target_backends=["vulkan-spirv", "llvm-cpu"])
        iree_test(name="v", module="addv", function="add", inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]],
                  expected=[[2.0, 3.0, 4.0, 5.0]], devices=["vulkan", "local-task"])
        """)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    if _vulkan_present():
        assert run.stdout.splitlines()[-1] == "2 passed, 0 failed, 0 skipped"
    else:
        assert lines(run, "SKIP")[0].startswith("SKIP v[vulkan] (vulkan:")
        assert run.stdout.splitlines()[-1] == "1 passed, 0 failed, 1 skipped"
    if os.environ.get("CI") == "true":  # CI installs lavapipe: the vulkan path must really run there
        assert _vulkan_present()


def test_reference_functions_read_tensor_protos_and_refuse_pickles(project: Project) -> None:
    from onnx import numpy_helper

    project_with_tests(project, """\
        iree_module(name="add", src="add.mlir")
        iree_test(name="pbref", module="add", function="add", inputs=["a.pb", "a.pb"],
                  expected=lambda a, b: a + b)
        """)
    project.path("src/a.pb").write_bytes(
        numpy_helper.from_array(np.arange(4, dtype=np.float32)).SerializeToString())
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"

    np.save(project.path("src/a.npy"), np.array([{"x": 1}], dtype=object), allow_pickle=True)
    project.write("src/SConscript", """\
        iree_module(name="add", src="add.mlir")
        iree_test(name="bad", module="add", function="add", inputs=["a.npy", "b.npy"],
                  expected=lambda a, b: a + b)
        """)
    bad = project.scons("test")
    assert bad.returncode == 2
    assert bad.stderr.startswith("scons: *** src/SConscript:2: cannot read src/a.npy as a .npy array: "
                                 "it holds Python objects (pickled), which are never loaded: save a numeric array"), bad.stderr
    assert "Traceback" not in bad.output

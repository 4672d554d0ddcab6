"""Values through the rules: scalars, bf16/f8, IREE's syntax and flag files, xfail/skip,
failed compiles remembered, and IREE's generated test folders with their CI configuration."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from conftest import Project
from iree_suite_tree import write_tree

SCONSTRUCT = """\
from iree_rules import *
SConscript("src/SConscript", variant_dir="build", duplicate=False)
"""

TYPES_MLIR = """\
func.func @sadd(%a: tensor<f32>, %b: tensor<f32>) -> tensor<f32> {
  %c = arith.addf %a, %b : tensor<f32>
  return %c : tensor<f32>
}
func.func @bf(%a: tensor<2xbf16>) -> tensor<2xbf16> {
  %c = arith.addf %a, %a : tensor<2xbf16>
  return %c : tensor<2xbf16>
}
func.func @f8(%a: tensor<2xf8E4M3FN>) -> tensor<2xf8E4M3FN> { return %a : tensor<2xf8E4M3FN> }
func.func @add(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %c = arith.addf %a, %b : tensor<2x3xf32>
  return %c : tensor<2x3xf32>
}
"""

DECLARATIONS = """\
import numpy as np, ml_dtypes
iree_module(name="t", src="t.mlir")
iree_test(name="scalar", module="t", function="sadd", inputs=[np.float32(1), "f32=2"], expected=["f32=3"])
iree_test(name="scalar_npy", module="t", function="sadd", inputs=["one.npy", "one.npy"],
          expected=[np.float32(2)])
iree_test(name="scalar_nan", module="t", function="sadd", inputs=["f32=nan", "f32=1"], expected=["f32=3"])
iree_test(name="bf16", module="t", function="bf", inputs=[np.array([1.5, 2], ml_dtypes.bfloat16)],
          expected=["2xbf16=3 4"])
iree_test(name="bf16_npy", module="t", function="bf", inputs=["bf.npy"], expected=["bf2.npy"])
iree_test(name="f8", module="t", function="f8", inputs=["f8.npy"], expected=["2xf8E4M3FN=1 2"])
iree_test(name="raw", module="t", function="add", inputs=["2x3xf32=@x.bin", "2x3xf32=1"],
          expected=["2x3xf32=1 2 3 4 5 6"])
iree_test(name="tols", module="t", function="add", inputs=["2x3xf32=1", "2x3xf32=0.5"],
          expected=["2x3xf32=1.6"], atol=[0.2])
iree_test(name="known_bad", module="t", function="add", inputs=["2x3xf32=1", "2x3xf32=1"],
          expected=["2x3xf32=3"], xfail="issue 123")
iree_test(name="wrongly_xfailed", module="t", function="add", inputs=["2x3xf32=1", "2x3xf32=1"],
          expected=["2x3xf32=2"], xfail={"local-task": "flaky on task"}, devices=["local-task", "local-sync"])
iree_test(name="not_today", module="t", function="add", inputs=["2x3xf32=1", "2x3xf32=1"],
          expected=["2x3xf32=2"], skip="not today")
iree_test(name="from_flags", module="t", flagfile="case/run_module_io_flags.txt")
iree_run(name="sum", module="t", function="sadd", inputs=["f32=1", "f32=2"])
"""


def _types_project(project: Project, declarations: str = DECLARATIONS) -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/SConscript", declarations)
    project.write("src/t.mlir", TYPES_MLIR)
    np.save(project.path("src/one.npy"), np.float32(1))  # 0-d
    np.save(project.path("src/bf.npy"), np.array([1.5, 2], ml_dtypes.bfloat16))  # saved as |V2
    np.save(project.path("src/bf2.npy"), np.array([3, 4], ml_dtypes.bfloat16))
    np.save(project.path("src/f8.npy"), np.array([1, 2], ml_dtypes.float8_e4m3fn))  # |V1
    np.arange(1, 7, dtype=np.float32).tofile(project.path("src/x.bin"))
    project.path("src/x.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    project.write("src/case/run_module_io_flags.txt",
                  "--function=add\n--input=2x3xf32=@a.bin\n--input=2x3xf32=0.5\n"
                  "--expected_output=2x3xf32=@b.bin\n")
    np.full(6, 1.0, np.float32).tofile(project.path("src/case/a.bin"))
    np.full(6, 1.5, np.float32).tofile(project.path("src/case/b.bin"))


def _verdicts(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASS", "FAIL", "XFAIL", "SKIP", "CRASH", "TIMEOUT"):
            out[rest.split(" (")[0]] = word
    return out


def test_every_value_keeps_its_shape_and_type(project: Project) -> None:
    _types_project(project)
    run = project.scons("test", "build/sum.npy", "-k")
    assert run.returncode == 2, run.output
    verdicts = _verdicts(run.stdout)
    assert verdicts == {
        "scalar[local-task]": "PASS", "scalar_npy[local-task]": "PASS",
        "scalar_nan[local-task]": "FAIL", "bf16[local-task]": "PASS", "bf16_npy[local-task]": "PASS",
        "f8[local-task]": "PASS", "raw[local-task]": "PASS", "tols[local-task]": "PASS",
        "known_bad[local-task]": "XFAIL", "wrongly_xfailed[local-task]": "FAIL",
        "wrongly_xfailed[local-sync]": "PASS", "not_today[local-task]": "SKIP",
        "from_flags[local-task]": "PASS"}, run.stdout
    lines = run.stdout.splitlines()
    (nan,) = [line for line in lines if line.startswith("FAIL scalar_nan")]
    # The real reason, not a shape message about an expectation the user never wrote.
    assert "output 0 mismatch" in nan and "expected 3.0, got nan" in nan, nan
    assert "IREE's f32 default: rtol 1e-05, atol 0.0001" in nan
    (xpass,) = [line for line in lines if line.startswith("FAIL wrongly_xfailed")]
    assert "passed, but is declared as an expected failure (flaky on task)" in xpass
    assert "SKIP not_today[local-task] (not today)" in lines
    total = np.load(project.path("build/sum.npy"), allow_pickle=False)
    assert total.shape == () and total == 3  # a 0-d output stays 0-d


@pytest.mark.parametrize("declaration, message", [
    ('iree_test(name="e", module="t", function="add", inputs=["4xf32=1 2"])',
     "src/SConscript:3: iree_test inputs: '4xf32=1 2' gives 2 values for shape 4 (4 elements)"),
    ('iree_test(name="e", module="t", function="add", inputs=["x.bin"])',
     "src/SConscript:3: iree_test inputs: 'x.bin' is a raw file: give its shape and element type "
     "in IREE's syntax, e.g. '2x3xf32=@x.bin'"),
    ('iree_test(name="e", module="t", function="add", inputs=["4xf32=@x.bin"])',
     "src/SConscript:3: 4xf32=@x.bin: src/x.bin holds 24 bytes, but 4 f32 takes 16"),
    ('iree_test(name="e", module="t", function="add", inputs=[np.zeros(4, ml_dtypes.int4)])',
     "src/SConscript:3: iree_test inputs: value 0 has element type int4, which the runtime packs"),
    ('iree_test(name="e", module="t", flagfile="bad_flags.txt")',
     "src/SConscript:3: iree_test flagfile: "),
    ('iree_test(name="e", module="t", function="add", skip={"cuda": "no"})',
     "src/SConscript:3: xfail/skip names device 'cuda', which the test does not run on"),
    ('iree_module(name="m2", src="t.mlir", flags=["--iree-hal-target-device=local"])',
     "src/SConscript:3: flags: --iree-hal-target-device=local duplicates --iree-hal-target-device=local, "
     "which target_backends/cpu/cpu_features/triple already sets"),
    ('iree_module(name="m2", src="t.mlir", flags=["--iree-hal-target-backends=llvm-cpu"])',
     "src/SConscript:3: flags: --iree-hal-target-backends=llvm-cpu duplicates"),
])
def test_bad_values_are_one_line_at_declaration(project: Project, declaration: str, message: str) -> None:
    _types_project(project, 'import numpy as np, ml_dtypes\niree_module(name="t", src="t.mlir")\n'
                   + declaration + "\n")
    project.write("src/bad_flags.txt", "--input=f32=1\n--devcie=local-task\n")
    run = project.scons("test")
    assert run.returncode == 2
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], run.stderr
    assert "Traceback" not in run.output
    if "flagfile" in declaration:
        assert "bad_flags.txt:2: --devcie is not an iree-run-module flag" in err[0]


def test_a_failed_compile_is_remembered_until_its_source_changes(project: Project) -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/SConscript", """\
        iree_module(name="bad", src="bad.mlir")
        iree_test(name="t", module="bad", function="f", inputs=["f32=1"], expected=["f32=1"])
        """)
    project.write("src/bad.mlir", "func.func @f(%a: tensor<f32>) -> tensor<f32> {\n"
                                  "  return %b : tensor<f32>\n}\n")
    first = project.scons("test", "-k")
    assert first.returncode == 2
    error = "bad.mlir:2:10: error: use of undeclared SSA value name"
    assert error in first.stderr and "not retried" not in first.stderr
    fail = [line for line in first.stdout.splitlines() if line.startswith("FAIL")]
    assert fail == [f"FAIL t[local-task] (module bad.vmfb did not build: IREE compile failed: src/{error})"]
    case = ET.parse(project.path("build/iree_test_results.xml")).getroot().find(".//testcase")
    assert error in case.find("failure").get("message")

    again = project.scons("test", "-k")  # unchanged: the compiler is not asked again
    assert again.returncode == 2
    assert f"IREE compile failed: src/{error} (unchanged since it failed: not retried)" in again.stderr
    assert "^" not in again.stderr  # no second copy of the diagnostics: it did not run

    project.write("src/bad.mlir", "func.func @f(%a: tensor<f32>) -> tensor<f32> {\n"
                                  "  return %a : tensor<f32>\n}\n")
    fixed = project.scons("test")
    assert fixed.returncode == 0, fixed.output
    assert "PASS t[local-task]" in fixed.stdout
    assert not project.path("build/bad.vmfb.failed").exists()


def _native(name: str) -> str:
    import iree.runtime

    path = Path(iree.runtime.__file__).parent.parent / "_runtime_libs" / name
    return str(path) if path.exists() else name


def _iree_tools_verdict(folder: Path, tmp: Path) -> str:
    """What IREE's own tools say of one generated test folder, as the suites' conftest runs them."""
    module = tmp / (folder.name + ".vmfb")
    compiled = subprocess.run([str(Path(sys.executable).parent / "iree-compile"), "model.mlir",
                               "--iree-hal-target-backends=llvm-cpu", "-o", str(module)],
                              cwd=folder, capture_output=True, text=True)
    if compiled.returncode != 0:
        return "compile failed"
    ran = subprocess.run([_native("iree-run-module"), f"--module={module}", "--device=local-sync",
                          "--flagfile=run_module_io_flags.txt"], cwd=folder, capture_output=True, text=True)
    return "pass" if ran.returncode == 0 and "[SUCCESS]" in ran.stdout else "fail"


def test_iree_generated_folders_with_their_ci_configuration(project: Project, tmp_path: Path) -> None:
    """The suite rule, hand-written declarations of the same folders, and IREE's own tools agree."""
    expected = write_tree(project.path("src/onnx_ops"))
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/SConscript", """\
        iree_test_suite(name="ops", root="onnx_ops", config="onnx_ops/config.json")
        """)
    run = project.scons("test", "-k")
    assert run.returncode == 2, run.output
    prefix = "ops/onnx/node/generated/"
    by_suite = {k[len(prefix):].split("[")[0]: v for k, v in _verdicts(run.stdout).items()}
    assert by_suite == expected, run.stdout
    assert run.stdout.splitlines()[-1] == "6 passed, 1 failed, 1 skipped"

    # IREE's tools on the same folders: every verdict not set by the configuration's lists.
    generated = project.path("src/onnx_ops/onnx/node/generated")
    for name, verdict in expected.items():
        if verdict in ("PASS", "FAIL"):
            assert _iree_tools_verdict(generated / name, tmp_path) == verdict.lower(), name
    assert _iree_tools_verdict(generated / "test_add_run_xfail", tmp_path) == "fail"
    assert _iree_tools_verdict(generated / "test_compile_xfail", tmp_path) == "compile failed"

    # The same folders declared by hand, as a user without the suite rule would.
    hand = Project(tmp_path / "hand")
    write_tree(hand.path("src/onnx_ops"))
    hand.write("SConstruct", SCONSTRUCT)
    lines = []
    for name, verdict in expected.items():
        if verdict == "SKIP":
            continue
        folder = f"onnx_ops/onnx/node/generated/{name}"
        xfail = '"listed"' if verdict == "XFAIL" else "None"
        compile_xfail = name == "test_compile_xfail"
        lines.append(f'iree_module(name="{name}", src="{folder}/model.mlir"'
                     + (", _IREE_ALLOW_FAILURE=True)" if compile_xfail else ")"))
        lines.append(f'iree_test(name="{name}", module="{name}", flagfile="{folder}/run_module_io_flags.txt", '
                     f'devices=["local-sync"], xfail={xfail})')
    hand.write("src/SConscript", "\n".join(lines) + "\n")
    by_hand = hand.scons("test", "-k")
    assert {k.split("[")[0]: v for k, v in _verdicts(by_hand.stdout).items()} == {
        k: v for k, v in expected.items() if v != "SKIP"}, by_hand.output

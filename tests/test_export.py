"""CMake and Bazel exports, and --iree-commands: real scons, cmake, ninja, ctest, iree-compile
(and bazel where installed) on a two-level SConscript hierarchy and the quickstart."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ADD_MLIR, MATMUL_MLIR, Project, write_onnx_matmul

BIN = Path(sys.executable).parent  # the venv's cmake, ninja, ctest, iree-compile
REPO = Path(__file__).resolve().parent.parent

SCONSTRUCT = """\
from iree_rules import *
SConscript("models/SConscript", variant_dir="build/models", duplicate=False)
"""

MODELS = """\
import numpy as np
iree_module(name="add", src="add.mlir", target_backends=["llvm-cpu", "cuda"])
iree_test(name="lit", module="add", function="add",
          inputs=[[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]], expected=lambda a, b: a + b)
iree_test(name="files", module="add", function="add", inputs=["a.npy", "a.npy"],
          expected=[[0.0, 2.0, 4.0, 6.0]], devices=["local-task", "cuda"])
iree_test(name="wrong", module="add", function="add",
          inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], expected=[[2.0, 3.0, 4.0, 6.0]])
iree_check_test_suite(name="checks", srcs=["check_add.mlir"], target_backends=["llvm-cpu"],
                      devices=["local-task"])
SConscript("mlp/SConscript")
"""

MLP = """\
import numpy as np
a = np.arange(128, dtype=np.float32).reshape(8, 16) / 100
b = np.ones((16, 4), np.float32)
iree_module(name="mm", src="mm.mlir", cpu="host", flags=["@flags.txt"])
iree_test(name="mm_test", module="mm", function="mm", inputs=[a, b], expected=lambda a, b: a @ b,
          rtol=1e-4, atol=1e-4)
iree_module(name="mm_static", src="mm.mlir", toolchain="llvm-cpu-static-library")
iree_module(name="onnx_mm", src="mm.onnx")
x = np.ones((2, 16), np.float32)
iree_test(name="onnx_test", module="onnx_mm", inputs=[x],
          expected=lambda x: x @ np.arange(256, dtype=np.float32).reshape(16, 16))
"""

CHECK_ADD = """\
func.func @check_add() {
  %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
  %b = arith.addf %a, %a : tensor<2xf32>
  check.expect_almost_eq_const(%b, dense<[2.0, 4.0]> : tensor<2xf32>) : tensor<2xf32>
  return
}
"""

MODULES = ["build/models/add.vmfb", "build/models/checks_check_add_llvm-cpu.vmfb",
           "build/models/mlp/mm.vmfb", "build/models/mlp/mm_static.vmfb",
           "build/models/mlp/mm_static_dispatch.o", "build/models/mlp/mm_static_dispatch.h",
           "build/models/mlp/onnx_mm.imported.mlir", "build/models/mlp/onnx_mm.vmfb"]


def write_hierarchy(project: Project) -> None:

    project.write("SConstruct", SCONSTRUCT)
    project.write("models/SConscript", MODELS)
    project.write("models/add.mlir", ADD_MLIR)
    project.write("models/check_add.mlir", CHECK_ADD)
    np.save(project.path("models/a.npy"), np.arange(4, dtype=np.float32))
    project.write("models/mlp/SConscript", MLP)
    project.write("models/mlp/mm.mlir", MATMUL_MLIR)
    project.write("models/mlp/flags.txt", "# a flag file\n--iree-llvmcpu-debug-symbols=false\n")
    write_onnx_matmul(project.path("models/mlp/mm.onnx"))


def run(*cmd, cwd=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def scons_counts(output: str) -> tuple[int, int, int]:
    m = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", output, re.M)
    assert m, output
    return tuple(int(g) for g in m.groups())


def scons_outcomes(output: str) -> dict[str, str]:
    """Each test's (or check case's) outcome as `scons test` printed it, in CTest's words."""
    words = {"PASS": "Passed", "FAIL": "Failed", "SKIP": "Skipped"}
    return {m[1]: words[m[0]] for m in re.findall(r"^(PASS|FAIL|SKIP) (\S+)", output, re.M)}


def cmake_build(export_dir: Path, build_dir: Path) -> str:
    run(BIN / "cmake", "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={BIN / 'ninja'}", "-S", export_dir,
        "-B", build_dir)
    return run(BIN / "ninja", "-C", build_dir).stdout


def ctest(build_dir: Path, *args: str) -> tuple[tuple[int, int, int], dict[str, str]]:
    """(passed, failed, skipped) and each test's outcome, as CTest reports them."""
    proc = run(BIN / "ctest", "--test-dir", build_dir, "-j2", *args, check=False)
    outcomes = dict(re.findall(r"Test +#\d+: (\S+) \.+ *\**(Passed|Failed|Skipped)", proc.stdout))
    values = list(outcomes.values())
    counts = (values.count("Passed"), values.count("Failed"), values.count("Skipped"))
    assert proc.returncode == (8 if counts[1] else 0), proc.stdout + proc.stderr
    return counts, outcomes


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Project:
    """The hierarchy, built and tested by scons once for every test here."""
    project = Project(tmp_path_factory.mktemp("hierarchy"))
    write_hierarchy(project)
    result = project.scons(".", "test", "-k", "-j2")
    cuda = scons_outcomes(result.stdout)["models:files[cuda]"]  # skipped here, passes where a GPU is
    assert scons_counts(result.stdout) == ((5, 1, 1) if cuda == "Skipped" else (6, 1, 0)), result.output
    project.scons_test_output = result.stdout
    return project


def test_cmake_export_builds_the_same_bytes_and_test_outcomes(built: Project, tmp_path: Path) -> None:
    export = built.scons("--iree-export=cmake:export/cmake")
    assert export.returncode == 0, export.output
    assert "IREE export cmake: 6 command(s), 7 test(s) -> export/cmake" in export.stdout
    # What does not carry over as code is named, in one line: the data it produced.
    (note,) = [ln for ln in export.stdout.splitlines() if ln.startswith("IREE export note: ")
               and "carried as data" in ln]
    carried = sorted(p.relative_to(built.path("export/cmake/data")).as_posix()
                     for p in built.path("export/cmake/data").rglob("*.npy"))
    assert len(carried) == 13 and note.startswith("IREE export note: 13 file(s) ")
    assert ", ".join(carried[:4]) in note
    assert "flag files (@FILE) are expanded" in export.stdout
    for name in ("lit.expected0.npy", "lit.input0.npy", "a.npy"):  # reference fn, literal, shared copy
        assert (built.path("export/cmake/data/build/models") / name).is_file()
    assert not list(built.path("build/models").glob("*.result.json.cmake*"))

    mlp = built.path("export/cmake/build/models/mlp/CMakeLists.txt").read_text()
    assert re.search(r'DEPENDS\n +"models/mlp/mm.mlir"\n +"models/mlp/flags.txt"\n', mlp), mlp
    assert re.search(r'DEPENDS\n +"models/mlp/mm.onnx"\n +"models/mlp/mm.weights"\n', mlp), mlp
    assert re.search(r'OUTPUTS\n +"build/models/mlp/mm_static.vmfb"\n +"build/models/mlp/mm_static_dispatch.o"'
                     r'\n +"build/models/mlp/mm_static_dispatch.h"\n', mlp), mlp

    build = tmp_path / "cmake-build"
    first = cmake_build(built.path("export/cmake"), build)
    assert first.count(" IREE build/") == 6, first
    for rel in MODULES:
        assert (build / "root" / rel).read_bytes() == built.path(rel).read_bytes(), rel

    counts, outcomes = ctest(build)
    assert counts == scons_counts(built.scons_test_output)
    by_scons = scons_outcomes(built.scons_test_output)
    by_scons["models:checks/check_add.mlir[local-task]"] = by_scons.pop(
        "models:checks/check_add.mlir::check_add[local-task]")
    assert outcomes == by_scons and outcomes["models:wrong[local-task]"] == "Failed"
    _, picked = ctest(build, "-L", "cuda")
    assert picked == {"models:files[cuda]": by_scons["models:files[cuda]"]}
    in_mlp, picked = ctest(build / "folders/build/models/mlp")  # a folder's tests (and below)
    assert in_mlp == (2, 0, 0) and sorted(picked) == ["models/mlp:mm_test[local-task]", "models/mlp:onnx_test[local-task]"]
    in_models, _ = ctest(build / "folders/build/models")
    assert in_models == counts

    assert "no work to do" in run(BIN / "ninja", "-C", build).stdout
    mlir = built.path("models/add.mlir")
    mlir.write_text(mlir.read_text().replace("arith.addf", "arith.subf"))
    try:
        again = run(BIN / "ninja", "-C", build).stdout
    finally:
        mlir.write_text(ADD_MLIR)
    assert re.findall(r"IREE (\S+)", again) == ["build/models/add.vmfb"], again


def test_commands_reproduce_a_module_byte_for_byte(built: Project, tmp_path: Path) -> None:
    result = built.scons("--iree-commands")
    assert result.returncode == 0, result.output
    assert "IREE commands: build/iree_compile_commands.json (6 command(s)" in result.stdout  # beside the manifest
    commands = json.loads(built.path("build/iree_compile_commands.json").read_text())
    by_output = {c["output"]: c for c in commands}
    mm = by_output["build/models/mlp/mm.vmfb"]
    assert mm["directory"] == str(built.root) and mm["file"] == "models/mlp/mm.mlir"
    assert "--iree-llvmcpu-debug-symbols=false" in mm["arguments"]  # the flag file, expanded
    assert any(a.startswith("--iree-llvmcpu-target-cpu=") and "host" not in a for a in mm["arguments"])
    assert mm["depends"] == ["models/mlp/flags.txt"]
    assert by_output["build/models/mlp/onnx_mm.imported.mlir"]["arguments"][0] == "iree-import-onnx"
    for output in ("build/models/mlp/mm.vmfb", "build/models/mlp/onnx_mm.vmfb"):
        args = list(by_output[output]["arguments"])
        assert args[0] == "iree-compile" and args[-2:] == ["-o", output]
        out = tmp_path / Path(output).name
        run(BIN / "iree-compile", *args[1:-1], out, cwd=by_output[output]["directory"])
        assert out.read_bytes() == built.path(output).read_bytes(), output


def _calls(path: Path) -> list[tuple[str, dict]]:
    """The rule calls of a BUILD file (Starlark is Python syntax), arguments as values."""
    calls = []
    for stmt in ast.parse(path.read_text(), str(path)).body:
        assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call), ast.dump(stmt)
        call = stmt.value
        args = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        if call.args:
            args[""] = ast.literal_eval(call.args[0]) if len(call.args) == 1 else [
                ast.literal_eval(a) for a in call.args]
        calls.append((call.func.id, args))
    return calls


def check_bazel_workspace(root: Path) -> dict[str, dict]:
    """What `bazel query` needs: every BUILD file parses, every label names an existing
    file or another rule's output, every exported file exists. Returns the rules."""
    files: dict[str, set[str]] = {}
    rules: dict[str, dict] = {}
    for build in root.rglob("BUILD.bazel"):
        package = build.parent.relative_to(root).as_posix()
        if package.startswith("third_party/"):
            continue
        pkg = "" if package == "." else package
        files.setdefault(pkg, set())
        for kind, args in _calls(build):
            if kind == "exports_files":
                for name in args[""]:
                    assert (build.parent / name).exists(), f"{pkg}:{name}"
                    files[pkg].add(name)
            elif kind in ("genrule", "iree_runner_test"):
                rules[f"//{pkg}:{args['name']}"] = dict(args, kind=kind)
                files[pkg].update(args.get("outs", []))
    for label, rule in rules.items():
        for ref in [*rule.get("srcs", []), *rule.get("data", [])]:
            pkg, name = ref[2:].split(":")
            assert name in files.get(pkg, set()), f"{label} names {ref}, which nothing provides"
        for ref in re.findall(r"\$\(execpath ([^)]+)\)", rule.get("cmd", "")):
            pkg, name = ref[2:].split(":") if ref.startswith("//") else (label[2:].split(":")[0], ref)
            assert name in files.get(pkg, set()), f"{label} cmd names {ref}"
    return rules


def test_bazel_export_is_a_complete_workspace(built: Project, tmp_path: Path) -> None:
    export = built.scons("--iree-export=bazel:export/bazel")
    assert export.returncode == 0, export.output
    assert "IREE export bazel: 6 command(s), 7 test(s) -> export/bazel" in export.stdout
    root = built.path("export/bazel")
    assert os.readlink(root / "models/mlp/mm.mlir") == str(built.path("models/mlp/mm.mlir"))
    rules = check_bazel_workspace(root)
    assert rules["//build/models:files_cuda"]["tags"] == ["cuda", "exclusive"]
    assert rules["//build/models/mlp:mm_static_vmfb"]["outs"] == [
        "mm_static.vmfb", "mm_static_dispatch.o", "mm_static_dispatch.h"]
    static_cmd = rules["//build/models/mlp:mm_static_vmfb"]["cmd"]  # written where SCons writes it, then moved
    assert static_cmd.endswith("&& mv build/models/mlp/mm_static_dispatch.o $(execpath mm_static_dispatch.o) "
                               "&& mv build/models/mlp/mm_static_dispatch.h $(execpath mm_static_dispatch.h)")
    assert "//models/mlp:flags.txt" in rules["//build/models/mlp:mm_vmfb"]["srcs"]

    if shutil.which("bazel") is None:
        pytest.skip("bazel is not installed (apt-get install bazel-bootstrap); the workspace's "
                    "content was checked without it")
    bazel = ["nice", "bazel", "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    limits = ["--jobs=2", "--local_cpu_resources=2", "--test_output=errors"]
    tested = run(*bazel, "test", *limits, "--test_tag_filters=-cuda", "//...", cwd=root, check=False)
    out = tested.stdout + tested.stderr
    assert tested.returncode == 3, out  # 3: built, some tests failed
    assert re.search(r"Executed 6 out of 6 tests: 5 tests pass and 1 fails locally", out), out
    assert re.search(r"//build/models:wrong_local-task +FAILED", out), out
    bin_dir = root / "bazel-bin"
    for rel in MODULES:
        assert (bin_dir / rel).read_bytes() == built.path(rel).read_bytes(), rel


def test_quickstart_exports_to_cmake(tmp_path: Path) -> None:
    project = Project(tmp_path / "quickstart")
    # The example's sources only: the README's first command may have built it in place.
    shutil.copytree(REPO / "examples/quickstart", project.root,
                    ignore=shutil.ignore_patterns("build", ".sconsign*", ".iree_*"))
    exported = project.scons("--iree-export=cmake:../cmake")  # on a fresh tree: makes the data only
    assert exported.returncode == 0, exported.output
    assert sorted(p.name for p in project.path("build").iterdir() if p.suffix != ".npy") == [".iree_data.json"]
    cmake_build(tmp_path / "cmake", tmp_path / "cmake-build")
    counts, _ = ctest(tmp_path / "cmake-build")
    tested = project.scons("test", "-j2")
    assert tested.returncode == 0, tested.output
    assert counts == scons_counts(tested.stdout) == (4, 0, 0)
    for name in ("add", "matmul", "mlp"):
        assert (tmp_path / f"cmake-build/root/build/{name}.vmfb").read_bytes() == project.path(
            f"build/{name}.vmfb").read_bytes()


def test_bad_export_option_is_one_line(project: Project) -> None:
    project.write("SConstruct", "from iree_rules import *\niree_module(name='add', src='add.mlir')\n")
    project.write("add.mlir", ADD_MLIR)
    bad = project.scons("--iree-export=make:out")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("scons: *** command line: --iree-export=make:out: expected "
                                  "cmake:DIR or bazel:DIR")

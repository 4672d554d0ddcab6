"""Every declaration argument is checked: one clear line for a bad value, never a stack trace.

All scons runs are real ``scons -Q -n`` processes. For speed, one process reads many
declarations, each alone in its own SConscript, through a small SConstruct that lets a
failing declaration's SystemExit (where.fail) end only that SConscript and prints the
stack trace of any other exception (which the tests reject). Ten of the table's
declarations also run alone in an SConstruct, as a user would write them, to show that
scons prints exactly the same one line there. The property-based test generates
declarations of every rule from valid, invalid and arbitrary values and runs them the
same batched way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import ADD_MLIR
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

CHECK_MLIR = """\
func.func @test_add() {
  %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
  %r = arith.addf %a, %a : tensor<2xf32>
  check.expect_almost_eq_const(%r, dense<[2.0, 4.0]> : tensor<2xf32>) : tensor<2xf32>
  return
}
"""

PRELUDE = 'from iree_rules import *\niree_module(name="m", src="add.mlir")\n'
T = 'name="t", module="m", function="add", inputs=[[1.0, 2.0, 3.0, 4.0], "a.npy"]'
S = 'name="s", srcs=["check.mlir"]'

# (declaration, start of the message after "scons: *** SConstruct:LINE: "), None: accepted.
# {dir} is the declaring folder, as paths in messages are relative to the top folder.
CASES: list[tuple[str, str | None]] = [
    # The stack traces and leaked errors.
    ('iree_module(name=True, src="add.mlir")',
     "iree_module name: True is a bool, not a string; give a plain name like 'mlp'"),
    ('iree_test(name="t", module=True, function="add")',
     "iree_test module: True is a bool, not a string; give a module's name"),
    ('iree_check_test_suite(name="s", srcs="")',
     "iree_check_test_suite srcs: the path is empty; give the check file's path"),
    (f"iree_check_test_suite({S}, skip=True)",
     "iree_check_test_suite skip: True is a bool, not a list of entries; give entries 'file.mlir' or"),
    (f"iree_check_test_suite({S}, xfail=[1, 2])",
     "iree_check_test_suite xfail: 1 is an int, not 'file' or a tuple of 1 to 4 strings"),
    (f'iree_test({T}, rtol="")',
     "iree_test rtol: '' is a string, not a number; give a finite number >= 0 (e.g. 1e-5), a list of them "
     "(one per output), or None"),
    ('iree_module(name="m2", src="")', "iree_module src: the path is empty; give the source's path"),
    ('iree_module(name="m2", src=[])', "iree_module src: 0 items given; give one source"),
    ('iree_run(name="r", module="m", function="add", inputs=[1.0], outputs=[])',
     "iree_run outputs: the list is empty; give a count >= 1 or a list of .npy file names"),
    ('iree_import_onnx(name="x", src=3)', "iree_import_onnx src: 3 is an int, not a path or file node"),
    # The silently accepted ones.
    ('iree_module(name="m2", src="add.mlir", target_backends=[])',
     "iree_module target_backends: the list is empty; give a list of backends, e.g. ['llvm-cpu']"),
    ('iree_module(name="m2", src="add.mlir", cpu_features="add.mlir")',
     "iree_module cpu_features: 'add.mlir' is not a CPU feature switch; write +name or -name"),
    ('iree_module(name="m2", src="add.mlir", triple=float("nan"))',
     "iree_module triple: nan is a float, not a string; give an LLVM target triple"),
    ('iree_module(name="m2", src="add.mlir", onnx_opset="llvm-cpu")',
     "iree_module onnx_opset: 'llvm-cpu' is a string, not an integer; give an ONNX opset number"),
    ('iree_module(name="m2", src="add.mlir", target_backend=["cuda"])',
     "iree_module target_backend: unknown argument (did you mean 'target_backends'?); "
     "iree_module takes: name, src, target_backends,"),
    ('iree_test(name="t", module="m", function=3)',
     "iree_test function: 3 is an int, not a string; give the exported function's name"),
    ('iree_test(name=[1, 2], module="m", function="add")',
     "iree_test name: [1, 2] is a list, not a string; give a plain name like 'mlp'"),
    (f'iree_test({T}, expected="")', "iree_test expected: '' is an empty path; give a list of .npy/.pb"),
    (f'iree_test({T}, atol=float("nan"))', "iree_test atol: nan is not finite; give a finite number >= 0"),
    (f"iree_test({T}, devices=[])", "iree_test devices: the list is empty; give a list of HAL devices"),
    ('iree_run(name=True, module="m", function="add", inputs=[1.0])',
     "iree_run name: True is a bool, not a string"),
    ("iree_check_test_suite(name=object(), srcs=['check.mlir'])",
     "iree_check_test_suite name: <object> is a plain object, not a string"),
    # Unknown values, with a did-you-mean.
    ('iree_module(name="m2", src="add.mlir", cpu="skylak")',
     "iree_module cpu: unknown CPU 'skylak' for x86_64 (did you mean 'skylake'?); use 'host', 'generic'"),
    ('iree_module(name="m2", src="add.mlir", cpu_features="+avx3")',
     "iree_module cpu_features: 'avx3' is not a CPU feature of x86_64 (did you mean"),
    ('iree_module(name="m2", src="add.mlir", toolchain="cuda-sm08")',
     "iree_module toolchain: no toolchain 'cuda-sm08' (did you mean 'cuda-sm80'?); known toolchains:"),
    ('iree_module(name="m2", src="add.mlir", target_backends=["llvm-cpu", "vulkan"])',
     "iree_module target_backends: unknown target backend 'vulkan' (did you mean 'vulkan-spirv'?)"),
    ('iree_module(name="m2", src="add.mlir", triple="x86_65-linux-gnu")',
     "iree_module triple: LLVM has no target for triple 'x86_65-linux-gnu'"),
    (f'iree_test({T}, devices=["local-tsk"])',
     "iree_test devices: unknown HAL device 'local-tsk' (did you mean 'local-task'?); known HAL devices:"),
    ('iree_run(name="r", module="m", function="add", inputs=[1.0], device="cdua")',
     "iree_run device: unknown HAL device 'cdua' (did you mean 'cuda'?)"),
    (f'iree_check_test_suite({S}, xfail=[("check.mlir", "llvm-cpu", "local-tsk")])',
     "iree_check_test_suite xfail: entry ('check.mlir', 'llvm-cpu', 'local-tsk') names 'local-tsk', "
     "which is no HAL device (did you mean 'local-task'?)"),
    (f'iree_check_test_suite({S}, skip=["chek.mlir"])',
     "iree_check_test_suite skip: entry 'chek.mlir' names 'chek.mlir', which is no file in srcs "
     "(did you mean 'check.mlir'?); files in srcs: check.mlir"),
    (f'iree_test({T}, functon="add")',
     "iree_test functon: unknown argument (did you mean 'function'?); iree_test takes: name, module,"),
    ('iree_import_onnx(name="x", src="m.onnx", opset_version=17)',
     "iree_import_onnx opset_version: unknown argument (did you mean 'opset'?)"),
    # Ranges, emptiness, files.
    (f"iree_test({T}, rtol=-1.0)", "iree_test rtol: -1.0 is below 0; give a finite number >= 0"),
    ('iree_run(name="r", module="m", function="add", inputs=[1.0], outputs=0)',
     "iree_run outputs: 0 is below 1; give a count >= 1"),
    ('iree_run(name="r", module="m", function="add", inputs=[1.0], outputs=True)',
     "iree_run outputs: True is a bool, not a list of strings"),
    (f'iree_test({T}, parameter_scope="")', "iree_test parameter_scope: '' is empty; give a parameter scope"),
    ('iree_test(name="t", module="m", function="add", inputs=[{"x": 1}])',
     "iree_test inputs: {'x': 1} is a dict, not a data value; give a .npy/.pb path, a number"),
    ('iree_test(name="t", module="m", function="add", inputs=["missing.npy"])',
     "iree_test inputs: data file {dir}missing.npy not found; give a file that exists"),
    ('iree_module(name="m2", src=["../"])', "iree_module src: '../' is a folder; give the source's path"),
    ('iree_test(name="t", module="m", function="add", inputs=["a.txt"])',
     "iree_test inputs: data file 'a.txt' is not a .npy/.pb file"),
    ('iree_test(name="t[0]", module="m", function="add")',
     "iree_test name: 't[0]' has '['; give a plain name like 'mlp'"),
    ('iree_run(name="r", module="m", function="add", parameters=["w.bin"])',
     "iree_run parameters: parameter archive 'w.bin' is not a .irpa/.safetensors/.gguf file"),
    ('iree_import_onnx(name="x", src="add.mlir")', "iree_import_onnx src: ONNX model 'add.mlir' is not a .onnx file"),
    ('iree_import_onnx(name="x", src="m.onnx", opset=0)', "iree_import_onnx opset: 0 is below 1"),
    ('iree_check_test_suite(name="s", srcs="*.mlir")',
     "iree_check_test_suite srcs: check file {dir}*.mlir not found (use Glob() for patterns)"),
    ('iree_module(name="m2", src="add.mlir", flags="O3")',
     "iree_module flags: 'O3' does not start with '-' (or '@' for a flag file)"),
    ('iree_module(name="m2", src="add.mlir", externalize_params="yes")',
     "iree_module externalize_params: 'yes' is a string, not True or False"),
    # Arguments that contradict each other.
    ('iree_test(name="t", module="nope", function="add")',
     "iree_test module: module 'nope' is not declared here; declare it with iree_module(name='nope', ...)"),
    ('iree_test(name="t", module="mm", function="add")',
     "iree_test module: module 'mm' is not declared here (did you mean 'm'?); declare it with"),
    (f'iree_test({T}, devices=["local-task", "cuda"])',
     "iree_test devices: device 'cuda' cannot run a module built for llvm-cpu; its code runs on: local-sync,"),
    (f'iree_check_test_suite({S}, target_backends=["vmvx"], devices="vulkan")',
     "iree_check_test_suite devices: device 'vulkan' cannot run a module built for vmvx"),
    ('iree_module(name="m2", src="add.mlir", target_backends=["rocm"])',
     "iree_module target_backends: rocm has no default chip; use toolchain='rocm-gfx942'"),
    ('iree_module(name="m2", src="add.mlir", onnx_opset=17)',
     "iree_module onnx_opset: applies to .onnx sources only, and src is not one; drop onnx_opset"),
    ('iree_module(name="m2", src="add.mlir", target_backends=["vmvx"], cpu="znver4")',
     "iree_module cpu: applies to llvm-cpu only, and the module is built for vmvx"),
    # Calls as such: overrides, missing and extra arguments, the environment.
    ('iree_test(name="t", module="m", function="add", FOO=1)',
     "iree_test FOO: iree_test takes no construction-variable overrides; set FOO on an environment"),
    ('iree_test(name="t", function="add")', "iree_test module: missing; iree_test needs 'module'"),
    ('iree_module(name="m2", src="add.mlir", env=3)',
     "iree_module env: 3 is an int, not an SCons Environment"),
    ('env = IreeEnvironment()\nenv.IreeModule("m2", "add.mlir", cpu=3)',
     "IreeModule cpu: 3 is an int, not a string; give 'host', 'generic' or an LLVM CPU name"),
    ('env = IreeEnvironment()\nenv.iree_test("t", "m", "add", [], None, None, 1e-5, 1e-6, [], "model", 5, [], None, None, None, 7)',
     "iree_test: 16 positional arguments given, it takes at most 15"),
    # Hostile values: each was a hang, a stack trace, a megabyte-long line or a wrong hint.
    ('import os\nos.path.exists(Dir(".").abspath + "/p.npy") or os.mkfifo(Dir(".").abspath + "/p.npy")\n'
     'iree_test(name="t", module="m", function="add", inputs=["p.npy"])',
     "iree_test inputs: data file {dir}p.npy is a FIFO, not a regular file; give a file"),
    ('iree_test(name="t", module="m", function="add", inputs=["999999999999x999999999xf32"])',
     "iree_test inputs: '999999999999x999999999xf32': shape 999999999999x999999999 is "
     "999999998999000000001 f32 elements (3999999995996000000004 bytes), more than this machine's memory"),
    ('iree_test(name="t", module="m", function="add", inputs=["4xf32=" + " ".join(["1"] * 100000)])',
     f"iree_test inputs: {'4xf32=' + '1 ' * 27!r}...{' 1' * 10!r} (200005 characters) gives 100000 values"),
    ('iree_test(name="t", module="m", function="add", inputs=["-1xf32"])',
     "iree_test inputs: '-1xf32' is not in IREE's value syntax (e.g. '2x3xf32=1 2 3 4 5 6'"),
    ('iree_test(name="t", module="m", function="add", inputs=["4xF32=1"])',
     "iree_test inputs: unknown element type 'F32' (did you mean 'f32'?)"),
    ('iree_test(name="x" * 300, module="m", function="add")',
     f"iree_test name: {'x' * 40!r}... is 300 bytes long; file names are made of it"),
    (f'iree_test({T}, expected=lambda a, b: "y.npy")',
     "the reference function for t returned 'y.npy' as output 0; return numpy arrays or numbers"),
    # What SCons users expect to be lenient stays lenient.
    ('iree_module(name="m2", src=File("add.mlir"), target_backends="llvm-cpu", flags="--iree-opt-level=O2")',
     None),
    ('iree_module(name="m3", src=Glob("add.mlir"), cpu_features=["+avx2", "+fma"], CPPPATH=["x"])', None),
    (f'iree_test({T}, expected="a.npy", devices="local-task", rtol=0, atol=np.float32(1e-3))', None),
    ('lib = iree_module(name="lib", src="add.mlir", toolchain="llvm-cpu-static-library")\n'
     'iree_test(name="t", module=lib, function="add", devices=("local-sync",), rtol=1)', None),
    ('iree_check_test_suite(name="s", srcs=Glob("*.mlir", exclude=["add.mlir"]), xfail="check.mlir",'
     ' skip=[("check*", "*", "local-sync")])', None),
]


# Each of these (one per kind of mistake) also runs alone, as the issue ran them:
# `scons -Q -n` with only it in the SConstruct prints exactly the same line.
ALONE = [i for i, (declaration, _) in enumerate(CASES) if any(declaration.startswith(start) for start in (
    'iree_module(name=True', 'iree_module(name="m2", src="")', 'iree_module(name="m2", src="add.mlir", target_backends=[])',
    'iree_module(name="m2", src="add.mlir", target_backend=', 'iree_test(name="t", module="m", function=3)',
    'iree_module(name="m2", src="add.mlir", cpu="skylak")', 'iree_test(name="t", module="m", function="add", FOO=1)',
    'iree_test(name="t", module="nope"', "env = IreeEnvironment()\nenv.iree_test(",
    'iree_check_test_suite(name="s", srcs=Glob('))]

# Reads each case's SConscript in turn; a failing declaration's SystemExit (where.fail)
# ends only its case. Any other exception prints its stack trace, which the tests reject.
BATCH_SCONSTRUCT = """\
import sys, traceback
for case in CASES:
    sys.stderr.write("@@case " + case + "\\n"); sys.stderr.flush()
    try:
        SConscript(case + "/SConscript")
    except SystemExit as e:
        sys.stderr.write("@@exit %s\\n" % (e.code,))
    except BaseException:
        traceback.print_exc()
    sys.stderr.flush()
"""


def write_case(folder: Path, declaration: str, name: str = "SConscript") -> int:
    """A case folder with the data the declarations use; returns the declaration's last line."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add.mlir").write_text(ADD_MLIR)
    (folder / "check.mlir").write_text(CHECK_MLIR)
    (folder / "m.onnx").write_bytes(b"")  # exists; under -n nothing reads it
    np.save(folder / "a.npy", np.arange(4, dtype=np.float32))
    text = PRELUDE + "import numpy as np\n" + declaration + "\n"
    (folder / name).write_text(text)
    return len(text.splitlines())


def scons_n(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "SCons", "-Q", "-n", "-C", str(root), *args],
                          capture_output=True, text=True, timeout=timeout)


def in_parallel(fn, items) -> list:
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(fn, items))


@dataclass
class Outcome:
    """What one declaration did: its stderr lines and exit code (None: it was accepted)."""

    lines: list[str]
    exit: int | None


def run_batches(root: Path, declarations: list[str], processes: int = 2) -> list[tuple[int, Outcome]]:
    """Every declaration in its own SConscript; ``processes`` real scons runs read them all.

    Returns (line of the declaration, outcome) per declaration, in order.
    """
    lines = [write_case(root / f"c{i}", d) for i, d in enumerate(declarations)]
    for b in range(processes):
        cases = [f"c{i}" for i in range(b, len(declarations), processes)]
        (root / f"batch{b}.py").write_text(f"CASES = {cases!r}\n" + BATCH_SCONSTRUCT)
    runs = in_parallel(lambda b: scons_n(root, "-f", f"batch{b}.py"), range(processes))
    outcomes: dict[str, Outcome] = {}
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
        current = None
        for line in run.stderr.splitlines():
            if line.startswith("@@case "):
                current = outcomes.setdefault(line.split()[1], Outcome([], None))
            elif line.startswith("@@exit "):
                current.exit = int(line.split()[1])
            else:
                assert current is not None, run.stderr
                current.lines.append(line)
    return [(lines[i], outcomes[f"c{i}"]) for i in range(len(declarations))]


def judge(declaration: str, line: int, outcome: Outcome, where: str, message: str | None) -> str:
    """'' when the outcome is what it must be, else what went wrong."""
    text = "\n".join(outcome.lines)
    folder = where.rsplit("/", 1)[0] + "/" if "/" in where else ""
    message = message.replace("{dir}", folder) if message else message
    if message is None:
        if outcome.exit is not None or outcome.lines:
            return f"{declaration}\n  should be accepted, got exit {outcome.exit}: {text}"
        return ""
    expected = f"scons: *** {where}:{line}: {message}"
    if outcome.exit != 2 or len(outcome.lines) != 1 or not outcome.lines[0].startswith(expected):
        return f"{declaration}\n  expected: {expected}\n  got exit {outcome.exit}: {text}"
    return ""


def test_every_bad_declaration_is_one_line_naming_the_line(tmp_path: Path) -> None:
    assert len([c for c in CASES if c[1] is not None]) >= 41
    results = run_batches(tmp_path / "batched", [d for d, _ in CASES])
    problems = [judge(d, line, outcome, f"c{i}/SConscript", message)
                for i, ((d, message), (line, outcome)) in enumerate(zip(CASES, results, strict=True))]
    assert not any(problems), "\n".join(p for p in problems if p)


def test_alone_in_an_sconstruct_real_scons_prints_the_same_one_line(tmp_path: Path) -> None:
    assert len(ALONE) == 10
    roots = [tmp_path / f"alone{i}" for i in ALONE]
    lines = [write_case(root, CASES[i][0], "SConstruct") for root, i in zip(roots, ALONE, strict=True)]
    runs = in_parallel(scons_n, roots)
    problems = []
    for i, line, run in zip(ALONE, lines, runs, strict=True):
        errors = run.stderr.strip().splitlines()
        outcome = Outcome(errors, None if run.returncode == 0 and not errors else run.returncode)
        problems.append(judge(CASES[i][0], line, outcome, "SConstruct", CASES[i][1]))
        assert "Traceback" not in run.stdout + run.stderr
    assert not any(problems), "\n".join(p for p in problems if p)


# --- property: random declarations of every rule ---------------------------------------


class Raw(str):
    """Python source written as is into the SConscript (File(...), lambdas, numpy values)."""


def source(value) -> str:
    """``value`` as Python source (repr, except for floats that have none and Raw)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f'float("{value}")'
    if isinstance(value, list):
        return "[" + ", ".join(source(x) for x in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(source(x) + ", " for x in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{source(k)}: {source(x)}" for k, x in value.items()) + "}"
    return repr(value)


HOST_TRIPLE = "x86_64-unknown-linux-gnu"

# Values of any type: a value drawn from here may be right or wrong for an argument.
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.binary(max_size=3), st.lists(st.integers(-3, 3), max_size=3),
    st.lists(st.text(max_size=4), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.tuples(st.text(max_size=3)), st.sampled_from([Raw("object()"), Raw("print"), Raw("np.int8(3)"),
                                                      Raw("np.array(['a'])"), Raw("File('add.mlir')")]),
)
NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_+.-]{0,8}", fullmatch=True).map(lambda s: "x" + s)
BAD_NAMES = st.sampled_from(["", "a/b", "a b", "t[0]", ".hidden", "-x", 3, True, None, ["x"]])
TOLERANCES = st.one_of(st.floats(0, 1e3), st.integers(0, 10), st.just(Raw("np.float32(1e-3)")))
BAD_TOLERANCES = st.sampled_from([-1, -1e-9, float("nan"), float("inf"), "", "1e-5", None, True, [1e-5]])
SCOPES = st.sampled_from(["model", "weights"])
BAD_SCOPES = st.sampled_from(["", "a b", 3, None, ["model"]])
FLAGS = st.sampled_from([None, [], "--iree-opt-level=O2", ["--iree-opt-level=O2"]])
BAD_FLAGS = st.sampled_from(["O3", [3], 3, [""], ["-x", None]])
DATA = st.sampled_from([[], [[1.0, 2.0, 3.0, 4.0]], ["a.npy"], "a.npy", [Raw("np.ones(4, np.float32)")],
                        [1, 2.5], [Raw("File('a.npy')"), True]])
BAD_DATA = st.sampled_from(["", ["missing.npy"], ["a.txt"], [{"x": 1}], 3, [[1, [2]]], [None],
                            [Raw("object()")], Raw("np.ones(4)"), [Raw("np.array(['a'])")]])
DEVICES = st.sampled_from([None, "local-task", ["local-task"], ["local-sync", "local-task"]])
BAD_DEVICES = st.sampled_from([[], ["cuda"], ["tpu"], "local-tsk", 3, [3], ["local-task", ""]])
ENTRIES = st.sampled_from([[], None, "check.mlir", [("check.mlir", "*", "local-task")],
                           [("*", "llvm-cpu", "*", "why")], ["check*"]])
BAD_ENTRIES = st.sampled_from([True, [1], [("check.mlir", "llvm-cpu", "local-tsk")], ["chek.mlir"],
                               [("a", "b", "c", "d", "e")], [("check.mlir", "llvm-cup")], 3])
LOCAL_BACKENDS = st.sampled_from([None, ["llvm-cpu"], ["vmvx"], ["llvm-cpu", "vmvx"], "llvm-cpu"])
BAD_BACKENDS = st.sampled_from([[], ["vulkan"], "llvm-gpu", [3], 3, "", ["webgpu-wgsl"], ["rocm"]])

# rule -> argument -> (valid values, invalid values); required arguments are always given.
SPACE = {
    "iree_module": {
        "name": (NAMES, BAD_NAMES),
        "src": (st.sampled_from(["add.mlir", Raw('File("add.mlir")'), Raw('Glob("add.mlir")'), ["add.mlir"]]),
                st.sampled_from(["", "nope.mlir", 3, [], ["add.mlir", "check.mlir"], None])),
        "target_backends": (st.sampled_from([None, ["llvm-cpu"], ["llvm-cpu", "vmvx"], "llvm-cpu"]), BAD_BACKENDS),
        "triple": (st.sampled_from([None, HOST_TRIPLE]), st.sampled_from(["", "foo-bar-baz", 3])),
        "cpu": (st.sampled_from([None, "generic", "host", "skylake", "znver4"]),
                st.sampled_from(["", "pentium9", 3, ["host"], "skylak"])),
        "cpu_features": (st.sampled_from([None, "", "+avx2", "+avx2,-fma", ["+avx2", "+fma"]]),
                         st.sampled_from(["avx2", "+avx3", 3, "add.mlir", ["avx2"], "+"])),
        "flags": (FLAGS, BAD_FLAGS),
        "onnx_opset": (st.none(), st.sampled_from([17, "17", 0, True])),
        "externalize_params": (st.just(False), st.sampled_from([True, "yes", None, 1])),
        "params_scope": (SCOPES, BAD_SCOPES),
        "toolchain": (st.none(), st.sampled_from(["nope", 3, "", "cuda-sm08"])),
    },
    "iree_test": {
        "name": (NAMES, BAD_NAMES),
        "module": (st.sampled_from(["m", Raw('File("m.vmfb")'), ["m"]]), st.sampled_from(["", 3, None, "nope"])),
        "function": (st.sampled_from([None, "add"]), st.sampled_from(["", 3, "a b"])),
        "inputs": (DATA, BAD_DATA),
        "expected": (st.one_of(st.none(), DATA, st.just(Raw("lambda *xs: [1.0]"))), BAD_DATA),
        "devices": (DEVICES, BAD_DEVICES),
        "rtol": (TOLERANCES, BAD_TOLERANCES),
        "atol": (TOLERANCES, BAD_TOLERANCES),
        "parameters": (st.sampled_from([None, []]), st.sampled_from([["w.bin"], ["nope.irpa"], 3, ""])),
        "parameter_scope": (SCOPES, BAD_SCOPES),
    },
    "iree_run": {
        "name": (NAMES, BAD_NAMES),
        "module": (st.sampled_from(["m", ["m"]]), st.sampled_from(["", 3, None, "nope"])),
        "function": (st.sampled_from([None, "add"]), st.sampled_from(["", 3, "a b"])),
        "inputs": (DATA, BAD_DATA),
        "device": (st.sampled_from(["local-task", "local-sync"]), st.sampled_from(["cuda", "gpu", "", None, 3])),
        "outputs": (st.sampled_from([1, 2, ["o.npy"], "o.npy"]),
                    st.sampled_from([0, -1, True, [], ["o.txt"], 1.5, None])),
        "parameters": (st.sampled_from([None, []]), st.sampled_from([["w.bin"], 3])),
        "parameter_scope": (SCOPES, BAD_SCOPES),
    },
    "iree_import_onnx": {
        "name": (NAMES, BAD_NAMES),
        "src": (st.just("m.onnx"), st.sampled_from(["add.mlir", "", "nope.onnx", 3])),
        "opset": (st.sampled_from([None, 13, 17]), st.sampled_from([0, "17", True, 1.5, 1000])),
        "externalize_params": (st.booleans(), st.sampled_from(["yes", None, 1])),
        "params_scope": (SCOPES, BAD_SCOPES),
    },
    "iree_check_test_suite": {
        "name": (NAMES, BAD_NAMES),
        "srcs": (st.sampled_from(["check.mlir", ["check.mlir"], Raw('Glob("check.mlir")')]),
                 st.sampled_from(["", [], "nope.mlir", 3, None])),
        "target_backends": (LOCAL_BACKENDS, BAD_BACKENDS),
        "devices": (DEVICES, BAD_DEVICES),
        "flags": (FLAGS, BAD_FLAGS),
        "xfail": (ENTRIES, BAD_ENTRIES),
        "skip": (ENTRIES, BAD_ENTRIES),
    },
}
REQUIRED = {"iree_module": ("name", "src"), "iree_test": ("name", "module"), "iree_run": ("name", "module"),
            "iree_import_onnx": ("name", "src"), "iree_check_test_suite": ("name", "srcs")}
CPU_ARGS = ("triple", "cpu", "cpu_features")


@dataclass
class Declaration:
    rule: str
    args: dict  # argument -> value
    kinds: dict  # argument -> "valid", "invalid" or "any"

    def text(self) -> str:
        return f"{self.rule}(" + ", ".join(f"{k}={source(x)}" for k, x in self.args.items()) + ")"


@st.composite
def declarations(draw) -> Declaration:
    rule = draw(st.sampled_from(sorted(SPACE)))
    space = SPACE[rule]
    chosen = [a for a in space if a in REQUIRED[rule] or draw(st.integers(0, 3)) == 0]
    args, kinds = {}, {}
    for arg in chosen:
        kind = draw(st.sampled_from(["valid", "valid", "invalid", "any"]))
        good, bad = space[arg]
        args[arg] = draw({"valid": good, "invalid": bad, "any": ANY}[kind])
        kinds[arg] = kind
    if rule == "iree_module":  # target arguments that only fit together stay apart
        if "toolchain" in args and kinds["toolchain"] == "valid" and draw(st.booleans()):
            args["toolchain"] = draw(st.sampled_from(["vmvx", "x86_64-generic", "cuda-sm80"]))
            for arg in ("target_backends", *CPU_ARGS):
                args.pop(arg, None), kinds.pop(arg, None)
        elif args.get("cpu") == "host" and kinds.get("triple") != "valid":
            args.pop("triple", None), kinds.pop("triple", None)
    extra = draw(st.sampled_from([None, None, None, "typo", "upper"]))
    if extra == "typo":  # a misspelt lower-case keyword
        real = draw(st.sampled_from(sorted(space)))
        cut = draw(st.integers(0, len(real) - 1))
        typo = real[:cut] + real[cut + 1:] if draw(st.booleans()) else real + "s"
        if typo not in space and typo.isidentifier():
            args[typo], kinds[typo] = 1, "invalid"
    elif extra == "upper":  # a construction variable: an override where the rule takes them
        args["CPPDEFINES"], kinds["CPPDEFINES"] = ["X"], "valid" if rule == "iree_module" else "invalid"
    return Declaration(rule, args, kinds)


def check_outcome(declaration: Declaration, case: str, line: int, outcome: Outcome) -> str:
    """'' if the outcome is allowed for this declaration, else what is wrong."""
    text = "\n".join(outcome.lines)
    head = f"{declaration.text()}\n  got exit {outcome.exit}: {text}"
    if "Traceback" in text:
        return "stack trace: " + head
    if outcome.exit is None:
        if outcome.lines:
            return "accepted but printed: " + head
        bad = [a for a, k in declaration.kinds.items() if k == "invalid"]
        return f"accepted with invalid {bad}: " + head if bad else ""
    if all(k == "valid" for k in declaration.kinds.values()):
        return "rejected although every argument is valid: " + head
    match = re.fullmatch(rf"scons: \*\*\* {case}/SConscript:{line}: (\S+) (\S+?):? .*", text)
    if outcome.exit != 2 or match is None:
        return "not one line naming the declaration's line: " + head
    if match.group(1) != declaration.rule:
        return f"names rule {match.group(1)}: " + head
    if declaration.kinds.get(match.group(2)) not in ("invalid", "any"):
        return f"blames argument {match.group(2)}, which is not wrong: " + head
    return ""


@settings(max_examples=6, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.lists(declarations(), min_size=60, max_size=60))
def test_random_declarations_are_accepted_or_one_line(tmp_path_factory, batch: list[Declaration]) -> None:
    root = tmp_path_factory.mktemp("random")
    results = run_batches(root, [d.text() for d in batch])
    problems = [check_outcome(d, f"c{i}", line, outcome)
                for i, (d, (line, outcome)) in enumerate(zip(batch, results, strict=True))]
    assert not any(problems), "\n".join(p for p in problems if p)


# --- the same checks guard the standalone runner's manifest and toolchain presets ----------

MANIFEST_CASES = [
    ({"rtol": float("nan")}, "test 't[local-task]' rtol: nan is not finite; give a finite number >= 0"),
    ({"atol": "1e-6"}, "test 't[local-task]' atol: '1e-6' is a string, not a number"),
    ({"kind": "chek"}, "test 't[local-task]' kind: unknown test kind 'chek' (did you mean 'check'?)"),
    ({"xfail": 3}, "test 't[local-task]' xfail: 3 is an int, not a string"),
    ({"rtoll": 1e-5}, "test 't[local-task]' rtoll: unknown key (did you mean 'rtol'?); known keys: name,"),
]


def test_a_bad_manifest_field_is_one_line_naming_the_file_and_test(tmp_path: Path) -> None:
    from iree_build.testing import manifest

    runs = []
    for i, (change, _) in enumerate(MANIFEST_CASES):
        entry = {"name": "t[local-task]", "base": "t", "device": "local-task", "module": "m.vmfb",
                 "function": "f", "inputs": [], "expected": [], "rtol": 1e-5, "atol": 1e-6,
                 "declared_at": "SConscript:1", "result": "t.result.json", **change}
        folder = tmp_path / f"b{i}"
        folder.mkdir()
        (folder / "iree_tests.json").write_text(json.dumps({"format": manifest.FORMAT, "tests": [entry]}))
        runs.append(folder)
    results = in_parallel(lambda folder: subprocess.run(
        [sys.executable, "-m", "iree_build", "test", str(folder)], capture_output=True, text=True,
        timeout=120), runs)
    for folder, (_, message), run in zip(runs, MANIFEST_CASES, results, strict=True):
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stderr.splitlines() == [run.stderr.strip()], run.stderr
        assert run.stderr.startswith(
            f"python -m iree_build: error: {folder / 'iree_tests.json'}: {message}"), run.stderr


def test_a_wrong_type_in_a_preset_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "toolchains").mkdir()
    (tmp_path / "toolchains" / "mine.toml").write_text(
        'target_backends = ["llvm-cpu"]\nflags = "--iree-opt-level=O2"\n')
    (tmp_path / "add.mlir").write_text(ADD_MLIR)
    (tmp_path / "SConstruct").write_text('from iree_rules import *\niree_module(name="m", src="add.mlir", '
                                         'toolchain="mine")\n')
    run = scons_n(tmp_path)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "scons: *** SConstruct:2: iree_module toolchain: toolchains/mine.toml: flags: '--iree-opt-level=O2' "
        "is a string, not a list of strings; write flags = [\"a\", \"b\"]"], run.stderr

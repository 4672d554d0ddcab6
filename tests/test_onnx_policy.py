"""The automatic ONNX opset policy, the suite rule's folders, and import errors.

Engine tests read real models (the onnx package's own and small ones made with
``onnx.helper``); the rule tests run real SCons builds of small models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import Project

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from iree_build.errors import IreeBuildError  # noqa: E402
from iree_build.onnx.cases import find_case  # noqa: E402
from iree_build.onnx.policy import KEEP_F64_FLAG, decide  # noqa: E402

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
ZERO_PAD = DATA / "pytorch-converted" / "test_ZeroPad2d" / "model.onnx"  # opset 6, IR 3, Pad
ADD_F64 = DATA / "pytorch-operator" / "test_operator_add_broadcast" / "model.onnx"  # opset 6, f64
MAX_POOL = DATA / "pytorch-converted" / "test_MaxPool2d" / "model.onnx"


def _model(path: Path, op: str = "Add", opset: int = 17, domain: str = "",
           elem=TensorProto.FLOAT, ir_version: int = 8, **attrs) -> Path:
    """y = op(a, b) on [4] tensors, saved at ``path``."""
    a, b = (helper.make_tensor_value_info(n, elem, [4]) for n in "ab")
    y = helper.make_tensor_value_info("y", elem, [4])
    node = helper.make_node(op, ["a", "b"] if op != "ImageScaler" else ["a"], ["y"],
                            name=f"{op.lower()}_0", domain=domain, **attrs)
    inputs = [a, b] if op != "ImageScaler" else [a]
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "g", inputs, [y]), opset_imports=opsets)
    model.ir_version = ir_version
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _tensor(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(numpy_helper.from_array(array).SerializeToString())


# --- the policy, from the model ------------------------------------------------------

def test_old_models_are_upgraded_and_pad_models_get_ir_4_first() -> None:
    pool = decide(str(MAX_POOL))
    assert (pool.own_opset, pool.opset, pool.ir_version, pool.keep_f64) == (6, 17, None, False)
    assert pool.describe() == "17 (upgraded from 6): automatic (older than 17)"
    pad = decide(str(ZERO_PAD))
    assert (pad.opset, pad.ir_version, pad.own_ir_version) == (17, 4, 3)
    assert "ir_version raised 3 -> 4 first" in pad.describe()
    assert "in initializer but not in graph input" in pad.describe()  # the reason, in ONNX's words
    assert pad.summary() == "opset 17 from 6, ir_version 4"


def test_f64_models_keep_f64_unless_the_flags_say_otherwise() -> None:
    policy = decide(str(ADD_F64))
    assert policy.keep_f64 and "f64 inputs/outputs kept f64" in policy.describe()
    assert policy.compile_flags([]) == [KEEP_F64_FLAG] == ["--iree-input-demote-f64-to-f32=false"]
    assert policy.compile_flags(["--iree-input-demote-f64-to-f32=true"]) == []
    assert decide(str(MAX_POOL)).compile_flags([]) == []


def test_new_models_keep_their_opset_and_unconvertible_ones_too(tmp_path: Path) -> None:
    new = decide(str(_model(tmp_path / "new.onnx", opset=18)))
    assert (new.opset, new.own_opset) == (None, 18)
    assert new.describe() == "its own (18): automatic (not older than 17)"
    # ImageScaler (opset 6, experimental) has no schema the converter knows.
    old = decide(str(_model(tmp_path / "scaler.onnx", "ImageScaler", opset=6, scale=2.0)))
    assert old.opset is None and old.own_opset == 6
    assert old.describe().startswith("its own (6): kept: ONNX's upgrade to 17 fails (RuntimeError: ")


def test_onnx_opset_overrides(tmp_path: Path) -> None:
    assert decide(str(MAX_POOL), "own").opset is None
    assert decide(str(MAX_POOL), 13).describe() == "13 (upgraded from 6): onnx_opset=13 declared"
    assert decide(str(ZERO_PAD), 13).ir_version == 4  # the IR fix applies to a declared opset too
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(IreeBuildError, match=r"cannot read .*junk.onnx as an ONNX model"):
        decide(str(tmp_path / "junk.onnx"))


# --- folders in the ONNX layout -------------------------------------------------------

def test_case_folders(tmp_path: Path) -> None:
    folder = tmp_path / "test_add"
    _model(folder / "model.onnx")
    for n in (1, 0, 10):
        _tensor(folder / f"test_data_set_{n}" / "input_0.pb", np.ones(4, np.float32))
    (folder / "data.json").write_text('{"rtol": 0.5}')
    case = find_case(folder)
    assert [d.name for d in case.data_sets] == ["test_data_set_0", "test_data_set_1", "test_data_set_10"]
    assert (case.label, case.rtol, case.atol) == ("test_add", 0.5, None)
    assert find_case(folder / "model.onnx").label == "test_add"
    _tensor(folder / "test_data_set_0" / "input_2.pb", np.ones(4, np.float32))
    with pytest.raises(IreeBuildError, match="has inputs up to input_2.pb but no input_1.pb"):
        find_case(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IreeBuildError, match="holds no .onnx model"):
        find_case(tmp_path / "empty")


# --- through SCons ----------------------------------------------------------------------

def _zoo(project: Project) -> None:
    """zoo/good: a + b with two data sets; zoo/wrong: expected output off by one."""
    for name, offset in (("good", 0.0), ("wrong", 1.0)):
        folder = project.path(f"zoo/{name}")
        _model(folder / "model.onnx")
        for n in range(2 if name == "good" else 1):
            a, b = np.arange(4, dtype=np.float32) + n, np.full(4, 2.0, np.float32)
            _tensor(folder / f"test_data_set_{n}" / "input_0.pb", a)
            _tensor(folder / f"test_data_set_{n}" / "input_1.pb", b)
            _tensor(folder / f"test_data_set_{n}" / "output_0.pb", a + b + offset)


def test_suite_declares_a_test_per_data_set_with_strict_xfail(project: Project) -> None:
    _zoo(project)
    project.write("zoo/README.md", "not a model: the Glob passes over it")
    project.write("SConstruct", """\
        from iree_rules import *
        iree_onnx_test_suite(name="zoo", srcs=Glob("zoo/*"),
                             xfail=[("wrong", "*", "*", "off by one")])
        """)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    lines = sorted(line.split(" (")[0] for line in run.stdout.splitlines()
                   if line.startswith(("PASS", "XFAIL", "FAIL")))
    assert lines == ["PASS zoo/good/test_data_set_0[local-task]",
                     "PASS zoo/good/test_data_set_1[local-task]",
                     "XFAIL zoo/wrong[local-task]"], run.stdout
    assert "expected failure (off by one): " in run.stdout
    assert "3 passed, 0 failed, 0 skipped" in run.stdout
    manifest = json.loads(project.path("iree_tests.json").read_text())
    assert {t["rtol"] for t in manifest["tests"]} == {1e-3}  # ONNX's own defaults
    assert {t["atol"] for t in manifest["tests"]} == {1e-7}

    # An expected failure that passes fails the run (strict), and so does a failing test
    # that is not listed.
    project.write("SConstruct", """\
        from iree_rules import *
        iree_onnx_test_suite(name="zoo", srcs=Glob("zoo/*"), xfail=["good/test_data_set_1"])
        """)
    run = project.scons("test", "-k")
    assert run.returncode != 0
    assert ("FAIL zoo/good/test_data_set_1[local-task] (passed, but is declared as an expected "
            "failure (declared in xfail); remove it from the xfail list)") in run.stdout
    assert "FAIL zoo/wrong[local-task] (output 0 mismatch" in run.stdout
    assert "1 passed, 2 failed, 0 skipped" in run.stdout


def test_expected_import_failure_names_node_and_op(project: Project) -> None:
    """A model the importer cannot take: one line naming the node and its op; as an
    expected failure, the build goes on, the test reports it, and an unchanged
    failing import is not retried."""
    folder = project.path("zoo/custom")
    _model(folder / "model.onnx", "Frobnicate", domain="com.example",
           weird=helper.make_tensor_type_proto(TensorProto.FLOAT, [4]))  # a TYPE_PROTO attribute
    _tensor(folder / "test_data_set_0" / "input_0.pb", np.ones(4, np.float32))
    _tensor(folder / "test_data_set_0" / "input_1.pb", np.ones(4, np.float32))
    project.write("SConstruct", """\
        from iree_rules import *
        iree_onnx_test_suite(name="zoo", srcs=["zoo/custom"], xfail=["custom"])
        iree_import_onnx(name="plain", src="zoo/custom/model.onnx")
        """)
    run = project.scons("plain.mlir")
    error = [line for line in run.stderr.splitlines() if line.startswith("scons: ***")]
    assert error == ["scons: *** [plain.mlir] IREE import failed: node 'frobnicate_0' "
                     "(com.example.Frobnicate): OnnxImportError: ONNX importer does not support "
                     "generic node attribute type TYPE_PROTO with ID 13. This likely means that "
                     "this is a special node which requires specific handling in the importer: "
                     "name: \"weird\""], run.stderr
    assert not project.path("plain.mlir").exists()

    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert ("XFAIL zoo/custom[local-task] (expected failure (declared in xfail): "
            "zoo/custom[local-task]: the module did not build: IREE import failed: node "
            "'frobnicate_0' (com.example.Frobnicate): OnnxImportError: ") in run.stdout
    again = project.scons("test")
    assert "(expected to fail; unchanged since it failed: not retried)" in again.stdout
    assert "0 tests run, 1 up to date" in again.stdout


def test_policy_is_explained_and_overridable(project: Project) -> None:
    project.write("SConstruct", f"""\
        from iree_rules import *
        iree_module(name="pad", src={str(ZERO_PAD)!r})
        """)
    run = project.scons("--iree-verbose")
    assert run.returncode == 0, run.output
    assert ("python -m iree_build.onnx.prepare --ir-version 4 " + str(ZERO_PAD) +
            " -o pad.imported.mlir.ir4.model && iree-import-onnx pad.imported.mlir.ir4.model "
            "-o pad.imported.mlir --opset-version 17") in run.stdout
    assert not project.path("pad.imported.mlir.ir4.model").exists()
    project.write("SConstruct", f"""\
        from iree_rules import *
        iree_module(name="pad", src={str(ZERO_PAD)!r}, onnx_opset="own")
        """)
    run = project.scons("--debug=explain")
    assert run.returncode == 0, run.output
    assert "old: importer: iree-import-onnx of" in run.stdout
    assert ("opset: 17 (upgraded from 6), ir_version raised 3 -> 4 first: automatic (older than 17); "
            "ONNX's upgrade fails at IR 3 (ValidationError: _v_4 in initializer but not in graph input)"
            ) in run.stdout
    assert "opset: its own (6): onnx_opset='own' declared" in run.stdout
    assert f"IREE import {ZERO_PAD} -> pad.imported.mlir [opset 6]" in run.stdout


def test_suite_declaration_errors(project: Project) -> None:
    project.path("zoo/empty").mkdir(parents=True)
    project.write("SConstruct", """\
        from iree_rules import *
        iree_onnx_test_suite(name="zoo", srcs=Glob("zoo/*"))
        """)
    run = project.scons("test")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"scons: *** SConstruct:2: {project.path('zoo/empty')} holds no .onnx model "
        "(expected model.onnx beside test_data_set_0/)")


def test_policy_cache_reads_an_unchanged_model_once(tmp_path: Path) -> None:
    from iree_build.onnx.policy_cache import PolicyCache

    model = tmp_path / "pad.onnx"
    model.write_bytes(ZERO_PAD.read_bytes())
    cache = PolicyCache(tmp_path / "cache.json")
    first = cache.decide(str(model))
    cache.save()
    # Same size and time, other bytes: a later build trusts the cache and does not read it.
    stat = model.stat()
    model.write_bytes(b"\0" * stat.st_size)
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert PolicyCache(tmp_path / "cache.json").decide(str(model)) == first
    # Another option, or a changed file, decides afresh.
    with pytest.raises(IreeBuildError, match="cannot read .* as an ONNX model"):
        PolicyCache(tmp_path / "cache.json").decide(str(model), 13)
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    with pytest.raises(IreeBuildError, match="cannot read .* as an ONNX model"):
        PolicyCache(tmp_path / "cache.json").decide(str(model))
    (tmp_path / "cache.json").write_text("{not json")  # a broken cache is ignored
    model.write_bytes(ZERO_PAD.read_bytes())
    assert PolicyCache(tmp_path / "cache.json").decide(str(model)) == first


@pytest.mark.parametrize("arguments, message", [
    ('srcs=["zoo/good"], xfail=[42]',
     "iree_onnx_test_suite xfail: 42 is an int, not 'file' or a tuple of 1 to 4 strings; give entries "
     "'file.mlir' or ('file.mlir', backend, device[, reason]), globs allowed"),
    ('srcs=["zoo/good"], skip=3.5', "iree_onnx_test_suite skip: 3.5 is a float, not a list of entries; give "
     "entries 'file.mlir' or ('file.mlir', backend, device[, reason]), globs allowed"),
    ('srcs=["zoo/good"], rtol=-1', "iree_onnx_test_suite rtol: -1 is below 0; give a finite number >= 0, e.g. 1e-5"),
    ('srcs=["zoo/good"], onnx_opset="17"', "iree_onnx_test_suite onnx_opset: '17' is a string, not an integer; "
     "give an ONNX opset number, e.g. 17, or 'own' for the model's own"),
    ('srcs=["zoo/nothing"]', "zoo/nothing not found"),
])
def test_suite_argument_errors(project: Project, arguments: str, message: str) -> None:
    _zoo(project)
    project.write("SConstruct", f"""\
        from iree_rules import *
        iree_onnx_test_suite(name="s", {arguments})
        """)
    run = project.scons()
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("scons: *** SConstruct:2: ") and last.endswith(message), run.stderr

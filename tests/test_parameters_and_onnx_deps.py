"""Run-time parameter archives and ONNX external data are dependencies like any source."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
from conftest import Project, write_onnx_matmul

PARAM_MLIR = """\
util.global private @w = #flow.parameter.named<"model"::"w"> : tensor<4xf32>
func.func @addw(%a: tensor<4xf32>) -> tensor<4xf32> {
  %w = util.global.load @w : tensor<4xf32>
  %0 = arith.addf %a, %w : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""


def write_irpa(path, w) -> None:
    import iree.runtime as rt

    index = rt.ParameterIndex()
    index.add_buffer("w", np.asarray(w, np.float32).tobytes())
    index.create_archive_file(str(path))


def write_safetensors(path, w) -> None:
    data = np.asarray(w, np.float32).tobytes()
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_parameter_archives_are_loaded_and_tracked(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="param", src="param.mlir")
        iree_test(name="irpa", module="param", function="addw", inputs=[[1.0, 2.0, 3.0, 4.0]],
                  expected=[[11.0, 22.0, 33.0, 44.0]], parameters=["w.irpa"])
        iree_test(name="st", module="param", function="addw", inputs=[[1.0, 1.0, 1.0, 1.0]],
                  expected=[[2.0, 3.0, 4.0, 5.0]], parameters=["w.safetensors"])
        iree_run(name="y", module="param", function="addw", inputs=[[0.0, 0.0, 0.0, 0.0]],
                 parameters=["w.irpa"])
        """)
    project.write("param.mlir", PARAM_MLIR)
    write_irpa(project.path("w.irpa"), [10, 20, 30, 40])
    write_safetensors(project.path("w.safetensors"), [1, 2, 3, 4])
    first = project.scons("test", "y.npy")
    assert first.returncode == 0, first.output
    assert first.stdout.splitlines()[-1] == "2 passed, 0 failed, 0 skipped"
    np.testing.assert_array_equal(np.load(project.path("y.npy")), [10, 20, 30, 40])
    tree = project.scons("--tree=prune", "y.npy")
    assert "+-w.irpa" in tree.stdout

    write_irpa(project.path("w.irpa"), [10, 20, 30, 41])  # the irpa test now fails, st is untouched
    second = project.scons("test", "y.npy", "-k", "--debug=explain")
    assert "`w.irpa' changed" in second.stdout
    assert [ln.split(" (")[0] for ln in second.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))] == [
        "FAIL irpa[local-task]"]
    assert "first at (3,): expected 44.0, got 45.0" in second.stdout
    np.testing.assert_array_equal(np.load(project.path("y.npy")), [10, 20, 30, 41])

    os.unlink(project.path("w.safetensors"))
    gone = project.scons("test")
    assert gone.returncode == 2
    assert ("scons: *** SConstruct:5: iree_test parameters: parameter archive w.safetensors not found"
            in gone.stderr)


def test_onnx_external_data_is_a_dependency(project: Project) -> None:

    write_onnx_matmul(project.path("mm.onnx"))
    project.write("SConstruct", """\
        from iree_rules import *
        import numpy as np
        x = np.ones((2, 16), np.float32)
        iree_module(name="mm", src="mm.onnx")
        iree_test(name="mm_test", module="mm", inputs=[x],
                  expected=lambda x: x @ np.arange(256, dtype=np.float32).reshape(16, 16))
        iree_module(name="ext", src="mm.onnx", externalize_params=True)  # weights in ext.irpa
        iree_test(name="ext_test", module="ext", inputs=[x],
                  expected=lambda x: x @ np.arange(256, dtype=np.float32).reshape(16, 16))
        """)
    first = project.scons("test")
    assert first.returncode == 0, first.output
    assert "IREE import mm.onnx -> mm.imported.mlir" in first.stdout
    assert "IREE import mm.onnx -> ext.imported.mlir ext.irpa" in first.stdout
    assert first.stdout.splitlines()[-1] == "2 passed, 0 failed, 0 skipped"
    assert project.path("ext.irpa").stat().st_size >= 1024  # the 16x16 weights left the module
    assert "parameter.named<\"model\"::\"W\">" in project.path("ext.imported.mlir").read_text()

    data = bytearray(project.path("mm.weights").read_bytes())
    data[:4] = np.float32(100.0).tobytes()  # W[0, 0] changes: the test now fails
    project.path("mm.weights").write_bytes(bytes(data))
    second = project.scons("test", "-k", "--debug=explain")
    assert "rebuilding `mm.imported.mlir' because `mm.weights' changed" in second.stdout
    assert "FAIL mm_test[local-task] (output 0 mismatch" in second.stdout
    assert "FAIL ext_test[local-task] (output 0 mismatch" in second.stdout  # the archive changed too

    project.path("mm.weights").unlink()
    gone = project.scons("test")
    assert gone.returncode == 2
    assert "Implicit dependency `mm.weights' not found, needed by target `mm.imported.mlir'" in gone.stderr

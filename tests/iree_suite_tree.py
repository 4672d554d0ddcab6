"""A small tree in the layout of IREE's generated op tests (iree-test-suites' onnx_ops),
written from scratch: one folder per test with ``model.mlir``, ``.bin`` inputs and
expected outputs, and a ``run_module_io_flags.txt``; and a CI configuration beside it."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np

_BINARY = """\
func.func @main(%a: tensor<{t}>, %b: tensor<{t}>) -> tensor<{t}> {{
  %c = {op} %a, %b : tensor<{t}>
  return %c : tensor<{t}>
}}
"""


def _case(root: Path, name: str, mlir: str, inputs: list[tuple[str, np.ndarray]],
          expected: list[tuple[str, np.ndarray]]) -> None:
    folder = root / "onnx" / "node" / "generated" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.mlir").write_text(mlir)
    lines = []
    for kind, values in (("input", inputs), ("expected_output", expected)):
        for i, (text_type, array) in enumerate(values):
            file = f"{'input' if kind == 'input' else 'output'}_{i}.bin"
            (folder / file).write_bytes(np.ascontiguousarray(array).tobytes())
            shape = "x".join(str(d) for d in array.shape)
            lines.append(f"--{kind}={shape + 'x' if shape else ''}{text_type}=@{file}")
    (folder / "run_module_io_flags.txt").write_text("\n".join(lines) + "\n")


def write_tree(root: Path) -> dict[str, str]:
    """Writes the tree and ``config.json``; returns each test's expected verdict word."""
    a = np.array([[1.5, -2.0, 0.0], [3.25, np.nan, 7.0]], np.float32)
    b = np.array([[0.5, 2.0, -0.0], [1.0, 1.0, np.inf]], np.float32)
    add = _BINARY.format(t="2x3xf32", op="arith.addf")
    _case(root, "test_add", add, [("f32", a), ("f32", b)], [("f32", a + b)])
    _case(root, "test_add_wrong", add, [("f32", a), ("f32", b)], [("f32", a + b + 1)])
    _case(root, "test_add_run_xfail", add, [("f32", a), ("f32", b)], [("f32", a - b)])
    scalar = _BINARY.format(t="f32", op="arith.mulf")
    _case(root, "test_mul_scalar", scalar, [("f32", np.array(3, np.float32)),
                                            ("f32", np.array(-0.5, np.float32))],
          [("f32", np.array(-1.5, np.float32))])
    bf = _BINARY.format(t="4xbf16", op="arith.addf")
    x = np.array([1, 2.5, -3, 0.125], ml_dtypes.bfloat16)
    _case(root, "test_add_bf16", bf, [("bf16", x), ("bf16", x)], [("bf16", x + x)])
    i8 = _BINARY.format(t="5xi8", op="arith.addi")
    y = np.array([1, -2, 127, 0, 5], np.int8)
    _case(root, "test_add_i8", i8, [("i8", y), ("i8", np.ones(5, np.int8))],
          [("i8", (y + np.ones(5, np.int8)).astype(np.int8))])
    broken = "func.func @main(%a: tensor<f32>) -> tensor<f32> {\n  return %b : tensor<f32>\n}\n"
    _case(root, "test_compile_xfail", broken, [("f32", np.array(1, np.float32))],
          [("f32", np.array(1, np.float32))])
    _case(root, "test_not_compiled", broken, [("f32", np.array(1, np.float32))],
          [("f32", np.array(1, np.float32))])
    prefix = "onnx/node/generated/"
    (root / "config.json").write_text(json.dumps({
        "config_name": "cpu_llvm_sync",
        "iree_compile_flags": ["--iree-hal-target-backends=llvm-cpu"],
        "iree_run_module_flags": ["--device=local-sync"],
        "skip_compile_tests": [prefix + "test_not_compiled"],
        "skip_run_tests": [],
        "expected_compile_failures": [prefix + "test_compile_xfail", prefix + "test_from_elsewhere"],
        "expected_run_failures": [prefix + "test_add_run_xfail"],
    }, indent=1))
    return {"test_add": "PASS", "test_add_wrong": "FAIL", "test_add_run_xfail": "XFAIL",
            "test_mul_scalar": "PASS", "test_add_bf16": "PASS", "test_add_i8": "PASS",
            "test_compile_xfail": "XFAIL", "test_not_compiled": "SKIP"}

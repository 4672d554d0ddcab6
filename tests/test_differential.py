"""The product's verdicts against IREE's own: ``iree-run-module --expected_output`` is the oracle.

One module holds an identity function per (element type, shape), 0-d and empty
shapes included. Hypothesis draws a function, values (NaN, +-Inf, -0 among
them) and an expectation, right or deliberately wrong (a small or large
difference, a NaN, a flipped zero sign, an off-by-one integer). The same raw
``.bin`` files go, in IREE's value syntax, to the installed ``iree-run-module``
and through this product's value path (``SHAPExTYPE=@file.bin`` read and staged
as ``.npy``, run and judged by the runner the builds use): both must say the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iree_build.testing.execute import run_test
from iree_build.testing.manifest import TestSpec
from iree_build.values.arrays import npy_bytes
from iree_build.values.iree_syntax import parse, read_file_value

# (IREE's spelling in MLIR, in the tools' value syntax, numpy dtype)
TYPES = [
    ("f32", "f32", np.dtype(np.float32)), ("f16", "f16", np.dtype(np.float16)),
    ("bf16", "bf16", np.dtype(ml_dtypes.bfloat16)), ("f64", "f64", np.dtype(np.float64)),
    ("f8E4M3FN", "f8E4M3FN", np.dtype(ml_dtypes.float8_e4m3fn)),
    ("f8E5M2", "f8E5M2", np.dtype(ml_dtypes.float8_e5m2)),
    ("i1", "i1", np.dtype(np.bool_)), ("i8", "i8", np.dtype(np.int8)),
    ("i32", "i32", np.dtype(np.int32)), ("i64", "i64", np.dtype(np.int64)),
    ("ui8", "ui8", np.dtype(np.uint8)), ("complex<f32>", "cf64", np.dtype(np.complex64)),
]
SHAPES = [(), (0,), (3,), (2, 3)]


def _fn(mlir_type: str, shape: tuple[int, ...]) -> str:
    kind = mlir_type.replace("<", "_").replace(">", "")
    return f"id_{kind}_{'x'.join(map(str, shape)) or 'scalar'}"


def _tensor(mlir_type: str, shape: tuple[int, ...]) -> str:
    return f"tensor<{''.join(f'{d}x' for d in shape)}{mlir_type}>"


def _native_tool(name: str) -> str:
    """The native binary inside the runtime wheel (the console script is a Python wrapper)."""
    import iree.runtime

    path = Path(iree.runtime.__file__).parent.parent / "_runtime_libs" / name
    return str(path) if path.exists() else name


@pytest.fixture(scope="module")
def module(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("differential")
    lines = []
    for mlir_type, _, _ in TYPES:
        for shape in SHAPES:
            t = _tensor(mlir_type, shape)
            lines.append(f"func.func @{_fn(mlir_type, shape)}(%a: {t}) -> {t} {{ return %a : {t} }}")
    src = folder / "ids.mlir"
    src.write_text("\n".join(lines) + "\n")
    out = folder / "ids.vmfb"
    compile_tool = Path(sys.executable).parent / "iree-compile"
    subprocess.run([str(compile_tool), "--iree-hal-target-device=local",
                    "--iree-hal-local-target-device-backends=llvm-cpu",
                    "--iree-input-demote-f64-to-f32=false", str(src), "-o", str(out)], check=True)
    return out


_SPECIAL = [0.0, -0.0, 1.0, -1.5, 0.25, 100.0, float("nan"), float("inf"), float("-inf")]


@st.composite
def cases(draw):
    mlir_type, syntax, dtype = draw(st.sampled_from(TYPES[:4] * 2 + TYPES))  # floats twice as often
    shape = draw(st.sampled_from([*SHAPES, (2, 3), (3,)]))
    count = int(np.prod(shape))
    if dtype.kind == "b":
        values = np.array(draw(st.lists(st.booleans(), min_size=count, max_size=count)), bool)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.array(draw(st.lists(st.integers(max(info.min, -1000), min(info.max, 1000)),
                                        min_size=count, max_size=count)), dtype)
    else:
        floats = st.one_of(st.sampled_from(_SPECIAL), st.floats(-4, 4, width=32),
                           st.floats(-1e4, 1e4, width=32))
        real = draw(st.lists(floats, min_size=count, max_size=count))
        if dtype.kind == "c":
            imag = draw(st.lists(floats, min_size=count, max_size=count))
            with np.errstate(invalid="ignore"):
                values = (np.array(real) + 1j * np.array(imag)).astype(dtype)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                values = np.array(real, np.float64).astype(dtype)
    values = values.reshape(shape)
    expected = values.copy()
    how = draw(st.sampled_from(["same", "nudge", "nudge", "big", "nan", "zero-sign", "flip"]))
    if count and how != "same":
        flat = expected.reshape(-1)
        i = draw(st.integers(0, count - 1))
        if dtype.kind == "b":
            flat[i] = not flat[i]
        elif dtype.kind in "iu":
            flat[i] = flat[i] + 1 if flat[i] < np.iinfo(dtype).max else flat[i] - 1
        else:
            wide = flat.astype(np.complex128 if dtype.kind == "c" else np.float64)
            if how == "nudge":  # just inside or outside the type's threshold (IREE's defaults)
                atol = {"f16": 1e-3, "bf16": 1e-2, "f32": 1e-4, "f64": 1e-4}.get(mlir_type, 1e-4)
                edge = atol + 1e-5 * abs(wide[i]) if np.isfinite(wide[i]) else 1.0
                wide[i] = wide[i] + edge * draw(st.sampled_from([0.3, 0.8, 0.97, 1.03, 1.3, 3.0]))
            elif how == "big":
                with np.errstate(invalid="ignore", over="ignore"):  # inf * 2 in complex
                    wide[i] = wide[i] * 2 + 1
            elif how == "nan":
                wide[i] = np.nan
            elif how == "zero-sign":
                wide[i] = -wide[i] if wide[i] == 0 else wide[i]
            else:
                wide[i] = -wide[i]
            with np.errstate(over="ignore", invalid="ignore"):
                flat[:] = wide.astype(dtype)
    return mlir_type, syntax, shape, values, expected


def _iree_verdict(module: Path, fn: str, value_type: str, shape, folder: Path) -> bool:
    dims = "".join(f"{d}x" for d in shape)
    run = subprocess.run(
        [_native_tool("iree-run-module"), f"--module={module}", "--device=local-sync",
         f"--function={fn}", f"--input={dims}{value_type}=@{folder / 'in.bin'}",
         f"--expected_output={dims}{value_type}=@{folder / 'exp.bin'}"],
        capture_output=True, text=True, timeout=60)
    if "[SUCCESS]" in run.stdout:
        assert run.returncode == 0, run.stdout + run.stderr
        return True
    # A mismatch is "[FAILED]" (exit 1); for the f8 types other than E5M2 this version
    # prints only OUT_OF_RANGE and exits 250. Anything else is a harness error.
    assert "[FAILED]" in run.stdout or "OUT_OF_RANGE" in run.stderr, run.stdout + run.stderr
    return False


def _product_verdict(module: Path, fn: str, value_type: str, shape, folder: Path) -> bool:
    dims = "".join(f"{d}x" for d in shape)
    for name in ("in", "exp"):
        value = parse(f"{dims}{value_type}=@{name}.bin")
        (folder / f"{name}.npy").write_bytes(npy_bytes(read_file_value(value, folder / f"{name}.bin")))
    spec = TestSpec(name="t", base="t", device="local-sync", module="m.vmfb", function=fn,
                    inputs=("in.npy",), expected=("exp.npy",), rtol=None, atol=None,
                    declared_at="test_differential", result="t.result.json")
    result = run_test(spec, folder)
    assert result.status in ("passed", "failed"), result.message
    return result.status == "passed"


@settings(max_examples=int(os.environ.get("IREE_DIFFERENTIAL_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
def test_verdicts_match_iree_run_module(module: Path, tmp_path: Path, case) -> None:
    mlir_type, value_type, shape, values, expected = case
    folder = tmp_path / "case"
    folder.mkdir(exist_ok=True)
    if not (folder / "m.vmfb").exists():
        shutil.copy(module, folder / "m.vmfb")
    (folder / "in.bin").write_bytes(values.tobytes())
    (folder / "exp.bin").write_bytes(expected.tobytes())
    fn = _fn(mlir_type, shape)
    iree = _iree_verdict(module, fn, value_type, shape, folder)
    ours = _product_verdict(module, fn, value_type, shape, folder)
    assert ours == iree, (f"{fn}: iree-run-module says {'pass' if iree else 'fail'}, the product "
                          f"{'pass' if ours else 'fail'}; values {values!r}, expected {expected!r}")


@pytest.mark.parametrize("shape", [s for s in SHAPES if s])  # IREE needs a dimension here
def test_values_without_data_are_iree_run_modules_zeros(module: Path, tmp_path: Path, shape) -> None:
    """``4xf32`` (no ``=``): what ``iree-run-module --input=`` makes of it, every type."""
    for mlir_type, value_type, dtype in TYPES:
        text = "".join(f"{d}x" for d in shape) + value_type
        out = tmp_path / f"{_fn(mlir_type, shape)}.bin"  # raw bytes: .npy has no bf16 or f8
        run = subprocess.run(
            [_native_tool("iree-run-module"), f"--module={module}", "--device=local-sync",
             f"--function={_fn(mlir_type, shape)}", f"--input={text}", f"--output=@{out}"],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, (text, run.stdout + run.stderr)
        ours = parse(text).array
        assert ours is not None and ours.shape == shape and ours.dtype == dtype, text
        assert ours.tobytes() == out.read_bytes(), text

"""Values keep their shape and type; IREE's value syntax and flag files; IREE's comparison."""

from __future__ import annotations

import io
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from iree_build.errors import IreeBuildError
from iree_build.testing.compare import compare_output, compare_outputs
from iree_build.values.arrays import describe, load_npy, npy_bytes, to_array
from iree_build.values.element_types import declared_types
from iree_build.values.flagfile import read_flagfile
from iree_build.values.iree_syntax import number_files, parse, read_file_value


@pytest.mark.parametrize("value", [
    np.float32(2.5), np.array(7, np.int8), np.zeros((2, 0), np.float32),
    np.arange(6, dtype=np.float64).reshape(2, 3).T,  # Fortran-ordered view
    np.arange(8, dtype=np.int16)[::2],  # non-contiguous
    np.array([1.5, np.nan], ml_dtypes.bfloat16), np.array(3, ml_dtypes.float8_e4m3fn),
    np.array([1 + 2j], np.complex128), np.array([True, False]), np.arange(3, dtype=">i4"),
])
def test_arrays_keep_shape_and_type_through_npy(value, tmp_path: Path) -> None:
    array = to_array(value)
    assert array.shape == np.shape(value) and array.flags.c_contiguous
    path = tmp_path / "v.npy"
    path.write_bytes(npy_bytes(array))
    back = load_npy(path)
    assert back.shape == np.shape(value)
    assert back.dtype == np.dtype(value.dtype).newbyteorder("=")
    assert back.tobytes() == array.tobytes()
    assert describe(back) == describe(array)


def test_literals_default_to_the_types_iree_functions_take() -> None:
    assert to_array(2.0).dtype == np.float32 and to_array(2.0).shape == ()
    assert to_array([[1, 2]]).dtype == np.int32


def test_types_that_cannot_travel_are_one_line() -> None:
    with pytest.raises(IreeBuildError, match="packs several to a byte"):
        to_array(np.zeros(4, ml_dtypes.int4))
    with pytest.raises(IreeBuildError, match="numbers or booleans"):
        to_array(np.array(["a"]))


def test_an_anonymous_two_byte_npy_is_bf16(tmp_path: Path) -> None:
    """np.save writes bf16 as '|V2': read back as bf16, not as bytes nobody can compare."""
    np.save(tmp_path / "b.npy", np.array([1.5, -0.0], ml_dtypes.bfloat16))
    assert load_npy(tmp_path / "b.npy").dtype == ml_dtypes.bfloat16


def test_a_header_claiming_more_data_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    (tmp_path / "bomb.npy").write_bytes(buffer.getvalue() + b"\0" * 16)
    with pytest.raises(ValueError, match="header says .* but the file holds 16 bytes"):
        load_npy(tmp_path / "bomb.npy")


def test_a_header_too_long_to_read_safely_is_not_called_pickled(tmp_path: Path) -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }" + " " * 20000 + "\n"
    (tmp_path / "long.npy").write_bytes(b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little")
                                        + header.encode() + np.ones(4, np.float32).tobytes())
    with pytest.raises(ValueError, match="^its header is longer than numpy reads safely"):
        load_npy(tmp_path / "long.npy")


@pytest.mark.parametrize("text, shape, dtype, values", [
    ("2x3xf32=1 2 3 4 5 6", (2, 3), np.float32, [[1, 2, 3], [4, 5, 6]]),
    ("f32=5", (), np.float32, 5),
    ("4xf32=1", (4,), np.float32, [1, 1, 1, 1]),
    ("2x0xf32=", (2, 0), np.float32, np.zeros((2, 0))),
    ("3xf32=", (3,), np.float32, [0, 0, 0]),
    ("3xf32", (3,), np.float32, [0, 0, 0]),  # no "=": zeros, as iree-run-module takes it
    ("0xf32", (0,), np.float32, np.zeros((0,))),
    ("2xi1", (2,), np.bool_, [False, False]),
    ("2x2xi8=[1 -2][0x7f 3]", (2, 2), np.int8, [[1, -2], [127, 3]]),
    ("2xbf16=1.5,nan", (2,), ml_dtypes.bfloat16, [1.5, np.nan]),
    ("2xf8e4m3fn=1 -0", (2,), ml_dtypes.float8_e4m3fn, [1, -0.0]),
    ("3xi1=1 0 true", (3,), np.bool_, [True, False, True]),
    ("2xui16=65535 0", (2,), np.uint16, [65535, 0]),
    ("cf64=1+2j", (), np.complex64, 1 + 2j),
])
def test_iree_value_literals(text, shape, dtype, values) -> None:
    value = parse(text)
    assert value.array.shape == shape and value.array.dtype == dtype
    np.testing.assert_array_equal(value.array.astype(np.complex128 if dtype == np.complex64 else np.float64),
                                  np.asarray(values))


@pytest.mark.parametrize("text, message", [
    ("4xf32=1 2", "gives 2 values for shape 4 (4 elements)"),
    ("2xi8=300", "300 does not fit in i8"),
    ("2xf33=1", "unknown element type 'f33' (did you mean 'f32'?)"),
    ("2xi4=1 2", "element type i4 is packed"),
    ("@x.bin", "give raw files their shape and type, e.g. '2x3xf32=@x.bin'"),
    ("2xf32=abc", "'abc' is not a f32 value"),
])
def test_iree_value_mistakes_are_one_line(text, message) -> None:
    with pytest.raises(IreeBuildError, match=re.escape(message)):
        parse(text)


def test_raw_files_and_repeated_npy_files(tmp_path: Path) -> None:
    np.arange(6, dtype=np.float32).tofile(tmp_path / "x.bin")
    value = parse(f"2x3xf32=@{tmp_path / 'x.bin'}")
    np.testing.assert_array_equal(read_file_value(value, value.file), np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="holds 24 bytes, but 4 f32 takes 16"):
        read_file_value(parse("4xf32=@x.bin"), tmp_path / "x.bin")
    np.array([1, 0, 1], np.uint8).tofile(tmp_path / "b.bin")
    assert read_file_value(parse("3xi1=@b.bin"), tmp_path / "b.bin").tolist() == [True, False, True]
    with open(tmp_path / "two.npy", "wb") as f:  # iree-run-module's '+file' reads on: two arrays
        np.save(f, np.float32(1))
        np.save(f, np.float32(2))
    first, second = number_files([parse("@two.npy"), parse("@two.npy")])
    assert read_file_value(second, tmp_path / "two.npy") == 2
    assert read_file_value(first, tmp_path / "two.npy") == 1


def test_flagfile_lines_as_iree_run_module_reads_them(tmp_path: Path) -> None:
    (tmp_path / "run_module_io_flags.txt").write_text(
        "# generated\n--function=main\n\n--input=2xf32=@input_0.bin\n--input=f32=3\n"
        "--expected_output=2xf32=@output_0.bin\n--expected_f32_threshold=0.5\n")
    flags = read_flagfile(tmp_path / "run_module_io_flags.txt")
    assert flags.function == "main" and flags.compare == {"f32": 0.5}
    assert flags.inputs[0].file == str(tmp_path / "input_0.bin") and flags.inputs[1].array == 3
    (tmp_path / "bad.txt").write_text("--input=f32=1\n--expected_outptu=f32=1\n")
    with pytest.raises(IreeBuildError) as e:
        read_flagfile(tmp_path / "bad.txt")
    assert str(e.value).startswith(f"{tmp_path / 'bad.txt'}:2: --expected_outptu is not an "
                                   "iree-run-module flag this build takes (did you mean 'expected_output'?)")


def test_a_flagfile_saved_with_a_bom_reads_as_without(tmp_path: Path) -> None:
    (tmp_path / "flags.txt").write_bytes("\ufeff--function=main\r\n--input=f32=3\r\n".encode())
    flags = read_flagfile(tmp_path / "flags.txt")
    assert flags.function == "main" and flags.inputs[0].array == 3


def test_function_declarations_give_element_types() -> None:
    inputs, outputs = declared_types(
        "sync func @f(%input0: tensor<2x?xbf16>, %input1: i32, %input2: tensor<2xcomplex<f32>>) "
        "-> (%output0: tensor<f8E4M3FN>)")
    assert inputs == ["bf16", None, "complex<f32>"] and outputs == ["f8E4M3FN"]


# What iree-run-module --expected_output (3.13) decides, measured with the tool itself
# (tests/test_differential.py checks the same against it on generated cases).
@pytest.mark.parametrize("actual, expected, verdict", [
    (np.float32(1.0001), np.float32(1), True),
    (np.float32(1.0002), np.float32(1), False),
    (np.float32(1000.01), np.float32(1000), True),  # rtol 1e-5 of |expected|
    (np.float16(1.0009765625), np.float16(1), True),
    (np.float16(1.001953125), np.float16(1), False),
    (np.array(1.0078125, ml_dtypes.bfloat16), np.array(1, ml_dtypes.bfloat16), True),
    (np.array(1.015625, ml_dtypes.bfloat16), np.array(1, ml_dtypes.bfloat16), False),
    (np.float32("nan"), np.float32("nan"), True),
    (np.float32("inf"), np.float32("inf"), True),
    (np.float32("inf"), np.float32("-inf"), False),
    (np.float32(1), np.float32("inf"), False),
    (np.float32(-0.0), np.float32(0), True),
    (np.array(-0.0, ml_dtypes.float8_e4m3fn), np.array(0, ml_dtypes.float8_e4m3fn), False),  # bytes
    (np.complex64(1 + 1e-7j), np.complex64(1), False),  # bytes
    (np.int32(3), np.int32(4), False),
    (np.array(True), np.array(True), True),
])
def test_default_comparison_is_iree_run_modules(actual, expected, verdict) -> None:
    message = compare_output("t", 0, np.asarray(actual), np.asarray(expected), None, None)
    assert (message is None) is verdict, message


def test_declared_tolerances_per_output_and_overrides() -> None:
    a, e = [np.float32([1.5]), np.float32([2.0])], [np.float32([1.0]), np.float32([2.0])]
    assert compare_outputs("t", a, e, None, [0.6, None]) is None
    assert "output 0 mismatch" in compare_outputs("t", a, e, None, [0.1, None])
    assert compare_outputs("t", a, e, None, None, {"f32": 0.5}) is None  # a config's threshold
    message = compare_outputs("t", [np.float32([-0.0])], [np.float32([0.0])], None, None, {"exact": 1})
    assert "--equality_mode=exact: exact compare" in message
    shape = compare_output("t", 0, np.zeros(()), np.zeros((1,)), None, None)
    assert shape == "t: output 0 shape mismatch: expected (1,), got ()"

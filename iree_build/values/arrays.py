"""Test values as numpy arrays: literals made canonical, ``.npy`` written and read.

A literal is converted once, at declaration time, into a canonical array whose
bytes are part of the test's signature; the build writes it as ``.npy`` beside
the module so that the built tree is self-contained and can be tested elsewhere.

Every array keeps its shape and element type end to end: a 0-d array stays 0-d
(``np.ascontiguousarray`` would make it 1-d), and the ML types numpy knows only
through ``ml_dtypes`` (bf16, the f8 family) are written with their name in the
``.npy`` header, where ``np.save`` writes an anonymous ``|V2`` that nobody can
read back as bf16.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from iree_build.errors import IreeBuildError

from .element_types import check_travels, is_ml_dtype

NPY_MAGIC = b"\x93NUMPY"


def c_order(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-contiguous, native-order array of the same shape (0-d included)."""
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return np.require(array, requirements="C")


def to_array(value: Any, what: str = "a test value") -> np.ndarray:
    """A literal (number, bool, nested list, numpy array or scalar) as an array.

    Python floats become float32 and Python ints int32, the element types IREE
    functions almost always take; numpy arrays and scalars keep theirs, ml_dtypes'
    bf16 and f8 types included. A type the runtime cannot take is one line.
    """
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, np.generic):
        array = np.asarray(value)
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise IreeBuildError(f"cannot make an array of {value!r:.60}: {e}") from None
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        elif array.dtype == np.int64:
            array = array.astype(np.int32)
    if array.dtype.hasobject or (array.dtype.kind not in "biufc" and not is_ml_dtype(array.dtype)):
        raise IreeBuildError(f"test values must be numbers or booleans, not {array.dtype} ({value!r:.60})")
    check_travels(array.dtype, what)
    return c_order(array)


def npy_bytes(array: np.ndarray) -> bytes:
    """The ``.npy`` file of ``array``; an ml_dtypes type keeps its name in the header."""
    buffer = io.BytesIO()
    if is_ml_dtype(array.dtype):
        array = c_order(array)
        header = {"descr": array.dtype.name, "fortran_order": False, "shape": array.shape}
        npy_format.write_array_header_1_0(buffer, header)
        buffer.write(array.tobytes())
    else:
        np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def describe(array: np.ndarray) -> str:
    """Short, exact text for signatures: dtype, shape and a content hash."""
    digest = hashlib.sha256(c_order(array).tobytes()).hexdigest()[:16]
    kind = array.dtype.name if is_ml_dtype(array.dtype) else array.dtype.str
    return f"{kind} {tuple(array.shape)} sha256:{digest}"


def _check_size(f: Any, size: int) -> None:
    """Refuse a header that claims more data than the file (of ``size`` bytes) holds (an
    allocation bomb would otherwise be a MemoryError, or minutes of swapping, before numpy
    notices)."""
    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(f)
        else:
            shape, _, dtype = npy_format.read_array_header_2_0(f)
    except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError, MemoryError):
        return  # np.load says what is wrong with the header
    count = 1
    for n in shape:
        count *= int(n)
    need = count * dtype.itemsize
    have = size - f.tell()
    if need > have:
        raise ValueError(
            f"its header says {tuple(shape)} {dtype} ({need} bytes) but the file "
            f"holds {have} bytes of data (truncated or corrupt)"
        )


_SMALL_NPY = 1 << 16
_PLAIN_HEADER = re.compile(
    rb"\{'descr': '([<>|=][a-zA-Z]\d+)', 'fortran_order': (False|True), "
    rb"'shape': \(((?:\d+, ?)*\d*)\), \} *\n"
)


def _plain_npy(data: bytes) -> np.ndarray | None:
    """A small version-1.0 ``.npy`` whose header is what ``np.save`` writes for a plain
    numeric array, read without numpy's header parser (which compiles the header as Python:
    most of the time of loading a tiny array); None for anything else (np.load reads it)."""
    if len(data) >= _SMALL_NPY or not data.startswith(b"\x93NUMPY\x01\x00") or len(data) < 10:
        return None
    end = 10 + int.from_bytes(data[8:10], "little")
    m = _PLAIN_HEADER.fullmatch(data, 10, end)
    if m is None:
        return None
    try:
        dtype = np.dtype(m.group(1).decode())
    except TypeError:
        return None
    if dtype.hasobject:
        return None
    shape = tuple(int(n) for n in m.group(3).split(b",") if n.strip())
    count = 1
    for n in shape:
        count *= n
    if len(data) - end != count * dtype.itemsize:
        return None  # truncated or with trailing bytes: np.load and _check_size say which
    array = np.frombuffer(bytearray(data[end:]), dtype=dtype)
    return array.reshape(shape, order="F" if m.group(2) == b"True" else "C")


def load_npy(path: Any, data: bytes | None = None) -> Any:
    """``np.load`` without pickle, saying plainly what is wrong with a file that is not a
    numeric ``.npy`` (numpy's own message for both suggests ``allow_pickle``, which is
    never the answer for test data). Raises OSError or ValueError. ``data``: the file's
    bytes, already read (then ``path`` is not opened).

    An anonymous 2-byte void (what ``np.save`` writes for bf16) is read as bf16: no
    other type numpy cannot name is 2 bytes wide.
    """
    import ml_dtypes  # registers "bfloat16", "float8_e4m3fn", ... for headers that name them

    with open(path, "rb") if data is None else io.BytesIO(data) as f:
        array = _plain_npy(f.read(_SMALL_NPY) if data is None else data)
        if array is not None:
            return array.view(ml_dtypes.bfloat16) if array.dtype == np.dtype("V2") else array
        f.seek(0)
        head = f.read(len(NPY_MAGIC))
        if head != NPY_MAGIC:
            raise ValueError("not a .npy file (it has no NumPy header)")
        f.seek(0)
        _check_size(f, os.fstat(f.fileno()).st_size if data is None else len(data))
        f.seek(0)
        try:
            array = np.load(f, allow_pickle=False)
        except ValueError as exc:
            if "max_header_size" in str(exc):  # numpy's refusal also names allow_pickle
                raise ValueError(
                    "its header is longer than numpy reads safely (a .npy np.save wrote has a short one)"
                ) from None
            if "pickle" in str(exc):
                raise ValueError(
                    "it holds Python objects (pickled), which are never loaded: save a numeric array"
                ) from None
            raise
        except (TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            raise ValueError(f"its header is not a valid .npy header ({type(exc).__name__})") from None
    if isinstance(array, np.ndarray) and array.dtype == np.dtype("V2"):
        array = array.view(ml_dtypes.bfloat16)
    return array


def resolve_opaque(array: np.ndarray, like: np.dtype | None) -> np.ndarray:
    """A ``.npy`` of anonymous bytes (``|V1``: an f8 value saved by ``np.save``) read as
    ``like`` when that is an ml_dtypes type of the same width; else unchanged."""
    if (
        like is not None
        and array.dtype.kind == "V"
        and array.dtype.names is None
        and not is_ml_dtype(array.dtype)
        and is_ml_dtype(like)
        and np.dtype(like).itemsize == array.dtype.itemsize
    ):
        return array.view(like)
    return array

"""Test inputs and expectations written in an SConscript, turned into ``.npy`` data.

Literal values are converted once, at declaration time, into a canonical array
whose bytes are part of the test's signature; the build writes them as ``.npy``
files beside the module so that the built tree is self-contained and can be
tested elsewhere.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

from .errors import IreeBuildError


def to_array(value: Any) -> np.ndarray:
    """A literal (number, bool, nested list, numpy array) as an array.

    Python floats become float32 and Python ints int32, the element types
    IREE functions almost always take; numpy arrays and scalars keep theirs.
    """
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, np.generic):
        array = np.asarray(value)
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise IreeBuildError(f"cannot make an array of {value!r}: {e}") from None
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        elif array.dtype == np.int64:
            array = array.astype(np.int32)
    if array.dtype.hasobject or array.dtype.kind not in "biufc":
        raise IreeBuildError(
            f"test values must be numbers or booleans, not {array.dtype} ({value!r:.60})"
        )
    return np.ascontiguousarray(array)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def describe(array: np.ndarray) -> str:
    """Short, exact text for signatures: dtype, shape and a content hash."""
    digest = hashlib.sha256(array.tobytes()).hexdigest()[:16]
    return f"{array.dtype.str} {tuple(array.shape)} sha256:{digest}"


NPY_MAGIC = b"\x93NUMPY"


def load_npy(path: Any) -> Any:
    """``np.load`` without pickle, saying plainly what is wrong with a file that is not a
    numeric ``.npy`` (numpy's own message for both suggests ``allow_pickle``, which is
    never the answer for test data). Raises OSError or ValueError."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
        if head != NPY_MAGIC:
            raise ValueError("not a .npy file (it has no NumPy header)") from None
        if "pickle" in str(exc):
            raise ValueError("it holds Python objects (pickled), which are never loaded: "
                             "save a numeric array") from None
        raise


"""Compare a function's outputs with the expected arrays, one line on mismatch.

Floats (and complex) use numpy ``isclose`` semantics with NaN equal to NaN;
integers and bools must match exactly. Shapes and dtypes are checked first so
the message says what is wrong before talking about values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _fmt_num(value: float) -> str:
    return f"{value:.6g}"


def _fmt_index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"


def _is_inexact(dtype: np.dtype) -> bool:
    return dtype.kind in "fc"


def _native(arr: np.ndarray) -> np.ndarray:
    """Byte order is a storage detail; compare in native order."""
    if arr.dtype.byteorder not in ("=", "|"):
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _errors(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """Max absolute and relative error over all elements (equal NaN/inf count as 0)."""
    if actual.size == 0:
        return 0.0, 0.0
    wide = np.complex128 if "c" in (actual.dtype.kind, expected.dtype.kind) else np.float64
    a = actual.astype(wide)
    e = expected.astype(wide)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        same = (a == e) | (np.isnan(a) & np.isnan(e))
        diff = np.where(same, 0.0, np.abs(a - e))
        mag = np.abs(e)
        rel = np.where(diff == 0, 0.0, np.where(mag == 0, np.inf, diff / np.where(mag == 0, 1, mag)))
    return float(np.max(diff)), float(np.max(rel))


def compare_output(
    test: str,
    index: int,
    actual: np.ndarray,
    expected: np.ndarray,
    rtol: float,
    atol: float,
) -> str | None:
    """None if ``actual`` matches ``expected``, else the one-line message."""
    actual = _native(np.asarray(actual))
    expected = _native(np.asarray(expected))
    bad_shape = actual.shape != expected.shape
    bad_dtype = actual.dtype != expected.dtype
    if bad_shape and bad_dtype:
        return (
            f"{test}: output {index} shape and dtype mismatch: expected "
            f"{expected.shape} {expected.dtype}, got {actual.shape} {actual.dtype}"
        )
    if bad_shape:
        return (
            f"{test}: output {index} shape mismatch: expected {expected.shape}, "
            f"got {actual.shape}"
        )
    if bad_dtype:
        return (
            f"{test}: output {index} dtype mismatch: expected {expected.dtype}, "
            f"got {actual.dtype}"
        )
    inexact = _is_inexact(expected.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        if inexact:
            ok = np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        elif expected.dtype.kind in "biu":
            ok = actual == expected
        else:  # other kinds (void, bytes...): compare the raw bytes per element
            ok = actual.view(np.uint8).reshape(actual.shape + (-1,)) == expected.view(
                np.uint8
            ).reshape(expected.shape + (-1,))
            ok = ok.all(axis=-1)
    ok = np.asarray(ok)
    if bool(ok.all()):
        return None
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0])
    count = int(bad.shape[0])
    if expected.dtype.kind in "fciu":
        max_abs, max_rel = _errors(actual, expected)
        errs = f"max abs err {_fmt_num(max_abs)}, max rel err {_fmt_num(max_rel)} "
    else:
        errs = ""
    how = (
        f"(rtol {_fmt_num(rtol)}, atol {_fmt_num(atol)})" if inexact else "(exact compare)"
    )
    return (
        f"{test}: output {index} mismatch: {errs}{how}; first at {_fmt_index(first)}: "
        f"expected {expected[first]}, got {actual[first]}; "
        f"{count} of {expected.size} elements differ"
    )


def compare_outputs(
    test: str,
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    rtol: float,
    atol: float,
) -> str | None:
    """None if every output matches, else the message for the first mismatch."""
    if len(actual) != len(expected):
        return (
            f"{test}: function returned {len(actual)} output(s), "
            f"expected {len(expected)}"
        )
    for i, (a, e) in enumerate(zip(actual, expected)):
        message = compare_output(test, i, a, e, rtol, atol)
        if message is not None:
            return message
    return None

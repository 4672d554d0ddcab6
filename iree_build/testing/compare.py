"""Compare a function's outputs with the expected arrays, one line on mismatch.

With no tolerance declared an output is judged as ``iree-run-module
--expected_output`` judges it (:mod:`iree_build.values.tolerance`): floats within
IREE's per-type threshold, NaN equal to NaN; integers, i1, complex and the f8
types byte for byte. A declared ``rtol``/``atol`` judges inexact types by
``|actual - expected| <= atol + rtol * |expected|`` (NaN equal to NaN). Shapes and
dtypes are checked first so the message says what is wrong before talking about
values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from iree_build.values.arrays import resolve_opaque
from iree_build.values.element_types import is_ml_dtype, of_dtype
from iree_build.values.tolerance import IREE_RTOL, Tolerance, declared_tolerance, default_tolerance

# One tolerance for every output, or one per output; None: IREE's default.
Tol = float | None | Sequence[float | None]


def _fmt_num(value: float) -> str:
    return f"{value:.6g}"


def _fmt_index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"


def _is_inexact(dtype: np.dtype) -> bool:
    if dtype.kind in "fc":
        return True
    known = of_dtype(dtype) if is_ml_dtype(dtype) else None
    return known is not None and known.inexact


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
    a = np.asarray(actual).astype(wide)
    e = np.asarray(expected).astype(wide)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        same = (a == e) | (np.isnan(a) & np.isnan(e))
        diff = np.where(same, 0.0, np.abs(a - e))
        mag = np.abs(e)
        rel = np.where(diff == 0, 0.0, np.where(mag == 0, np.inf, diff / np.where(mag == 0, 1, mag)))
    return float(np.max(diff)), float(np.max(rel))


def _compute_type(dtype: np.dtype) -> type:
    """The arithmetic IREE's comparison does for this type: float for types up to 32
    bits, double for f64 (the verdict at a threshold's edge depends on it)."""
    if dtype.kind == "c":
        return np.complex128 if dtype.itemsize > 8 else np.complex64
    return np.float64 if dtype.itemsize > 4 else np.float32


def _approximate(a: np.ndarray, e: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Which elements are close; ``a`` and ``e`` already in :func:`_compute_type`."""
    wide = a.dtype.type
    real = np.float64 if wide in (np.float64, np.complex128) else np.float32
    atol, rtol = real(tol.atol), real(tol.rtol)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(a) & np.isfinite(e)
        close = np.abs(a - e) <= atol + rtol * np.abs(e)
        return np.asarray((a == e) | (np.isnan(a) & np.isnan(e)) | (finite & close))


def _exact(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    if expected.dtype.kind in "biu":
        return np.asarray(actual == expected)
    width = expected.dtype.itemsize
    a = np.frombuffer(np.require(actual, requirements="C").tobytes(), np.uint8).reshape(-1, width)
    e = np.frombuffer(np.require(expected, requirements="C").tobytes(), np.uint8).reshape(-1, width)
    return np.asarray(np.asarray(a == e).all(axis=1)).reshape(expected.shape)


def tolerance_for(
    dtype: np.dtype, rtol: float | None, atol: float | None, compare: Mapping[str, float] | None = None
) -> Tolerance:
    """How an output of ``dtype`` is judged: the declared rtol/atol, else IREE's default
    (``compare`` holds a configuration's threshold overrides: ``{"f32": 1e-3, "rtol": 0}``)."""
    overrides = dict(compare or {})
    if overrides.pop("exact", 0.0):
        return Tolerance("exact", source="--equality_mode=exact")
    if rtol is None and atol is None:
        known = of_dtype(dtype)
        return default_tolerance(
            known.name if known is not None else None,
            {k: v for k, v in overrides.items() if k != "rtol"},
            overrides.get("rtol"),
        )
    if not _is_inexact(dtype):
        return Tolerance("exact")
    known = of_dtype(dtype)
    base = default_tolerance(
        known.name if known is not None else None,
        {k: v for k, v in overrides.items() if k != "rtol"},
        overrides.get("rtol"),
    )
    return declared_tolerance(
        rtol if rtol is not None else (base.rtol if base.mode == "approximate" else IREE_RTOL),
        atol if atol is not None else base.atol,
    )


def compare_output(
    test: str,
    index: int,
    actual: np.ndarray,
    expected: np.ndarray,
    rtol: float | None,
    atol: float | None,
    compare: Mapping[str, float] | None = None,
) -> str | None:
    """None if ``actual`` matches ``expected``, else the one-line message."""
    return _judge(test, index, actual, expected, rtol, atol, compare)[0]


def _judge(
    test: str,
    index: int,
    actual: np.ndarray,
    expected: np.ndarray,
    rtol: float | None,
    atol: float | None,
    compare: Mapping[str, float] | None,
) -> tuple[str | None, dict[str, float | int | str] | None]:
    """:func:`compare_output`'s verdict, and a match's :func:`margins` entry (None: none),
    from one pass over the arrays."""
    actual = _native(np.asarray(actual))
    expected = resolve_opaque(_native(np.asarray(expected)), actual.dtype)
    bad_shape = actual.shape != expected.shape
    bad_dtype = actual.dtype != expected.dtype
    if bad_shape and bad_dtype:
        return (
            f"{test}: output {index} shape and dtype mismatch: expected "
            f"{expected.shape} {expected.dtype}, got {actual.shape} {actual.dtype}"
        ), None
    if bad_shape:
        return f"{test}: output {index} shape mismatch: expected {expected.shape}, got {actual.shape}", None
    if bad_dtype:
        return f"{test}: output {index} dtype mismatch: expected {expected.dtype}, got {actual.dtype}", None
    tol = tolerance_for(expected.dtype, rtol, atol, compare)
    if tol.mode == "approximate":
        wide = _compute_type(expected.dtype)
        a: np.ndarray = actual.astype(wide)
        e: np.ndarray = expected.astype(wide)
        if expected.size and bool((a == e).all()):  # equal (so equal widened too): no error at all
            return None, {
                "output": index,
                "mode": tol.mode,
                "max_abs": 0.0,
                "max_rel": 0.0,
                "atol": tol.atol,
                "rtol": tol.rtol,
                "used": 0.0,
            }
        ok = _approximate(a, e, tol)
    else:
        ok = _exact(actual, expected)
    if bool(ok.all()):
        if expected.size == 0:
            return None, None
        if tol.mode != "approximate":
            return None, {"output": index, "mode": tol.mode}
        return None, _approximate_margin(index, actual, expected, a, e, tol)
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0])
    count = int(bad.shape[0])
    numeric = expected.dtype.kind in "fciu" or _is_inexact(expected.dtype)
    if numeric:
        max_abs, max_rel = _errors(actual, expected)
        errs = f"max abs err {_fmt_num(max_abs)}, max rel err {_fmt_num(max_rel)} "
        if tol.mode == "exact" and max_abs == 0:
            errs = "equal values with other bytes (-0 against 0, or NaN payloads) "
    else:
        errs = ""
    return (
        f"{test}: output {index} mismatch: {errs}({tol.describe()}); first at {_fmt_index(first)}: "
        f"expected {expected[first]}, got {actual[first]}; "
        f"{count} of {expected.size} elements differ"
    ), None


def pick(tol: Tol, index: int) -> float | None:
    """Output ``index``'s tolerance from a test's one-or-per-output value."""
    if tol is None or isinstance(tol, (int, float)):
        return tol
    return tol[index] if index < len(tol) else None


def compare_outputs(
    test: str,
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    rtol: Tol,
    atol: Tol,
    compare: Mapping[str, float] | None = None,
) -> str | None:
    """None if every output matches, else the message for the first mismatch."""
    return judge_outputs(test, actual, expected, rtol, atol, compare)[0]


def _approximate_margin(
    index: int, a: np.ndarray, e: np.ndarray, aa: np.ndarray, ee: np.ndarray, tol: Tolerance
) -> dict[str, float | int | str]:
    """An output's margin; ``aa`` and ``ee`` are ``a`` and ``e`` in :func:`_compute_type`."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        same = (aa == ee) | (np.isnan(aa) & np.isnan(ee))
        diff = np.where(same, 0.0, np.abs(aa - ee)).astype(np.float64)
        allowed = (tol.atol + tol.rtol * np.abs(ee)).astype(np.float64)
        used = np.where(diff == 0, 0.0, diff / np.where(allowed == 0, np.inf, allowed))
    max_abs, max_rel = _errors(a, e)
    return {
        "output": index,
        "mode": tol.mode,
        "max_abs": max_abs,
        "max_rel": max_rel,
        "atol": tol.atol,
        "rtol": tol.rtol,
        "used": float(np.max(used)) if used.size else 0.0,
    }


def judge_outputs(
    test: str,
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    rtol: Tol,
    atol: Tol,
    compare: Mapping[str, float] | None = None,
) -> tuple[str | None, list[dict[str, float | int | str]]]:
    """:func:`compare_outputs` and, when every output matches, :func:`margins`, the same
    values from one pass (a small test's comparison cost more than its call)."""
    if len(actual) != len(expected):
        return f"{test}: function returned {len(actual)} output(s), expected {len(expected)}", []
    out: list[dict[str, float | int | str]] = []
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        message, margin = _judge(test, i, a, e, pick(rtol, i), pick(atol, i), compare)
        if message is not None:
            return message, []
        if margin is not None:
            out.append(margin)
    return None, out

"""IREE's ``check`` VM module, written in Python, so check tests are judged for real.

IREE compiler tests call ``check.expect_*`` imports. The pip wheels do not ship
``iree-check-module``, and the imports are *optional*: ``iree-run-module``
leaves them unresolved and a failing check passes silently. Registering this
module in the context resolves them, so every check is evaluated.

Import signatures (iree-base-compiler 3.13, from ``iree-dump-module``)::

    check.expect_true(i32)                                   cconv 0i_v
    check.expect_false(i32)                                  cconv 0i_v
    check.expect_all_true(!hal.device, !hal.buffer_view)     cconv 0rr_v
    check.expect_eq(!hal.device, !hal.buffer_view x2)        cconv 0rrr_v
    check.expect_almost_eq(!hal.device, !hal.buffer_view x2, f32 atol, f32 rtol)
                                                             cconv 0rrrff_v

``expect_eq_const`` / ``expect_almost_eq_const`` are compiled into the plain
calls. The compiler passes the tolerance: ``atol=1e-4`` (as f32), ``rtol=0``
unless the op says ``atol X, rtol Y``. As in IREE's C module, a failed check is
recorded and the function goes on (gtest's non-fatal EXPECT); a check that
cannot be evaluated (unsupported element type) fails the call, as IREE's error
status does.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import iree.runtime as ireert
import numpy as np

from iree_build.testing.devices import runtime_error_text
from iree_build.testing.host_arrays import to_host

CHECK_IMPORTS: dict[str, str] = {
    "expect_true": "0i_v",
    "expect_false": "0i_v",
    "expect_all_true": "0rr_v",
    "expect_eq": "0rrr_v",
    "expect_almost_eq": "0rrrff_v",
}
"""Import name -> calling convention; the VM rejects a context on any mismatch."""

FLOAT_TYPES = frozenset(
    {
        "float16",
        "float32",
        "float64",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    }
)
"""numpy / ml_dtypes names of the element types expect_almost_eq accepts (as IREE)."""

MAX_SHOWN = 8
"""Elements of each operand shown in a failure message."""


@dataclass(frozen=True)
class CheckFailure:
    """One failed (or unevaluable) check in one function."""

    function: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.function}: {self.check}: {self.message}"


@dataclass
class CheckLog:
    """What the check module saw during one function call (one per call)."""

    function: str = ""
    checks: int = 0
    failures: list[CheckFailure] = field(default_factory=list)
    error: CheckFailure | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.error is None

    def summary(self, limit: int = 3) -> str:
        """One line: the function, how many checks failed, the first few."""
        parts = [f"{f.check}: {f.message}" for f in self.failures[:limit]]
        if len(self.failures) > limit:
            parts.append(f"(+{len(self.failures) - limit} more failed checks)")
        head = f"{self.function}: {len(self.failures)} of {self.checks} checks failed"
        return head + (": " + " | ".join(parts) if parts else "")


class CheckError(Exception):
    """A check that cannot be evaluated; the call fails (IREE returns a status)."""


# ---------------------------------------------------------------------------
# Formatting


def _type_name(dtype: np.dtype) -> str:
    """MLIR-style element type name (f32, i8, ui16, bf16, ...)."""
    if dtype == np.bool_:
        return "i1"
    if dtype.name in ("float16", "float32", "float64"):
        return f"f{dtype.itemsize * 8}"
    if dtype.kind == "i":
        return f"i{dtype.itemsize * 8}"
    if dtype.kind == "u":
        return f"ui{dtype.itemsize * 8}"
    if dtype.kind == "c":
        return f"complex<f{dtype.itemsize * 4}>"
    return {"bfloat16": "bf16"}.get(dtype.name, dtype.name)


def _scalar(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (complex, np.complexfloating)):
        return str(complex(value))
    return f"{float(value):.7g}"


def _values(arr: np.ndarray) -> str:
    """``f32[4] [1 2 3 4]``: type, shape and the first MAX_SHOWN elements."""
    flat = arr.reshape(-1)
    if flat.dtype.kind not in "biufc":  # ml_dtypes floats: show as f32
        flat = flat.astype(np.float32)
    shown = " ".join(_scalar(v) for v in flat[:MAX_SHOWN].tolist())
    more = f" ...(+{flat.size - MAX_SHOWN})" if flat.size > MAX_SHOWN else ""
    shape = "x".join(str(d) for d in arr.shape)
    return f"{_type_name(arr.dtype)}[{shape}] [{shown}{more}]"


def _index(arr: np.ndarray, flat: int) -> str:
    if arr.ndim == 0:
        return "()"
    idx = np.unravel_index(flat, arr.shape)
    return "(" + ", ".join(str(int(i)) for i in idx) + ("," if arr.ndim == 1 else "") + ")"


def _operands(lhs: np.ndarray, rhs: np.ndarray) -> str:
    return f"lhs={_values(lhs)}; rhs={_values(rhs)}"


def _metadata_mismatch(lhs: np.ndarray, rhs: np.ndarray) -> str | None:
    problems = []
    if lhs.dtype != rhs.dtype:
        problems.append(f"element types differ (lhs {_type_name(lhs.dtype)}, rhs {_type_name(rhs.dtype)})")
    if lhs.shape != rhs.shape:
        problems.append(f"shapes differ (lhs {list(lhs.shape)}, rhs {list(rhs.shape)})")
    return "; ".join(problems) or None


# ---------------------------------------------------------------------------
# The comparisons (pure numpy; None means the check passed)


def all_true_failure(operand: np.ndarray) -> str | None:
    """Every element nonzero (IREE: integer, f32 and f64 element types)."""
    if operand.dtype.kind not in "biuf":
        raise CheckError(f"unsupported element type {_type_name(operand.dtype)}")
    zero = np.flatnonzero(operand.reshape(-1) == 0)
    if zero.size == 0:
        return None
    return (
        f"{zero.size} of {operand.size} elements are zero, first at "
        f"{_index(operand, int(zero[0]))}; operand={_values(operand)}"
    )


def eq_failure(lhs: np.ndarray, rhs: np.ndarray) -> str | None:
    """Exact equality: element type, shape and the bytes (NaN == NaN, 0.0 != -0.0)."""
    metadata = _metadata_mismatch(lhs, rhs)
    if metadata is not None:
        return f"{metadata}; {_operands(lhs, rhs)}"
    width = lhs.dtype.itemsize
    lhs_bytes = np.frombuffer(np.ascontiguousarray(lhs).tobytes(), np.uint8)
    rhs_bytes = np.frombuffer(np.ascontiguousarray(rhs).tobytes(), np.uint8)
    differ = np.flatnonzero(
        (lhs_bytes.reshape(lhs.size, width) != rhs_bytes.reshape(rhs.size, width)).any(axis=1)
    )
    if differ.size == 0:
        return None
    first = int(differ[0])
    return (
        f"{differ.size} of {lhs.size} elements differ, first at {_index(lhs, first)}: "
        f"lhs {_scalar(_flat(lhs)[first])} != rhs {_scalar(_flat(rhs)[first])}; "
        f"{_operands(lhs, rhs)}"
    )


def _flat(arr: np.ndarray) -> np.ndarray:
    flat = arr.reshape(-1)
    return flat if flat.dtype.kind in "biufc" else flat.astype(np.float32)


def almost_eq_failure(lhs: np.ndarray, rhs: np.ndarray, atol: float, rtol: float) -> str | None:
    """IREE's numpy-isclose test, per element (rhs is the reference)::

        lhs == rhs or (isfinite(rhs) and |lhs - rhs| <= atol + rtol * |rhs|)
        or (isnan(lhs) and isnan(rhs))

    evaluated in f64 for f64 operands and f32 for every other float type
    (f16, bf16, f8 are widened to f32 first), as IREE's C module does.
    """
    metadata = _metadata_mismatch(lhs, rhs)
    if metadata is not None:
        return f"{metadata}; {_operands(lhs, rhs)}"
    if lhs.dtype.name not in FLOAT_TYPES:
        raise CheckError(f"unsupported element type {_type_name(lhs.dtype)}")
    arith: type[np.floating[Any]] = np.float64 if lhs.dtype == np.float64 else np.float32
    a = lhs.reshape(-1).astype(arith)
    b = rhs.reshape(-1).astype(arith)
    tol_a, tol_r = arith(atol), arith(rtol)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        close = (a == b) | (np.isfinite(b) & (diff <= tol_a + tol_r * np.abs(b)))
        close |= np.isnan(a) & np.isnan(b)
    bad = np.flatnonzero(~close)
    if bad.size == 0:
        return None
    first = int(bad[0])
    errors = diff[bad].astype(np.float64)
    worst = int(bad[int(np.argmax(np.where(np.isnan(errors), np.inf, errors)))])
    if np.isfinite(b[worst]):
        allowed = f"tolerance there {float(tol_a + tol_r * abs(b[worst])):.3g}"
    else:
        allowed = "rhs not finite: only an exact match passes"
    return (
        f"{bad.size} of {lhs.size} elements not within atol={atol:g}, rtol={rtol:g}; "
        f"max error {float(diff[worst]):.3g} at {_index(lhs, worst)} ({allowed}); "
        f"first failure at {_index(lhs, first)}: lhs {_scalar(a[first])} vs "
        f"rhs {_scalar(b[first])}; {_operands(lhs, rhs)}"
    )


# ---------------------------------------------------------------------------
# The VM module


def _read(device: ireert.HalDevice, ref: ireert.VmRef) -> np.ndarray:
    """A buffer-view operand as a host numpy array (staged through the device if needed)."""
    view = ref.deref(ireert.HalBufferView)
    try:
        return to_host(device, view)
    except RuntimeError as exc:  # no numpy dtype (i4, opaque): cannot be judged
        raise CheckError(
            f"cannot read operand of element type {int(view.element_type):#x}: {runtime_error_text(exc)}"
        ) from None


class _CheckState:
    """Per-context state: the device to read operands with, the log to write to."""

    def __init__(self, device: ireert.HalDevice, log: CheckLog | None) -> None:
        if log is None:  # a shared module's context made outside CheckModules.context
            raise CheckError("the check module's context was made without a log")
        self.device = device
        self.log = log

    def expect_true(self, operand: int) -> str | None:
        return None if operand != 0 else f"expected {operand} to be nonzero"

    def expect_false(self, operand: int) -> str | None:
        return None if operand == 0 else f"expected {operand} to be zero"

    def expect_all_true(self, _device: Any, operand: ireert.VmRef) -> str | None:
        return all_true_failure(_read(self.device, operand))

    def expect_eq(self, _device: Any, lhs: ireert.VmRef, rhs: ireert.VmRef) -> str | None:
        return eq_failure(_read(self.device, lhs), _read(self.device, rhs))

    def expect_almost_eq(
        self, _device: Any, lhs: ireert.VmRef, rhs: ireert.VmRef, atol: float, rtol: float
    ) -> str | None:
        return almost_eq_failure(_read(self.device, lhs), _read(self.device, rhs), float(atol), float(rtol))


def _export(name: str) -> Callable[..., None]:
    """Wrap a state method: count the check, record a failure, never raise but for errors."""
    method = getattr(_CheckState, name)

    @functools.wraps(method)
    def call(state: _CheckState, *args: Any) -> None:
        log = cast(CheckLog, state.log)
        log.checks += 1
        try:
            message = method(state, *args)
        except CheckError as exc:
            log.error = CheckFailure(log.function, name, str(exc))
            raise
        except Exception as exc:  # a bug here must not look like a passing check
            log.error = CheckFailure(log.function, name, f"{type(exc).__name__}: {exc}")
            raise
        if message is not None:
            log.failures.append(CheckFailure(log.function, name, message))

    return call


def create_check_module(device: ireert.HalDevice, log: CheckLog) -> ireert.VmModule:
    """A ``check`` VmModule reading operands on ``device``, recording into ``log``.

    Register it before the module under test (``VmContext(instance, [hal,
    check, module])``); make one per call so each call has its own log. Call
    only on the device's thread (``DevicePool.run_on``): checks read device
    memory.
    """
    return _check_module(lambda: _CheckState(device, log))


def _check_module(state: Callable[[], _CheckState]) -> ireert.VmModule:
    """The ``check`` module whose contexts each get the state ``state()`` makes."""
    iface = ireert.PyModuleInterface("check", lambda _iface: state())
    for name, cconv in CHECK_IMPORTS.items():
        iface.export(name, cconv, _export(name))
    return iface.create()


class CheckModules:
    """One ``check`` module per device, registered in every context made on it: making
    one costs more than a small test's call. Each context still has a state of its own,
    made with the context, recording into the log given for that context."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(device) -> (the device, kept so the id is not reused; its module; the log
        # the next context's state records into)
        self._made: dict[int, tuple[ireert.HalDevice, ireert.VmModule, list[CheckLog | None]]] = {}

    def context(
        self,
        instance: ireert.VmInstance,
        device: ireert.HalDevice,
        log: CheckLog,
        before: list[ireert.VmModule],
        after: list[ireert.VmModule],
    ) -> ireert.VmContext:
        """``VmContext(instance, [*before, check, *after])``, its checks going to ``log``."""
        with self._lock:
            made = self._made.get(id(device))
            if made is None:
                current: list[CheckLog | None] = [None]
                module = _check_module(lambda: _CheckState(device, current[0]))
                made = self._made[id(device)] = (device, module, current)
            _, module, current = made
            current[0] = log
            try:
                return ireert.VmContext(instance, [*before, module, *after])
            finally:
                current[0] = None

"""One call on an emulated lane: the target architecture's ``iree-run-module`` under its
emulator, in a child process, with values passed as files.

The module is loaded here too (a module for another CPU loads; only its code cannot
run) to read the function's declaration: the inputs' element types (an f8 ``.npy`` of
anonymous bytes), and the results' types and shapes. Inputs go as raw bytes in IREE's
typed syntax (``2x3xbf16=@in0.bin``: IREE's tools read no ``.npy`` that names an
ml_dtypes type); results come back as ``.npy`` (``--output=@out0.npy``) for the types
numpy knows, as raw bytes read with the declared type and shape for bf16 and f8.
The outputs are then judged by the caller exactly as a native call's are.

The child dies with this process (``PR_SET_PDEATHSIG``): when a run worker is
stopped for a hang (a TIMEOUT line), the emulator goes with it. A signal death of
the emulated program (qemu-user re-raises the guest's SIGSEGV) is a CRASH.
"""

from __future__ import annotations

import ctypes
import re
import resource
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from iree_build.testing.devices import canonical_device, runtime_error_text, vm_instance
from iree_build.testing.emulation import Lane
from iree_build.testing.manifest import TestSpec
from iree_build.testing.vm import TestError, find_function, load_module, scalar_argument, typed_inputs
from iree_build.util.child_process import death_reason
from iree_build.util.scratch import worker_scratch
from iree_build.values.arrays import c_order, load_npy
from iree_build.values.element_types import BY_NAME, declared_types, is_ml_dtype, of_dtype

_SCALARS = {"i": np.int32, "I": np.int64, "f": np.float32, "F": np.float64}
# IREE's tools spell complex types by their total width.
_SYNTAX_NAMES = {"complex<f32>": "cf64", "complex<f64>": "cf128"}
_BACKSTOP_S = 30.0  # past the test's own timeout, in case no run pool stops the call


class EmulatedFault(Exception):
    """The emulated program died of a signal (``crashed``) or ran past its time (``timeout``)."""

    def __init__(self, status: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # qemu-user dumps the guest's core otherwise


_PRCTL: Callable[..., int] | None
try:  # resolved before any fork: the child only calls it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def _result_shapes(declaration: str) -> list[tuple[int, ...] | None]:
    """Static shapes of the declared results (None: not a tensor, or a dynamic one)."""
    _, _, tail = declaration.partition("->")
    shapes: list[tuple[int, ...] | None] = []
    for arg in re.findall(r"%\w+:\s*(tensor<(?:[^<>]|<[^<>]*>)*>|[^,()\s]+)", tail):
        m = re.fullmatch(r"tensor<((?:(?:\d+|\?)x)*)(.+)>", arg)
        dims = m.group(1).rstrip("x").split("x") if m and m.group(1) else []
        shapes.append(None if m is None or "?" in dims else tuple(int(d) for d in dims))
    return shapes


def _result_types(declaration: str) -> list[str | None]:
    return declared_types(declaration)[1]


def _input_flag(folder: Path, index: int, code: str, arr: np.ndarray) -> str:
    if code in _SCALARS:
        value = scalar_argument(index, code, arr)
        return f"--input={value!r}"
    element = of_dtype(arr.dtype)
    if element is None:
        raise TestError(f"input {index} has dtype {arr.dtype}, which the runtime cannot take")
    path = folder / f"input{index}.bin"
    path.write_bytes(c_order(arr).tobytes())
    type_name = _SYNTAX_NAMES.get(element.name, element.name)
    shape = "x".join(str(d) for d in arr.shape)
    return f"--input={shape + 'x' if shape else ''}{type_name}=@{path}"


OutputPlan = list[tuple[Path, np.dtype | None, tuple[int, ...] | None]]  # path, dtype, raw bytes' shape


def _output_plan(
    folder: Path, codes: str | None, declaration: str, read: bool
) -> tuple[list[str], OutputPlan]:
    """The ``--output=`` flags and how to read each result back."""
    types, shapes = _result_types(declaration), _result_shapes(declaration)
    count = len(codes) if codes is not None else len(types)
    flags: list[str] = []
    plan: OutputPlan = []
    for i in range(count):
        if not read:
            flags.append("--output=")
            continue
        code = codes[i] if codes is not None else "r"
        if code in _SCALARS:
            path = folder / f"output{i}.npy"
            flags.append(f"--output=@{path}")
            plan.append((path, np.dtype(_SCALARS[code]), ()))
            continue
        name = types[i] if i < len(types) else None
        element = BY_NAME.get(name) if name is not None else None
        if element is None:
            raise TestError(f"output {i} is not a tensor or scalar; it cannot be compared")
        if is_ml_dtype(element.dtype):  # IREE writes no .npy of bf16/f8: raw bytes
            shape = shapes[i] if i < len(shapes) else None
            if shape is None:
                raise TestError(
                    f"output {i} is a dynamically shaped {name} tensor, which the "
                    "emulated lane cannot read back (IREE's tools write no .npy of it)"
                )
            path = folder / f"output{i}.bin"
            plan.append((path, element.dtype, shape))
        else:
            path = folder / f"output{i}.npy"
            plan.append((path, element.dtype, None))
        flags.append(f"--output=@{path}")
    return flags, plan


def _read_output(index: int, path: Path, dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
    try:
        if path.suffix == ".bin":
            assert dtype is not None and shape is not None  # raw bytes: planned with both
            data = path.read_bytes()
            arr = np.frombuffer(data, dtype=np.uint8)
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if arr.size != need:
                raise TestError(
                    f"output {index}: {arr.size} bytes written, {need} expected for {shape} {dtype}"
                )
            return arr.view(dtype).reshape(shape).copy()
        arr = load_npy(path)
    except FileNotFoundError:
        raise TestError(f"output {index} was not written by the emulated run") from None
    except (OSError, ValueError) as exc:
        raise TestError(f"cannot read output {index}: {exc}") from None
    if dtype is not None and arr.dtype != dtype and arr.dtype.itemsize == dtype.itemsize:
        arr = arr.view(dtype)  # the declared type wins (i1 as bool, si32 as i32)
    if shape == () and arr.shape != ():
        arr = arr.reshape(())
    return arr


def _error_line(text: str, lane: Lane, returncode: int) -> str:
    """The runtime's own message from the tool's output (``UNIMPLEMENTED; ...``)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("EXEC @")]
    status = [ln for ln in lines if re.search(r"\b[A-Z_]{4,}; ", ln)]
    if not status and not lines:
        return (
            f"{shlex.join(lane.command())} exited with code {returncode} and printed nothing "
            "(is the emulator command right?)"
        )
    return runtime_error_text(Exception((status or lines)[-1]))


def call(
    lane: Lane,
    spec: TestSpec,
    module_path: Path,
    inputs: list[np.ndarray],
    read_outputs: bool = True,
    params_dir: Path | None = None,
    timeout: float | None = None,
) -> tuple[list[np.ndarray], float]:
    """Call ``spec.function`` under the lane's emulator; (outputs, wall ms of the tool).

    Raises TestError for a problem with the test, EmulatedFault for a crash or a hang.
    """
    module = load_module(module_path, vm_instance(), spec.module)
    callee = find_function(module, spec, len(inputs))
    del module
    cconv = callee.cconv
    arg_codes = cconv.args if cconv is not None and cconv.is_exact else None
    result_codes = cconv.results if cconv is not None and cconv.is_exact else None
    inputs = typed_inputs(inputs, callee.declaration)
    device = canonical_device(spec.device)
    doing = f"calling {callee.name} on {device}@{lane.arch}"
    with worker_scratch() as tmp:  # a worker killed at its time limit: its fork server removes it
        folder = Path(tmp)
        argv = [*lane.command(), f"--device={device}", f"--module={module_path}", f"--function={callee.name}"]
        argv += [
            _input_flag(folder, i, arg_codes[i] if arg_codes else "r", arr) for i, arr in enumerate(inputs)
        ]
        if params_dir is not None:
            argv += [
                f"--parameters={spec.parameter_scope}={(params_dir / p).resolve()}" for p in spec.parameters
            ]
        flags, plan = _output_plan(folder, result_codes, callee.declaration, read_outputs)
        argv += flags
        limit = (spec.timeout or 300.0) + _BACKSTOP_S if timeout is None else timeout
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise TestError(f"cannot start the {lane.arch} emulator {lane.emulator[0]}: {exc}") from None
        try:
            said, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            said, _ = proc.communicate()
            raise EmulatedFault(
                "timeout", f"no answer after {limit:g} s while {doing}; emulator stopped", said[-4000:]
            ) from None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if proc.returncode < 0:
            last = [ln.strip() for ln in said.splitlines() if ln.strip() and not ln.startswith("EXEC @")]
            tail = f"; last output: {last[-1][:200]}" if last else ""
            raise EmulatedFault(
                "crashed",
                f"{death_reason(proc.returncode)} while {doing} under {lane.emulator[0]}{tail}",
                said[-4000:],
            )
        if proc.returncode != 0:
            raise TestError(f"calling {callee.name!r} failed: {_error_line(said, lane, proc.returncode)}")
        outputs = [_read_output(i, *entry) for i, entry in enumerate(plan)]
    return outputs, elapsed_ms

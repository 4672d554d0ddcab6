"""Run one test: load the module on its device, call the function, compare.

Uses the low-level runtime API (VmContext.invoke with buffer views) rather than
``FunctionInvoker``/``DeviceArray``: in iree-base-runtime 3.13 ``DeviceArray``
reads results back through host-pointer import, which fails on Vulkan drivers
that require page-aligned imports (lavapipe), and it warns under numpy 2. Each
test gets a fresh VmContext (module globals never leak between tests; creation
costs ~0.1 ms on CPU, ~7 ms on Vulkan) on the pool's shared device.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import iree.runtime as ireert
import numpy as np

from iree_build.errors import IreeBuildError
from iree_build.testing import emulated_run
from iree_build.testing.check_module import CheckLog, CheckModules, create_check_module
from iree_build.testing.check_runner import CaseProgress, check_cases
from iree_build.testing.check_verdict import expect_failure, judge_cases
from iree_build.testing.compare import judge_outputs
from iree_build.testing.devices import (
    DevicePool,
    DeviceUnavailable,
    default_pool,
    runtime_error_text,
)
from iree_build.testing.emulation import lane_for
from iree_build.testing.host_arrays import to_host
from iree_build.testing.manifest import TestSpec, failed_build_note, resolve
from iree_build.testing.results import TestResult
from iree_build.testing.signature import FileHasher
from iree_build.testing.vm import (
    TestError,
    context_error,
    find_function,
    load_module,
    scalar_argument,
    typed_inputs,
)
from iree_build.values.arrays import c_order, load_npy
from iree_build.values.element_types import hal_element_type, storage_view

# VM calling-convention codes for scalar arguments/results.
_SCALAR_DTYPES = {"i": np.int32, "I": np.int64, "f": np.float32, "F": np.float64}


def load_array(path: str | os.PathLike[str], what: str, data: bytes | None = None) -> np.ndarray:
    """Load a ``.npy`` without pickle, in native byte order (``data``: its bytes, already read)."""
    try:
        arr = load_npy(path, data)
    except FileNotFoundError:
        raise TestError(f"{what} {os.path.basename(path)!r} not found (build it first)") from None
    except (OSError, ValueError) as exc:
        raise TestError(f"cannot read {what} {os.path.basename(path)!r}: {exc}") from None
    if not isinstance(arr, np.ndarray):
        if hasattr(arr, "close"):
            arr.close()
        raise TestError(f"{what} {os.path.basename(path)!r} is not a single .npy array")
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _push_argument(
    args: ireert.VmVariantList, device: ireert.HalDevice, index: int, code: str, arr: np.ndarray
) -> None:
    if code in _SCALAR_DTYPES:
        value = scalar_argument(index, code, arr)
        if code in "iI":
            args.push_int(int(value))
        else:
            args.push_float(float(value))
        return
    hal_name = hal_element_type(arr.dtype)
    if hal_name is None:
        raise TestError(f"input {index} has dtype {arr.dtype}, which the runtime cannot take")
    view = device.allocator.allocate_buffer_copy(
        memory_type=ireert.MemoryType.DEVICE_LOCAL,
        allowed_usage=ireert.BufferUsage.DEFAULT,
        device=device,
        buffer=storage_view(c_order(arr)),  # c_order keeps a 0-d array 0-d
        element_type=getattr(ireert.HalElementType, hal_name),
    )
    args.push_ref(view)


def _read_results(
    device: ireert.HalDevice, rets: ireert.VmVariantList, codes: str | None
) -> list[np.ndarray]:
    outputs: list[np.ndarray] = []
    for i in range(len(rets)):
        code = codes[i] if codes is not None and i < len(codes) else "?"
        if code in _SCALAR_DTYPES:
            outputs.append(np.asarray(rets.get_variant(i), dtype=_SCALAR_DTYPES[code]))
            continue
        try:
            ref = rets.get_as_ref(i) if code in "r?" else None
        except Exception:  # a value, not a ref (only when the cconv is unknown)
            ref = None
        if ref is not None and ref.isinstance(ireert.HalBufferView):
            outputs.append(to_host(device, ref.deref(ireert.HalBufferView)))
        elif code == "?" and ref is None:
            outputs.append(np.asarray(rets.get_variant(i)))
        else:
            raise TestError(f"output {i} is not a tensor or scalar; it cannot be compared")
    return outputs


def load_parameters(base_dir: Path, spec: TestSpec) -> ireert.ParameterIndex:
    """The parameter archives a module reads at run time, in one index.

    The format follows the file name (``.irpa``, ``.safetensors``, ``.gguf``).
    """
    index = ireert.ParameterIndex()
    for rel in spec.parameters:
        path = resolve(base_dir, rel)
        try:
            index.load(str(path))
        except Exception as exc:
            raise TestError(f"cannot load parameters {rel!r}: {runtime_error_text(exc)}") from None
    return index


def invoke(
    pool: DevicePool,
    spec: TestSpec,
    module_path: str | os.PathLike[str],
    inputs: list[np.ndarray],
    read_outputs: bool = True,
    params_dir: Path | None = None,
    module_data: bytes | None = None,
    checks: CheckModules | None = None,
) -> tuple[list[np.ndarray], float]:
    """Call ``spec.function`` on ``spec.device``; returns (outputs, call time in ms).

    Must run inside ``pool.run_on(spec.device, ...)`` (GPU thread affinity).
    ``module_data``: the module file's bytes, already read; ``checks``: the run's
    ``check`` modules (else one is made for this call).

    Everything that holds device memory stays local to this function and is
    dropped before it returns (the device must outlive its buffers).
    """
    try:
        device = pool.device(spec.device)
    except DeviceUnavailable as exc:
        raise TestError(str(exc)) from None
    instance = pool.instance
    module = load_module(module_path, instance, spec.module, module_data)
    callee = find_function(module, spec, len(inputs))
    name, function, cconv = callee.name, callee.function, callee.cconv
    codes = cconv.args if cconv is not None and cconv.is_exact else None
    inputs = typed_inputs(inputs, callee.declaration)
    args = rets = hal = context = modules = index = log = None
    try:
        args = ireert.VmVariantList(len(inputs))
        for i, arr in enumerate(inputs):
            _push_argument(args, device, i, codes[i] if codes is not None else "r", arr)
        hal = ireert.create_hal_module(instance, device)
        # A module that imports `check` is never run without it: the runtime would
        # treat the imports as optional and a failing check would pass silently.
        log = CheckLog(name)
        modules = [] if checks is not None else [create_check_module(device, log)]
        if params_dir is not None and spec.parameters:
            index = load_parameters(params_dir, spec)
            modules.append(
                ireert.create_io_parameters_module(
                    instance, index.create_provider(scope=spec.parameter_scope)
                )
            )
        try:
            if checks is not None:
                context = checks.context(instance, device, log, [hal], [*modules, module])
            else:
                context = ireert.VmContext(instance, [hal, *modules, module])
        except Exception as exc:
            raise TestError(context_error(exc, spec.module, spec.device)) from None
        n_results = len(cconv.results) if cconv is not None and cconv.is_exact else 8
        rets = ireert.VmVariantList(n_results)
        start = time.perf_counter()
        try:
            context.invoke(function, args, rets)
        except Exception as exc:
            raise TestError(f"calling {name!r} failed: {runtime_error_text(exc)}") from None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if not log.ok:
            raise TestError(log.summary() if log.failures else f"{name}: {log.error}")
        result_codes = cconv.results if cconv is not None and cconv.is_exact else None
        outputs = _read_results(device, rets, result_codes) if read_outputs else []
        return outputs, elapsed_ms
    finally:
        del rets, args, context, hal, modules, index, log  # buffers go before anything else


def skip_reason(spec: TestSpec, pool: DevicePool) -> str | None:
    """Why this test cannot run here (declared skip, absent device, foreign CPU code and no
    emulated lane for it), or None."""
    if spec.skip:
        return spec.skip
    status = pool.status(spec.device)
    if not status.present:
        return status.reason
    # CPU code for another architecture: its emulated lane, or why there is none
    return lane_for(spec.module, spec.arch, spec.device, spec.emulator, spec.kind)[1] or None


def run_test(
    spec: TestSpec,
    base_dir: str | os.PathLike[str],
    pool: DevicePool | None = None,
    signature: str = "",
    functions: Sequence[str] | None = None,
    progress: CaseProgress | None = None,
    files: FileHasher | None = None,
    data: dict[str, bytes] | None = None,
    checks: CheckModules | None = None,
) -> TestResult:
    """Run one test in this process and return its result; never raises for test problems.

    ``skipped`` if the device is absent (message = reason), ``failed`` on a
    mismatch, ``error`` if the module/function/inputs are unusable. A check
    file runs ``functions`` (default: all its cases), telling ``progress``.
    A crash here takes the process with it: the build runs this inside a run
    worker (:mod:`iree_build.testing.run_pool`). ``files``: the run's paths, already
    checked (:meth:`FileHasher.resolve`); ``data``: files' bytes its signature read;
    ``checks``: the run's ``check`` modules, one per device.
    """
    return expect_failure(
        spec, _run_test(spec, base_dir, pool, signature, functions, progress, files, data or {}, checks)
    )


def _run_test(
    spec: TestSpec,
    base_dir: str | os.PathLike[str],
    pool: DevicePool | None,
    signature: str,
    functions: Sequence[str] | None,
    progress: CaseProgress | None,
    files: FileHasher | None,
    data: dict[str, bytes],
    checks: CheckModules | None,
) -> TestResult:
    pool = pool if pool is not None else default_pool()
    where = files.where if files is not None else resolve

    def load(rel: str, what: str) -> np.ndarray:
        path = where(base_dir, rel)
        return load_array(path, what, data.get(os.fspath(path)))

    def result(status: str, message: str = "", time_ms: float = 0.0) -> TestResult:
        return TestResult(
            name=spec.name,
            status=status,
            message=message,
            time_ms=time_ms,
            device=spec.device,
            signature=signature,
            base=spec.base,
        )

    reason = skip_reason(spec, pool)
    if spec.kind == "check":
        cases = check_cases(spec, base_dir, pool, signature, functions, progress, reason)
        return judge_cases(spec, cases, signature)
    if reason is not None:
        return result("skipped", reason)
    module = where(base_dir, spec.module)
    not_built = "" if files is not None and files.seen(module) else failed_build_note(module)
    if not_built:
        return result("error", f"{spec.name}: the module did not build: {not_built}")
    try:
        inputs = [load(p, f"input {i}") for i, p in enumerate(spec.inputs)]
        expected = [load(p, f"expected output {i}") for i, p in enumerate(spec.expected)]
        lane, _ = lane_for(spec.module, spec.arch, spec.device, spec.emulator, spec.kind)
        if lane is not None:  # another architecture's code, under its emulator
            outputs, time_ms = emulated_run.call(
                lane, spec, Path(module), inputs, bool(spec.expected), Path(base_dir)
            )
        else:
            outputs, time_ms = pool.run_on(
                spec.device,
                invoke,
                pool,
                spec,
                module,
                inputs,
                bool(spec.expected),
                Path(base_dir) if spec.parameters else None,  # only parameters are read there
                files.retained(module) if files is not None else None,
                checks,
            )
        mismatch, closeness = (
            judge_outputs(spec.name, outputs, expected, spec.rtol, spec.atol, spec.compare)
            if spec.expected
            else (None, [])
        )
    except TestError as exc:
        return result("error", f"{spec.name}: {exc}")
    except IreeBuildError as exc:  # a path that leads out of the build folder through a link
        return result("error", f"{spec.name}: {exc.message}")
    except emulated_run.EmulatedFault as exc:  # the emulated program crashed or hung
        return TestResult(
            name=spec.name,
            status=exc.status,
            message=f"{spec.name}: {exc.message}",
            device=spec.device,
            signature=signature,
            base=spec.base,
            details=exc.details,
        )
    except Exception as exc:  # a bug or an odd runtime failure: still one line
        return result("error", f"{spec.name}: {type(exc).__name__}: {runtime_error_text(exc)}")
    if mismatch is not None:
        return result("failed", mismatch, time_ms)
    passed = result("passed", time_ms=time_ms)
    if spec.expected:
        passed.margins = closeness
    return passed

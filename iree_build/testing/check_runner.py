"""Run a compiled IREE check-test file: one TestResult per exported test function.

A check file (IREE's ``iree_check_single_backend_test_suite`` style) is a module
of exported no-argument functions that call ``check.expect_*``. Each function
is one case, run in its own fresh VmContext ``[hal, check, module]`` so module
globals and check logs never leak between cases. The Python ``check`` module
is always registered: without it the optional imports stay unresolved and
failing checks pass silently (what ``iree-run-module`` does).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import iree.runtime as ireert

from iree_build.testing.check_module import CheckLog, create_check_module
from iree_build.testing.check_verdict import case_name
from iree_build.testing.devices import (
    DevicePool,
    DeviceStatus,
    DeviceUnavailable,
    default_pool,
    runtime_error_text,
    vm_instance,
)
from iree_build.testing.manifest import TestSpec, resolve
from iree_build.testing.results import FAILING, TestResult
from iree_build.testing.vm import TestError, calling_convention, context_error, load_module


def _is_case(module: ireert.VmModule, name: str) -> bool:
    if name.startswith("__"):  # __init, __deinit and other compiler internals
        return False
    function = module.lookup_function(name)
    if function is None:
        return False
    if function.reflection.get("iree.abi.declaration", "").startswith("async"):
        return False
    cconv = calling_convention(function)
    return cconv is not None and cconv.args == "" and cconv.results == ""


def module_check_functions(module: ireert.VmModule) -> list[str]:
    """The test cases of a loaded module, in export order."""
    return [name for name in module.function_names if _is_case(module, name)]


def check_functions(
    module_path: str | os.PathLike[str], instance: ireert.VmInstance | None = None
) -> list[str]:
    """Exported functions taking no arguments and returning nothing (the cases).

    Raises TestError if the module cannot be loaded. Needs no device.
    """
    module = load_module(module_path, instance if instance is not None else vm_instance())
    return module_check_functions(module)


@dataclass(frozen=True)
class CaseOutcome:
    """Status, one-line message (without the test name) and call time of one case."""

    status: str
    message: str = ""
    time_ms: float = 0.0


def run_case(
    pool: DevicePool, device: str, module: ireert.VmModule, module_name: str, function: str
) -> CaseOutcome:
    """Call one check function in a fresh context and judge it by its checks.

    Must run inside ``pool.run_on(device, ...)``. Contexts, the check module
    and every buffer are dropped before returning (the device outlives them).
    """
    try:
        hal_device = pool.device(device)
    except DeviceUnavailable as exc:
        return CaseOutcome("error", f"{function}: {exc}")
    vm_function = module.lookup_function(function)
    if vm_function is None or not _is_case(module, function):
        return CaseOutcome(
            "error",
            f"{function}: not a check function (exported, no arguments, no results) of {module_name!r}",
        )
    instance = pool.instance
    log = CheckLog(function)
    check = hal = context = None
    try:
        check = create_check_module(hal_device, log)
        hal = ireert.create_hal_module(instance, hal_device)
        try:
            context = ireert.VmContext(instance, [hal, check, module])
        except Exception as exc:
            return CaseOutcome("error", f"{function}: {context_error(exc, module_name, device)}")
        start = time.perf_counter()
        try:
            context.invoke(vm_function, ireert.VmVariantList(0), ireert.VmVariantList(0))
        except Exception as exc:
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            if log.error is not None:
                why = f"{log.error.check} could not be evaluated: {log.error.message}"
            else:
                why = f"call failed: {runtime_error_text(exc)}"
            earlier = f" (after: {log.summary()})" if log.failures else ""
            return CaseOutcome("error", f"{function}: {why}{earlier}", elapsed_ms)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
    finally:
        del context, hal, check
    if log.failures:
        return CaseOutcome("failed", log.summary(), elapsed_ms)
    return CaseOutcome("passed", "", elapsed_ms)


def run_check_file(
    module_path: str | os.PathLike[str],
    device: str,
    pool: DevicePool | None = None,
    name_prefix: str | None = None,
    functions: Sequence[str] | None = None,
    signature: str = "",
    progress: CaseProgress | None = None,
    skip: str | None = None,
) -> list[TestResult]:
    """Run every case (or ``functions``) of a compiled check file on ``device``.

    Never raises for test problems. Device absent: each case ``skipped`` with
    the reason. Module unreadable: one ``error`` result named
    ``name_prefix[device]`` (``skipped`` if the device is absent too).
    ``name_prefix`` defaults to the module's file name. ``progress`` hears of
    each case before and after it runs, so that a process watching this one
    knows which case was running if it dies. ``skip``: why none may run (each
    case is then ``skipped`` with it; listing the cases needs no device).
    """
    pool = pool if pool is not None else default_pool()
    path = Path(module_path)
    prefix = name_prefix if name_prefix is not None else path.name
    status = pool.status(device)
    if skip is not None:
        status = DeviceStatus(False, skip)

    def result(name: str, outcome: CaseOutcome) -> TestResult:
        message = outcome.message
        if outcome.status in FAILING:  # as run_test: the name leads
            message = f"{name}: {message}"
        return TestResult(
            name=name,
            status=outcome.status,
            message=message,
            time_ms=outcome.time_ms,
            device=device,
            signature=signature,
        )

    try:
        module = load_module(path, pool.instance)
    except TestError as exc:
        whole = f"{prefix}[{device}]"
        if not status.present:
            return [result(whole, CaseOutcome("skipped", status.reason))]
        return [result(whole, CaseOutcome("error", str(exc)))]
    cases = list(functions) if functions is not None else module_check_functions(module)
    if progress is not None:
        progress.found(cases)
    results = []
    for function in cases:
        name = case_name(prefix, function, device)
        if progress is not None:
            progress.started(function)
        if not status.present:
            outcome = CaseOutcome("skipped", status.reason)
        else:
            try:
                outcome = pool.run_on(device, run_case, pool, device, module, path.name, function)
            except Exception as exc:  # a bug or an odd runtime failure: still one line
                outcome = CaseOutcome("error", f"{function}: {type(exc).__name__}: {runtime_error_text(exc)}")
        results.append(result(name, outcome))
        if progress is not None:
            progress.finished(results[-1])
    return results


class CaseProgress(Protocol):
    """Who hears of a check file's cases as they run (the run worker's reply channel)."""

    def found(self, functions: list[str]) -> None: ...
    def started(self, function: str) -> None: ...
    def finished(self, result: TestResult) -> None: ...


def check_cases(
    spec: TestSpec,
    base_dir: str | os.PathLike[str],
    pool: DevicePool,
    signature: str = "",
    functions: Sequence[str] | None = None,
    progress: CaseProgress | None = None,
    skip: str | None = None,
) -> list[TestResult]:
    """The cases of one manifest entry of kind "check", named after its suite file."""
    return run_check_file(
        resolve(base_dir, spec.module),
        spec.device,
        pool,
        name_prefix=spec.base,
        functions=functions,
        signature=signature,
        progress=progress,
        skip=skip,
    )

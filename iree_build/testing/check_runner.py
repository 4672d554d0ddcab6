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

import iree.runtime as ireert

from iree_build.testing.check_module import CheckLog, create_check_module
from iree_build.testing.devices import (
    DevicePool,
    DeviceUnavailable,
    default_pool,
    runtime_error_text,
    vm_instance,
)
from iree_build.testing.execute import TestError, calling_convention, context_error
from iree_build.testing.manifest import TestSpec, resolve
from iree_build.testing.results import TestResult


def load_module(
    module_path: str | os.PathLike[str], instance: ireert.VmInstance
) -> ireert.VmModule:
    """Map the ``.vmfb``; raises TestError with a one-line reason."""
    path = Path(module_path)
    try:
        return ireert.VmModule.mmap(instance, str(path))
    except FileNotFoundError:
        raise TestError(f"module {path.name!r} not found (build it first)") from None
    except Exception as exc:
        raise TestError(f"cannot load module {path.name!r}: {runtime_error_text(exc)}") from None


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
            "error", f"{function}: not a check function (exported, no arguments, "
            f"no results) of {module_name!r}"
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


def case_name(name_prefix: str, function: str, device: str) -> str:
    """``add.mlir::test_add_f32[local-task]``."""
    return f"{name_prefix}::{function}[{device}]"


def run_check_file(
    module_path: str | os.PathLike[str],
    device: str,
    pool: DevicePool | None = None,
    name_prefix: str | None = None,
    functions: Sequence[str] | None = None,
    signature: str = "",
) -> list[TestResult]:
    """Run every case (or ``functions``) of a compiled check file on ``device``.

    Never raises for test problems. Device absent: each case ``skipped`` with
    the reason. Module unreadable: one ``error`` result named
    ``name_prefix[device]`` (``skipped`` if the device is absent too).
    ``name_prefix`` defaults to the module's file name.
    """
    pool = pool if pool is not None else default_pool()
    path = Path(module_path)
    prefix = name_prefix if name_prefix is not None else path.name
    status = pool.status(device)

    def result(name: str, outcome: CaseOutcome) -> TestResult:
        message = outcome.message
        if outcome.status in ("failed", "error"):  # as run_test: the name leads
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
    results = []
    for function in cases:
        name = case_name(prefix, function, device)
        if not status.present:
            outcome = CaseOutcome("skipped", status.reason)
        else:
            try:
                outcome = pool.run_on(device, run_case, pool, device, module, path.name, function)
            except Exception as exc:  # a bug or an odd runtime failure: still one line
                outcome = CaseOutcome(
                    "error", f"{function}: {type(exc).__name__}: {runtime_error_text(exc)}"
                )
        results.append(result(name, outcome))
    return results


def judge_check_file(spec: TestSpec, base_dir: str | os.PathLike[str], pool: DevicePool,
                     signature: str = "") -> TestResult:
    """One manifest entry of kind "check": every case of the file, with the strict xfail rule.

    The returned result's ``cases`` are what gets printed and counted; its own
    status is failed when any case failed unexpectedly, or when a file declared
    as an expected failure passed (IREE's suites keep such lists honest).
    """
    label = spec.name[spec.name.index("[") + 1 : -1] if spec.name.endswith("]") else spec.device
    cases = run_check_file(resolve(base_dir, spec.module), spec.device, pool,
                           name_prefix=spec.base, signature=signature)
    for case in cases:
        old, case.name = case.name, f"{case.name.rsplit('[', 1)[0]}[{label}]"
        if case.message.startswith(old + ": "):
            case.message = f"{case.name}: {case.message[len(old) + 2:]}"
        case.base = spec.base
    failed = [c for c in cases if c.status in ("failed", "error")]
    if spec.xfail:
        if failed:
            for case in failed:
                case.status, case.expected_failure = "passed", True
                case.message = f"expected failure ({spec.xfail}): {case.message}"
            failed = []
        elif any(c.status == "passed" for c in cases):
            cases.append(TestResult(
                name=spec.name, status="failed", device=spec.device, signature=signature,
                base=spec.base,
                message=f"{spec.name}: passed, but is declared as an expected failure "
                        f"({spec.xfail}); remove it from the xfail list"))
            failed = cases[-1:]
    if failed:
        status = "failed"
    elif cases and all(c.status == "skipped" for c in cases):
        status = "skipped"
    else:
        status = "passed"
    return TestResult(
        name=spec.name, status=status, message=failed[0].message if failed else "",
        time_ms=sum(c.time_ms for c in cases), device=spec.device, signature=signature,
        base=spec.base, cases=cases,
    )

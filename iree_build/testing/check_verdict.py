"""A check file's verdict from its cases: the strict expected-failure rule, no runtime needed.

The cases may come from one worker process or from several (a case that
crashed its worker is recorded here as ``crashed`` and the rest ran in a new
one), so judging is kept apart from running.
"""

from __future__ import annotations

from iree_build.testing.manifest import TestSpec
from iree_build.testing.results import FAILING, TestResult


def case_name(name_prefix: str, function: str, device: str) -> str:
    """``suite/add.mlir::test_add_f32[local-task]``."""
    return f"{name_prefix}::{function}[{device}]"


def judge_cases(spec: TestSpec, cases: list[TestResult], signature: str = "") -> TestResult:
    """One manifest entry of kind "check": every case of the file, with the strict xfail rule.

    The returned result's ``cases`` are what gets printed and counted; its own
    status is failed when any case failed unexpectedly, or when a file declared
    as an expected failure passed (IREE's suites keep such lists honest).
    """
    label = spec.name[spec.name.rindex("[") + 1 : -1] if spec.name.endswith("]") else spec.device
    for case in cases:
        old, case.name = case.name, f"{case.name.rsplit('[', 1)[0]}[{label}]"
        if case.message.startswith(old + ": "):
            case.message = f"{case.name}: {case.message[len(old) + 2 :]}"
        case.base = spec.base
    failed = [c for c in cases if c.status in FAILING]
    if spec.xfail:
        if failed:
            for case in failed:
                case.status, case.expected_failure = "passed", True
                case.message = f"expected failure ({spec.xfail}): {case.message}"
            failed = []
        elif any(c.status == "passed" for c in cases):
            cases.append(
                TestResult(
                    name=spec.name,
                    status="failed",
                    device=spec.device,
                    signature=signature,
                    base=spec.base,
                    message=f"{spec.name}: passed, but is declared as an expected failure "
                    f"({spec.xfail}); remove it from the xfail list",
                )
            )
            failed = cases[-1:]
    if failed:
        status = "failed"
    elif cases and all(c.status == "skipped" for c in cases):
        status = "skipped"
    else:
        status = "passed"
    return TestResult(
        name=spec.name,
        status=status,
        message=failed[0].message if failed else "",
        time_ms=sum(c.time_ms for c in cases),
        device=spec.device,
        signature=signature,
        base=spec.base,
        cases=cases,
    )


def expect_failure(spec: TestSpec, result: TestResult) -> TestResult:
    """The strict xfail rule for a plain test: failing (a crash, a hang too) is passing,
    passing is failing. Check files apply it per case (:func:`judge_cases`)."""
    if not spec.xfail or spec.kind == "check" or result.status == "skipped":
        return result
    if result.status in FAILING:
        result.status, result.expected_failure = "passed", True
        result.message = f"expected failure ({spec.xfail}): {result.message}"
    else:
        result.status = "failed"
        result.message = (
            f"{spec.name}: passed, but is declared as an expected failure "
            f"({spec.xfail}); remove it from the xfail list"
        )
    return result

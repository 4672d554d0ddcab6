"""The closing summary of a run: what broke, grouped by cause, before the counts.

With ``-k`` over a large suite the failures are scattered through the log; like
pytest's "short test summary" this lists them once more at the end, grouped by
what went wrong, a few names each. The counts line stays the last line (CI
tools and this project's tests read it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iree_build.testing.results import FAILING, TestResult, flatten
from iree_build.util.printable import one_line

# Causes in the order they are listed; the first that matches a failure names it.
CAUSES = (
    "module not built",
    "device missing",
    "crash",
    "timeout",
    "shape/dtype mismatch",
    "value mismatch",
    "expected failure passed",
    "other error",
)
SHOWN = 5  # names listed per cause


def cause(result: TestResult) -> str:
    """Why a failing result failed, as one of :data:`CAUSES`."""
    message = result.message
    if "did not build" in message or "failed to build" in message or "(build it first)" in message:
        return "module not built"
    if message.startswith("device required: "):
        return "device missing"
    if result.status == "crashed":
        return "crash"
    if result.status == "timeout":
        return "timeout"
    if "declared as an expected failure" in message:
        return "expected failure passed"
    if "shape mismatch" in message or "dtype mismatch" in message or "shape and dtype" in message:
        return "shape/dtype mismatch"
    if "mismatch" in message or "returned" in message and "output(s)" in message:
        return "value mismatch"
    if result.status == "failed" and "check" in message:
        return "value mismatch"
    return "other error"


def grouped(results: Iterable[TestResult]) -> dict[str, list[TestResult]]:
    """Failing results by cause, causes in :data:`CAUSES` order."""
    groups: dict[str, list[TestResult]] = {c: [] for c in CAUSES}
    for r in flatten(results):
        if r.status in FAILING:
            groups[cause(r)].append(r)
    return {c: rs for c, rs in groups.items() if rs}


def failure_lines(
    results: Sequence[TestResult], failed_steps: Sequence[tuple[str, str, str]] = ()
) -> list[str]:
    """The summary's lines: failed compiles (module, first error line, where declared),
    then failed tests by cause; empty when nothing failed."""
    lines: list[str] = []
    if failed_steps:
        lines.append(f"Failed compiles ({len(failed_steps)}):")
        for module, message, where in failed_steps[:20]:
            line = f"  {module}: {message}" + (f" (declared at {where})" if where else "")
            lines.append(one_line(line))  # a compiler's message or a quoted MLIR name: one line
        if len(failed_steps) > 20:
            lines.append(f"  ... and {len(failed_steps) - 20} more")
    groups = grouped(results)
    if groups:
        total = sum(len(rs) for rs in groups.values())
        lines.append(f"Failed tests by cause ({total}):")
        for name, rs in groups.items():
            names = one_line(", ".join(r.name for r in rs[:SHOWN]))  # a check case's quoted MLIR name
            more = f", ... +{len(rs) - SHOWN}" if len(rs) > SHOWN else ""
            lines.append(f"  {name} ({len(rs)}): {names}{more}")
    return lines

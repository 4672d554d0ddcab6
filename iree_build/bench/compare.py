"""Regressions: this run against a saved baseline.

A benchmark is compared with the same benchmark (name and device) measured on
the same hardware (:mod:`.identity`). It is a regression when its median is
slower than the baseline's by more than its threshold (default 10%) *and* by
more than the measured noise, the sum of both runs' interquartile ranges: a
change smaller than the two runs' own scatter is not evidence of anything, and
the IQR, unlike the standard deviation, is not blown up by one disturbed
repetition. The same rule the other way round reports it as faster.
"""

from __future__ import annotations

from typing import Any

from iree_build.bench.identity import machine_key
from iree_build.bench.record import BenchResult
from iree_build.bench.stats import fmt_ms


def find_baseline(
    baseline: dict[str, Any], result: BenchResult, machine: dict[str, Any]
) -> tuple[BenchResult | None, str]:
    """The baseline's entry for ``result`` on this hardware, or None and why not."""
    same_name = [
        b for b in baseline["results"] if b.name == result.name and b.status == "measured" and b.stats
    ]
    if not same_name:
        return None, "not in the baseline"
    if machine_key(baseline["machine"]) != machine_key(machine):
        return None, f"baseline measured on other hardware ({machine_key(baseline['machine'])})"
    for entry in same_name:
        if entry.hardware == result.hardware:
            return entry, ""
    return None, f"baseline measured on other hardware ({same_name[0].hardware})"


def compare(result: BenchResult, baseline: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    """Fill ``result.comparison`` (and return it): verdict, medians, change, limits."""
    entry, why = find_baseline(baseline, result, machine)
    if entry is None or result.stats is None:
        result.comparison = {"verdict": "no-baseline", "reason": why or "not measured"}
        return result.comparison
    new, old = result.stats, entry.stats
    assert old is not None
    delta = new.median_ms - old.median_ms
    noise = new.iqr_ms + old.iqr_ms
    limit = max(result.threshold * old.median_ms, noise)
    verdict = "regression" if delta > limit else "faster" if -delta > limit else "unchanged"
    result.comparison = {
        "verdict": verdict,
        "median_ms": new.median_ms,
        "baseline_median_ms": old.median_ms,
        "change": delta / old.median_ms,
        "threshold": result.threshold,
        "noise": noise / old.median_ms,
        "baseline_run": baseline.get("run_id", ""),
        "baseline_module_sha256": entry.module_sha256,
    }
    return result.comparison


def comparison_line(result: BenchResult) -> str | None:
    """``REGRESSION name: median A ms, baseline B ms (+X%; threshold T%, noise N%)``."""
    c = result.comparison
    if not c:
        return None
    if c["verdict"] == "no-baseline":
        return f"NO BASELINE {result.name} ({c['reason']})"
    word = {"regression": "REGRESSION", "faster": "FASTER", "unchanged": "UNCHANGED"}[c["verdict"]]
    return (
        f"{word} {result.name}: median {fmt_ms(c['median_ms'])}, baseline "
        f"{fmt_ms(c['baseline_median_ms'])} ({c['change'] * 100:+.1f}%; threshold "
        f"{c['threshold'] * 100:g}%, noise {c['noise'] * 100:.1f}%)"
    )


def is_regression(result: BenchResult) -> bool:
    if not result.comparison:
        return False
    return result.comparison["verdict"] == "regression"

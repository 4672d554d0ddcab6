"""Statistics of one benchmark's repetitions: median, spread, throughput.

Each repetition is Google Benchmark's mean time per call over that
repetition's iterations. The median and the interquartile range are robust to
one disturbed repetition (a neighbour's compile on a shared machine), so they
are what lines, plots and regression checks use; the standard deviation is
printed beside them and kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Stats:
    """Times per call in milliseconds, over ``n`` repetitions."""

    n: int
    median_ms: float
    mean_ms: float
    stddev_ms: float  # sample standard deviation (0 for one repetition)
    iqr_ms: float  # q3_ms - q1_ms (0 for one repetition)
    min_ms: float
    max_ms: float
    q1_ms: float  # 25th percentile
    q3_ms: float  # 75th percentile

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(times_ms: Sequence[float]) -> Stats:
    """The statistics of per-repetition times; at least one time is needed."""
    if not times_ms:
        raise ValueError("no repetitions to summarize")
    values = sorted(float(t) for t in times_ms)
    n = len(values)
    if n > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        stddev = statistics.stdev(values)
    else:
        q1 = q3 = values[0]
        stddev = 0.0
    return Stats(
        n=n,
        median_ms=statistics.median(values),
        mean_ms=statistics.fmean(values),
        stddev_ms=stddev,
        iqr_ms=q3 - q1,
        min_ms=values[0],
        max_ms=values[-1],
        q1_ms=q1,
        q3_ms=q3,
    )


def per_second(amount: float | None, median_ms: float) -> float | None:
    """``amount`` (FLOPs or bytes of one call) per second, in units of 1e9 (G)."""
    if amount is None or median_ms <= 0:
        return None
    return amount / (median_ms / 1e3) / 1e9


def fmt_ms(ms: float) -> str:
    """A time for people: ``0.1364 ms``, ``41.59 s`` (never ``4.159e+04 ms``)."""
    return f"{ms / 1e3:.4g} s" if ms >= 1e3 else f"{ms:.4g} ms"

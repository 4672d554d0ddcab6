"""Keep a run's results and write the page: one call for SCons, the standalone runner and benchmarks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iree_build.testing.results import TestResult

from .history import HISTORY_NAME, load, record_run
from .page import write_page


def _bench_run(base: Path) -> dict[str, Any] | None:
    from iree_build.bench.record import RUN_NAME, load_run

    if not (base / RUN_NAME).is_file():
        return None
    try:
        return load_run(base / RUN_NAME)
    except Exception:  # a bad run file has its own one-line report where it is used
        return None


def publish_tests(base_dir: str | os.PathLike[str], results: Sequence[TestResult]) -> Path:
    """This run's tests into the history, then the page (with the latest benchmark run)."""
    base = Path(base_dir)
    runs = record_run(base, results)
    return write_page(base, runs, _bench_run(base))


def publish_benchmarks(base_dir: str | os.PathLike[str]) -> Path:
    """The page after a benchmark run (the tests as their last run left them)."""
    base = Path(base_dir)
    return write_page(base, load(base / HISTORY_NAME), _bench_run(base))

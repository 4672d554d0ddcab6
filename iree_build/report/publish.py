"""Keep a run's results and write the page: one call for SCons, the standalone runner and benchmarks."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iree_build.testing.results import TestResult

from .history import HISTORY_NAME, kept_lines, load, record_run
from .page import write_page


def _bench_run(base: Path) -> dict[str, Any] | None:
    from iree_build.bench.record import RUN_NAME, load_run

    if not (base / RUN_NAME).is_file():
        return None
    try:
        return load_run(base / RUN_NAME)
    except Exception:  # a bad run file has its own one-line report where it is used
        return None


def publish_tests(
    base_dir: str | os.PathLike[str],
    results: Sequence[TestResult],
    kept: list[tuple[str, dict[str, Any]]] | None = None,
) -> Path:
    """This run's tests into the history, then the page (with the latest benchmark run);
    ``kept``: the history's runs, if read already (:class:`Publication`)."""
    base = Path(base_dir)
    runs = record_run(base, results, kept)
    return write_page(base, runs, _bench_run(base))


class Publication:
    """A test run's page, begun before its tests run: the kept history (megabytes for
    thousands of tests) is read meanwhile, so that after the last test only this run is
    added and the page written."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self._base = Path(base_dir)
        self._kept: list[tuple[str, dict[str, Any]]] | None = None
        self._reading = threading.Thread(target=self._read, daemon=True, name="iree-history")
        self._reading.start()

    def _read(self) -> None:
        self._kept = kept_lines(self._base / HISTORY_NAME)

    def publish(self, results: Sequence[TestResult]) -> Path:
        """This run into the history, then the page (as :func:`publish_tests`)."""
        self._reading.join()
        return publish_tests(self._base, results, self._kept)


def publish_benchmarks(base_dir: str | os.PathLike[str]) -> Path:
    """The page after a benchmark run (the tests as their last run left them)."""
    base = Path(base_dir)
    return write_page(base, load(base / HISTORY_NAME), _bench_run(base))

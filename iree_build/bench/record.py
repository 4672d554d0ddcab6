"""What a benchmark run leaves behind: results, the run file, history, baselines.

- ``NAME.DEVICE.bench.json``: one benchmark's latest result (the SCons target).
- ``iree_bench_results.json``: the latest run, every benchmark it measured,
  with the machine, the runtime version and each module's sha256. The same
  format is a baseline (``--save`` writes it where you say).
- ``iree_bench_history.jsonl``: every run appended, one JSON object a line.
All JSON, written whole (temp file + rename); the history line is appended
with one ``write`` of the whole line.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iree_build.bench.stats import Stats
from iree_build.errors import IreeBuildError
from iree_build.util.atomic import atomic_write_text

RESULT_FORMAT = "iree_build.bench_result/1"
RUN_FORMAT = "iree_build.bench_run/1"
RUN_NAME = "iree_bench_results.json"
HISTORY_NAME = "iree_bench_history.jsonl"
STATUSES = ("measured", "skipped", "failed")


@dataclass
class BenchResult:
    """One benchmark on one device in one run."""

    name: str
    base: str
    device: str
    status: str  # measured | skipped | failed
    message: str = ""
    hardware: str = ""  # the device's hardware (identity.device_hardware)
    module_sha256: str = ""
    function: str = ""
    times_ms: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    stats: Stats | None = None
    flops: float | None = None
    bytes: float | None = None
    gflops: float | None = None  # GFLOP/s at the median
    gbps: float | None = None  # GB/s at the median
    threshold: float = 0.10
    declared_at: str = ""
    comparison: dict[str, Any] | None = None  # filled by compare.compare

    def to_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if k != "stats"}
        doc["stats"] = self.stats.to_json() if self.stats else None
        return doc

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BenchResult:
        values = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw and k != "stats"}
        stats = raw.get("stats")
        result = cls(**values)
        if isinstance(stats, dict):
            result.stats = Stats(**{k: stats[k] for k in Stats.__dataclass_fields__})
        if result.status not in STATUSES:
            raise ValueError(f"unknown status {result.status!r}")
        return result


def sha256_of(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_result(result: BenchResult, path: str | os.PathLike[str]) -> None:
    atomic_write_text(path, json.dumps({"format": RESULT_FORMAT, **result.to_json()}, indent=2) + "\n")


def run_record(
    results: list[BenchResult],
    machine: dict[str, Any],
    runtime: str,
    started: str,
    tool: str = "iree-benchmark-module",
) -> dict[str, Any]:
    """One run: who measured what, where, with which runtime."""
    return {
        "format": RUN_FORMAT,
        "run_id": uuid.uuid4().hex[:12],
        "started": started,
        "finished": now(),
        "machine": machine,
        "runtime": runtime,
        "tool": tool,
        "results": [r.to_json() for r in results],
    }


def write_run(record: dict[str, Any], path: str | os.PathLike[str]) -> None:
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def append_history(record: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Add the run as one line; a reader never sees half a line from us."""
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _check_run(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("format") != RUN_FORMAT:
        raise IreeBuildError(f"not a benchmark run (expected format {RUN_FORMAT!r})", where=where)
    if not isinstance(raw.get("results"), list) or not isinstance(raw.get("machine"), dict):
        raise IreeBuildError("a benchmark run needs 'machine' and 'results'", where=where)
    try:
        raw["results"] = [BenchResult.from_json(r) for r in raw["results"]]
    except (TypeError, ValueError, KeyError) as exc:
        raise IreeBuildError(f"a result in it is malformed: {exc}", where=where) from None
    return raw


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A saved run (a baseline), its results as BenchResult; one-line errors."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IreeBuildError(
            "no such baseline file (make one with --iree-bench-save / --save)", where=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IreeBuildError(f"cannot read it: {exc}", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise IreeBuildError(f"not valid JSON: {exc}", where=str(path)) from None
    except RecursionError:
        raise IreeBuildError("not a saved run (JSON nested too deeply)", where=str(path)) from None
    return _check_run(raw, str(path))


def load_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run in the history file, oldest first; unreadable lines are left out."""
    runs = []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            runs.append(_check_run(json.loads(line), str(path)))
        except (json.JSONDecodeError, RecursionError, IreeBuildError):
            continue  # a line cut short by a full disk, or a future format
    return runs

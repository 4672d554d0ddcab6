"""The last runs of a build folder's tests, kept so the page can tell a flaky test.

``iree_test_history.jsonl``: one JSON object a run (its time and each test's
outcome, message and margin), the newest last, at most :data:`KEPT` runs.
Rewritten whole (temp file + rename) each run.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iree_build.testing.results import TestResult, flatten, margin_text
from iree_build.util.atomic import atomic_write_text

HISTORY_NAME = "iree_test_history.jsonl"
KEPT = 10
_MESSAGE = 600  # characters of a message kept (the JUnit report has the whole)


def outcome(result: TestResult) -> str:
    """The page's word for a result: pass, fail, crash, timeout, skip, xfail."""
    if result.status == "passed":
        return "xfail" if result.expected_failure else "pass"
    return {"skipped": "skip", "crashed": "crash", "timeout": "timeout"}.get(result.status, "fail")


def entry(result: TestResult) -> dict[str, Any]:
    used = max((float(m.get("used", 0.0)) for m in result.margins), default=None)
    out: dict[str, Any] = {
        "o": outcome(result),
        "d": result.device,
        "b": result.base,
        "t": round(result.time_ms, 3),
    }
    if result.message:
        out["m"] = result.message[:_MESSAGE]
    if result.margins:
        out["mg"] = "; ".join(f"output {m.get('output')}: {margin_text(m)}" for m in result.margins)
        out["u"] = used
    if result.cached:
        out["c"] = 1
    return out


def load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The kept runs, oldest first; unreadable lines are dropped (it is only history)."""
    return [run for _, run in kept_lines(path)]


def kept_lines(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """The kept runs with their lines as stored (rewritten as they are, not encoded again)."""
    runs = []
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")  # a bad line, not all
    except OSError:
        return []
    for line in text.splitlines()[-KEPT:]:
        try:
            run = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if _well_formed(run):
            runs.append((line, run))
    return runs


OUTCOMES = ("pass", "fail", "crash", "timeout", "skip", "xfail")
_TEXT_KEYS = ("o", "d", "b", "m", "mg")


def _well_formed(run: Any) -> bool:
    """A run as :func:`record_run` writes it: the page reads each entry's fields as such, and
    writes every name and message as UTF-8 (a hand-edited line may hold a lone surrogate)."""
    if not isinstance(run, dict) or not isinstance(run.get("tests"), dict) or not _text(run.get("time", "")):
        return False
    for name, e in run["tests"].items():
        if not _text(name) or not isinstance(e, dict) or e.get("o") not in OUTCOMES:
            return False
        if not all(_text(e[k]) for k in _TEXT_KEYS if k in e):
            return False
        if not all(
            isinstance(e[k], (int, float)) and not isinstance(e[k], bool) for k in ("t", "u") if k in e
        ):
            return False
    return True


def _text(value: Any) -> bool:
    """A string that can be written as UTF-8."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def record_run(
    base_dir: str | os.PathLike[str],
    results: Sequence[TestResult],
    kept: list[tuple[str, dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Add this run to the folder's history (``kept``: its runs as :func:`kept_lines` read
    them, if read already); returns the kept runs, this one last."""
    path = Path(base_dir) / HISTORY_NAME
    this = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tests": {r.name: entry(r) for r in flatten(results)},
    }
    before = kept_lines(path) if kept is None else kept
    runs = [*before, (json.dumps(this, separators=(",", ":")), this)][-KEPT:]
    atomic_write_text(path, "".join(line + "\n" for line, _ in runs))
    return [run for _, run in runs]


def flaky(runs: Sequence[dict[str, Any]]) -> set[str]:
    """Tests that both passed and failed (crash and timeout count as failing) among the runs."""
    seen: dict[str, set[str]] = {}
    for run in runs:
        for name, e in run["tests"].items():
            o = e.get("o") if isinstance(e, dict) else None
            if o in ("pass", "fail", "crash", "timeout"):
                seen.setdefault(name, set()).add("pass" if o == "pass" else "fail")
    return {name for name, kinds in seen.items() if len(kinds) > 1}

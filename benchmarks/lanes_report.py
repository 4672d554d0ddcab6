"""Where a built tree's GPU tests ran: per lane, its tests, its model, and whether lanes overlapped.

    python3 benchmarks/lanes_report.py examples/gpu/build

Reads the result files the last run wrote (standard library only: it runs where only the
runtime wheel is). Exit 1 if two tests overlapped on one lane, or none names a lane.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: lanes_report.py BUILD_DIR", file=sys.stderr)
        return 2
    results = []
    for path in sorted(Path(argv[0]).rglob("*.result.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("lane"):
            results.append(data)
    if not results:
        print("no result names a GPU lane (no GPU test ran since the lanes came in?)")
        return 1
    by_lane: dict[str, list[dict]] = {}
    for r in results:
        by_lane.setdefault(r["lane"], []).append(r)
    bad = 0
    for lane, ran in sorted(by_lane.items()):
        models = sorted({r.get("model", "") for r in ran})
        clash = [
            (a["name"], b["name"])
            for i, a in enumerate(ran)
            for b in ran[i + 1 :]
            if a["started"] < b["ended"] and b["started"] < a["ended"]
        ]
        bad += len(clash)
        statuses = sorted({r["status"] for r in ran})
        print(
            f"{lane}: {len(ran)} tests ({', '.join(statuses)}), model {' / '.join(models)}, overlaps on this lane: {len(clash)}"
        )
        for a, b in clash:
            print(f"  OVERLAP {a} and {b}")
    lanes = sorted(by_lane)
    together = sum(
        1
        for i, x in enumerate(lanes)
        for y in lanes[i + 1 :]
        for a in by_lane[x]
        for b in by_lane[y]
        if a["started"] < b["ended"] and b["started"] < a["ended"]
    )
    print(f"pairs of tests that ran at once on different lanes: {together}")
    drivers: dict[str, set[str]] = {}
    for r in results:
        drivers.setdefault(r["lane"].split("://")[0], set()).add(r.get("model", ""))
    for driver, models in sorted(drivers.items()):
        print(
            f"{driver}: lanes {', '.join(x for x in lanes if x.startswith(driver + '://'))}; models {sorted(models)}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

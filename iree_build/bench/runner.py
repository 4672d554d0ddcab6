"""Run benchmarks: one at a time, a line each, then the run's files and report.

``python -m iree_build bench BUILD_DIR`` uses :func:`run_manifest`; the SCons
rule calls :func:`run_benchmark` from each benchmark's action and
:func:`finish_run` once after the build, so both print and keep the same things.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from iree_build.bench import identity
from iree_build.bench.compare import compare, comparison_line, is_regression
from iree_build.bench.measure import BenchError, measure
from iree_build.bench.record import (
    HISTORY_NAME,
    RUN_NAME,
    BenchResult,
    append_history,
    load_run,
    now,
    run_record,
    sha256_of,
    write_result,
    write_run,
)
from iree_build.bench.spec import MANIFEST_NAME, BenchSpec, load_benchmarks
from iree_build.bench.stats import fmt_ms, per_second, summarize
from iree_build.testing.devices import default_pool, runtime_version
from iree_build.testing.emulation import emulators_here, lane_for
from iree_build.testing.manifest import check_contained, resolve
from iree_build.testing.selection import Selection, check_devices


def _shown(path: str | os.PathLike[str]) -> str:
    """A path as the user can type it: relative to here when below here."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def run_benchmark(
    spec: BenchSpec,
    base_dir: str | os.PathLike[str],
    baseline: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> BenchResult:
    """Measure one benchmark (skip it if its device is absent), compare it, keep its file."""
    result = BenchResult(
        name=spec.name,
        base=spec.base,
        device=spec.device,
        status="failed",
        function=spec.function,
        flops=spec.flops,
        bytes=spec.bytes,
        threshold=spec.threshold,
        declared_at=spec.declared_at,
    )
    status = default_pool().status(spec.device)
    lane, why = lane_for(spec.module, spec.arch, spec.device, spec.emulator)
    if not status.present or why:
        result.status, result.message = "skipped", why or status.reason
        return result
    result.hardware = identity.device_hardware(spec.device)
    if lane is not None:  # another architecture's code under its emulator: its own hardware
        result.hardware += f"; {lane.identity}"
    try:
        result.module_sha256 = sha256_of(resolve(base_dir, spec.module))
        spec = replace(spec, function=function_of(spec, base_dir))
        result.function = spec.function
        got = measure(spec, base_dir, timeout, lane=lane)
    except (BenchError, OSError) as exc:
        result.message = str(exc)
        return result
    result.status = "measured"
    result.times_ms, result.iterations = list(got.times_ms), list(got.iterations)
    result.stats = summarize(got.times_ms)
    result.gflops = per_second(spec.flops, result.stats.median_ms)
    result.gbps = per_second(spec.bytes, result.stats.median_ms)
    if baseline is not None:
        compare(result, baseline, identity.machine())
    write_result(result, resolve(base_dir, spec.result))
    return result


def function_of(spec: BenchSpec, base_dir: str | os.PathLike[str]) -> str:
    """The function to measure, resolved as a test resolves it (the named one, else the
    module's only sync export); BenchError listing the exports when there is none such."""
    from iree_build.testing.vm import TestError, exports, function_to_call, load_module

    try:
        module = load_module(resolve(base_dir, spec.module), default_pool().instance, spec.module)
        return function_to_call(exports(module), spec.function, spec.module, spec.declared_at)
    except TestError as exc:
        raise BenchError(str(exc)) from None


def result_line(result: BenchResult) -> str:
    """``BENCH mm[cuda]: median 1.2 ms (IQR 0.01 ms, stddev 0.02 ms), 5 repetitions x 80 calls, 110 GFLOP/s``."""
    if result.status != "measured" or result.stats is None:
        return f"{'SKIP' if result.status == 'skipped' else 'FAIL'} {result.name} ({result.message})"
    s = result.stats
    calls = sorted(set(result.iterations))
    per = f"{calls[0]}" if len(calls) == 1 else f"{calls[0]}-{calls[-1]}"
    line = (
        f"BENCH {result.name}: median {fmt_ms(s.median_ms)} (IQR {fmt_ms(s.iqr_ms)}, stddev "
        f"{fmt_ms(s.stddev_ms)}), {s.n} repetition{'s' if s.n != 1 else ''} x {per} calls"
    )
    if result.gflops is not None:
        line += f", {result.gflops:.4g} GFLOP/s"
    if result.gbps is not None:
        line += f", {result.gbps:.4g} GB/s"
    return line


def lines_for(result: BenchResult) -> list[str]:
    """The result line, then the comparison line when a baseline was given."""
    extra = comparison_line(result)
    return [result_line(result)] + ([extra] if extra else [])


def finish_run(
    results: list[BenchResult],
    base_dir: str | os.PathLike[str],
    started: str,
    save: str | os.PathLike[str] | None = None,
    baseline: dict[str, Any] | None = None,
) -> list[str]:
    """Keep the run (latest-run file, history, optional baseline) and draw the report.

    Returns the closing lines: counts and where the report is.
    """
    from iree_build.bench.report import write_report

    base = Path(base_dir)
    measured = [r for r in results if r.status == "measured"]
    record = run_record(results, identity.machine(), runtime_version(), started)
    lines = []
    if measured:
        write_run(record, base / RUN_NAME)
        append_history(record, base / HISTORY_NAME)
    if save:
        saved = dict(record, results=[r.to_json() for r in measured])
        write_run(saved, save)
        lines.append(
            f"baseline saved: {_shown(save)} ({len(measured)} benchmark{'s' if len(measured) != 1 else ''})"
        )
    report, note = write_report(base, baseline)
    from iree_build.report.publish import publish_benchmarks

    page = publish_benchmarks(base)
    regressions = sum(1 for r in results if is_regression(r))
    failed = sum(1 for r in results if r.status == "failed")
    skipped = sum(1 for r in results if r.status == "skipped")
    lines.append(
        f"{len(measured)} benchmark{'s' if len(measured) != 1 else ''} measured, "
        f"{regressions} regression{'s' if regressions != 1 else ''}, {failed} failed, "
        f"{skipped} skipped"
    )
    if note:
        lines.append(note)
    lines.append(f"report: {_shown(report)}; page: {_shown(page)}")
    return lines


def select(
    specs: Sequence[BenchSpec], devices: Sequence[str] | None, pattern: str | None, tags: str | None
) -> list[BenchSpec]:
    """Benchmarks on one of ``devices``, whose name matches ``pattern``, with the tags asked
    for: :class:`iree_build.testing.selection.Selection`, as ``scons bench`` and the tests select."""
    return Selection(devices=tuple(devices or ()), pattern=pattern or "", tags=tags or "").select(specs)


@dataclass
class BenchOptions:
    """Choices of one ``python -m iree_build bench`` (mirrors its flags)."""

    devices: Sequence[str] | None = None
    pattern: str | None = None
    tags: str | None = None
    baseline: str | None = None
    save: str | None = None
    require_devices: bool = False


def find_benchmarks(path: str | os.PathLike[str]) -> Path:
    """BUILD_DIR/iree_benchmarks.json, or the manifest file itself."""
    from iree_build.testing.runner import find_manifest

    return find_manifest(path, MANIFEST_NAME, "benchmark manifest")


def run_manifest(
    path: str | os.PathLike[str], options: BenchOptions | None = None, out: TextIO | None = None
) -> int:
    """Run the selected benchmarks of a manifest; 0 ok, 1 a failure or regression."""
    options = options or BenchOptions()
    out = out if out is not None else sys.stdout
    manifest = find_benchmarks(path)
    _lock_tree(manifest.parent)
    specs = load_benchmarks(manifest)
    check_contained(Path(manifest), specs, "benchmark")
    check_devices(options.devices or (), (s.device for s in specs))
    baseline = load_run(options.baseline) if options.baseline else None
    chosen = select(specs, options.devices, options.pattern, options.tags)
    if specs and not chosen:
        print(f"note: no benchmarks selected from {manifest}", file=sys.stderr)
    emulators = emulators_here()  # this machine's ($IREE_EMULATORS), over the manifest's
    chosen = [replace(s, emulator=emulators[s.arch]) if s.arch in emulators else s for s in chosen]
    started = now()
    results = []
    for spec in chosen:
        result = run_benchmark(spec, manifest.parent, baseline)
        if result.status == "skipped" and options.require_devices:
            result.status, result.message = "failed", f"device required: {result.message}"
        results.append(result)
        for line in lines_for(result):
            print(line, file=out, flush=True)
    for line in finish_run(results, manifest.parent, started, options.save, baseline):
        print(line, file=out, flush=True)
    bad = any(r.status == "failed" or is_regression(r) for r in results)
    return 1 if bad else 0


def _lock_tree(folder: Path) -> None:
    """The build's lock, alone: no build, test run or other benchmark run beside this one
    (they would write the same files, and disturb what is measured). One line if taken."""
    from iree_build.testing.runner import UsageError
    from iree_build.util.build_lock import lock_tree

    why = lock_tree(folder, "python -m iree_build bench")
    if why:
        raise UsageError(why)

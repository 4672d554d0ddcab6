"""The benchmark report: one HTML page in the build folder, a PNG plot per benchmark.

Each plot shows the benchmark's history over runs (median with its quartiles,
one line per device, the baseline as a dashed line) beside bars of
the latest median per device. The page links the PNGs by relative path, so
the folder can be copied and viewed offline. matplotlib is optional (the
``plots`` extra): without it the page has the tables and says why there are
no plots, in one line.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from pathlib import Path
from typing import Any

from iree_build.bench.record import HISTORY_NAME, BenchResult, load_history
from iree_build.bench.stats import Stats
from iree_build.util.atomic import atomic_write_bytes, atomic_write_text

REPORT_NAME = "iree_bench_report.html"
PLOTS_DIR = "iree_bench_plots"
NO_MATPLOTLIB = (
    "note: the report has no plots: matplotlib is not installed (pip install 'iree-build-scons[plots]')"
)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)  # no display on build machines
    import matplotlib.pyplot as plt

    return plt


def plot_name(base: str) -> str:
    """A file name for a benchmark's plot (names may hold any characters)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", base)[:60]
    return f"{safe}-{hashlib.sha256(base.encode()).hexdigest()[:8]}.png"


def _series(history: list[dict[str, Any]], base: str) -> dict[str, list[tuple[int, BenchResult]]]:
    """device -> [(run index, result)] for one benchmark, oldest run first."""
    out: dict[str, list[tuple[int, BenchResult]]] = {}
    for i, run in enumerate(history):
        for r in run["results"]:
            if r.base == base and r.status == "measured" and r.stats:
                out.setdefault(r.device, []).append((i + 1, r))
    return out


def _stats(result: BenchResult) -> Stats:
    """A measured result's statistics (the plotted series hold measured results only)."""
    assert result.stats is not None
    return result.stats


def _quartile_bars(results: list[BenchResult]) -> list[list[float]]:
    """Error bars from the median down to the 25th and up to the 75th percentile."""
    return [
        [_stats(r).median_ms - _stats(r).q1_ms for r in results],
        [_stats(r).q3_ms - _stats(r).median_ms for r in results],
    ]


def _plot(
    plt, base: str, series: dict[str, list[tuple[int, BenchResult]]], baseline: dict[str, Any] | None
) -> bytes:
    fig, (hist_ax, bar_ax) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        devices = sorted(series)
        medians = []
        for k, device in enumerate(devices):
            color = colors[k % len(colors)]
            points = series[device]
            xs = [i for i, _ in points]
            ys = [_stats(r).median_ms for _, r in points]
            errs = _quartile_bars([r for _, r in points])
            medians += ys
            hist_ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, color=color, label=device)
            for b in (baseline or {}).get("results", []):
                if b.base == base and b.device == device and b.stats:
                    hist_ax.axhline(
                        b.stats.median_ms,
                        color=color,
                        linestyle="--",
                        linewidth=1,
                        label=f"{device} baseline",
                    )
                    medians.append(b.stats.median_ms)
        if medians and max(medians) / max(min(medians), 1e-12) > 20:
            hist_ax.set_yscale("log")
        from matplotlib.ticker import MaxNLocator

        hist_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        hist_ax.set_title(f"{base}: median per run (bars: quartiles)")
        hist_ax.set_xlabel("run")
        hist_ax.set_ylabel("ms per call")
        hist_ax.legend(fontsize=8)
        hist_ax.grid(True, alpha=0.3)

        latest = [series[d][-1][1] for d in devices]
        bars = bar_ax.bar(
            devices,
            [_stats(r).median_ms for r in latest],
            yerr=_quartile_bars(latest),
            capsize=4,
            color=[colors[k % len(colors)] for k in range(len(devices))],
        )
        for bar, r in zip(bars, latest, strict=True):
            rate = (
                f"{r.gflops:.3g} GFLOP/s"
                if r.gflops is not None
                else f"{r.gbps:.3g} GB/s"
                if r.gbps is not None
                else f"{_stats(r).median_ms:.3g} ms"
            )
            bar_ax.annotate(
                rate,
                (bar.get_x() + bar.get_width() / 2, _stats(r).q3_ms),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if (
            len(latest) > 1
            and max(_stats(r).median_ms for r in latest)
            / max(min(_stats(r).median_ms for r in latest), 1e-12)
            > 20
        ):
            bar_ax.set_yscale("log")
        bar_ax.set_title("latest run, per device")
        bar_ax.set_ylabel("ms per call")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        return buf.getvalue()
    finally:
        plt.close(fig)


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _table(run: dict[str, Any]) -> str:
    rows = [
        "<tr><th>benchmark</th><th>device</th><th>median ms</th><th>IQR ms</th>"
        "<th>stddev ms</th><th>reps</th><th>GFLOP/s</th><th>GB/s</th><th>vs baseline</th></tr>"
    ]
    for r in run["results"]:
        s = r.stats
        c = r.comparison or {}
        versus = (
            f"{c['verdict']} ({c['change'] * 100:+.1f}%)"
            if "change" in c
            else html.escape(c.get("reason", ""))
        )
        if r.status != "measured" or s is None:
            rows.append(
                f"<tr><td>{html.escape(r.base)}</td><td>{html.escape(r.device)}</td>"
                f"<td colspan=7>{r.status}: {html.escape(r.message)}</td></tr>"
            )
            continue
        rows.append(
            f"<tr><td>{html.escape(r.base)}</td><td>{html.escape(r.device)}</td>"
            f"<td>{s.median_ms:.4g}</td><td>{s.iqr_ms:.3g}</td><td>{s.stddev_ms:.3g}</td><td>{s.n}</td>"
            f"<td>{_cell(r.gflops, '.4g')}</td><td>{_cell(r.gbps, '.4g')}</td>"
            f"<td class='{c.get('verdict', '')}'>{versus}</td></tr>"
        )
    return "<table>" + "\n".join(rows) + "</table>"


_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,td:nth-child(2){text-align:left}.regression{color:#b00;font-weight:bold}"
    ".faster{color:#070}img{max-width:100%;border:1px solid #eee;margin:1em 0}"
)


def write_report(base_dir: str | Path, baseline: dict[str, Any] | None = None) -> tuple[Path, str | None]:
    """Write the page (and plots) from the build folder's history.

    Returns the page's path and a one-line note when plots could not be drawn.
    """
    base = Path(base_dir)
    history = load_history(base / HISTORY_NAME)
    page = base / REPORT_NAME
    plt = _pyplot()
    note = None if plt is not None else NO_MATPLOTLIB
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>IREE benchmarks</title><style>{_STYLE}</style>",
        "<h1>IREE benchmarks</h1>",
    ]
    if not history:
        parts.append("<p>No benchmark has been measured in this build folder yet.</p>")
    else:
        latest = history[-1]
        m = latest["machine"]
        parts.append(
            f"<p>Latest run {html.escape(str(latest.get('finished', '')))} on "
            f"{html.escape(str(m.get('host')))} ({html.escape(str(m.get('cpu')))}, "
            f"{m.get('cpus')} CPUs), iree-base-runtime {html.escape(str(latest.get('runtime')))}, "
            f"measured with {html.escape(str(latest.get('tool')))}; {len(history)} run(s) in "
            f"the history.</p>"
        )
        parts.append(_table(latest))
        if note:
            parts.append(f"<p><b>{html.escape(note)}</b></p>")
        bases = sorted({r.base for run in history for r in run["results"] if r.status == "measured"})
        for name in bases:
            parts.append(f"<h2>{html.escape(name)}</h2>")
            if plt is not None:
                file = plot_name(name)
                atomic_write_bytes(
                    base / PLOTS_DIR / file, _plot(plt, name, _series(history, name), baseline)
                )
                parts.append(f"<img src='{PLOTS_DIR}/{file}' alt='{html.escape(name)} plot'>")
    atomic_write_text(page, "\n".join(parts) + "\n")
    return page, note

"""``iree_test_report.html``: a matrix of tests by device, coloured by outcome, and the benchmarks.

One self-contained file (no server, nothing fetched), readable without JavaScript:
the table is written here, each cell carries its outcome as a class and its
message as a tooltip. A few lines of inline script add filtering by name and
outcome (also from the address: ``#o=fail,crash&q=conv``) and a panel with a
cell's message, margin and history. A test that both passed and failed among
the kept runs is marked flaky.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iree_build.util.atomic import atomic_write_text

from .history import OUTCOMES, flaky

PAGE_NAME = "iree_test_report.html"
_MARK = {
    "pass": "pass",
    "fail": "FAIL",
    "crash": "CRASH",
    "timeout": "TIMEOUT",
    "skip": "skip",
    "xfail": "xfail",
}

_STYLE = (
    """
body{font:14px system-ui,sans-serif;margin:1em;color:#222}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin-top:1.5em}

.filters{margin:.6em 0;position:sticky;top:0;background:#fff;padding:.4em 0;z-index:2}
.filters input[type=search]{width:22em;padding:.2em}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:2px 6px;text-align:left}
thead th{position:sticky;top:2.6em;background:#f4f4f4;z-index:1}
tr.g th{background:#eef;font-weight:600}
td{font-size:12px;cursor:pointer;min-width:4.5em;text-align:center}
td.pass{background:#d8f0d8}td.fail{background:#f6b9b9;font-weight:600}
td.crash{background:#8b1a1a;color:#fff;font-weight:600}td.timeout{background:#f5c26b;font-weight:600}
td.skip{background:#eee;color:#777}td.xfail{background:#e3d7f4}td.none{background:#fff;cursor:default}
td.flaky{outline:2px dashed #c60;outline-offset:-3px}
"""
    + "".join(f"table.hide-{o} td.{o}{{visibility:hidden}}" for o in OUTCOMES)
    + """
#detail{position:fixed;right:1em;bottom:1em;max-width:46em;max-height:40vh;overflow:auto;
background:#fff;border:1px solid #999;box-shadow:0 2px 8px #0003;padding:.6em;white-space:pre-wrap}
"""
)

_SCRIPT = """
(function(){
const table=document.getElementById('m'); if(!table) return;
const q=document.getElementById('q'), boxes=[...document.querySelectorAll('input[data-o]')];
const rows=[...table.querySelectorAll('tbody tr[data-n]')], groups=[...table.querySelectorAll('tbody')];
const details=JSON.parse(document.getElementById('details').textContent);
function apply(){
  const on=new Set(boxes.filter(b=>b.checked).map(b=>b.dataset.o)), text=q.value.toLowerCase();
  for(const b of boxes) table.classList.toggle('hide-'+b.dataset.o,!on.has(b.dataset.o));
  for(const tr of rows){
    let any=false; for(const td of tr.cells) if(td.dataset.o&&on.has(td.dataset.o)){any=true;break}
    tr.hidden=!(any&&tr.dataset.n.includes(text));
  }
  for(const g of groups){const h=g.querySelector('tr.g'); if(h) h.hidden=![...g.rows].some(r=>r.dataset.n&&!r.hidden)}
  const shown=rows.filter(r=>!r.hidden).length; document.getElementById('shown').textContent=shown;
  const parts=[]; if(on.size<boxes.length) parts.push('o='+[...on].join(',')); if(text) parts.push('q='+encodeURIComponent(text));
  history.replaceState(null,'',parts.length?'#'+parts.join('&'):location.pathname+location.search);
}
const hash=new URLSearchParams(location.hash.slice(1));
if(hash.get('o')!==null){const want=new Set(hash.get('o').split(','));for(const b of boxes) b.checked=want.has(b.dataset.o)}
if(hash.get('q')) q.value=hash.get('q');
q.addEventListener('input',apply); for(const b of boxes) b.addEventListener('change',apply);
const panel=document.getElementById('detail');
table.addEventListener('click',e=>{const td=e.target.closest('td[data-i]'); if(!td) return;
  const d=details[+td.dataset.i]; panel.hidden=false;
  panel.textContent=[d.n, d.o.toUpperCase()+(d.f?' (flaky: '+d.f+')':''), d.m||'', d.mg?'margin: '+d.mg:'', d.t?d.t+' ms':''].filter(Boolean).join('\\n\\n');});
panel.addEventListener('click',()=>{panel.hidden=true});
apply();
})();
"""


def _split(name: str) -> tuple[str, str]:
    """``models/mlp:smoke[local-task]`` -> (``models/mlp:smoke``, ``local-task``)."""
    if name.endswith("]") and "[" in name:
        base, label = name[:-1].rsplit("[", 1)
        return base, label
    return name, ""


def _group(row: str) -> str:
    """The folder or suite a row belongs to (``models/mlp`` of ``models/mlp:smoke``)."""
    if ":" in row.split("::", 1)[0]:
        return row.split(":", 1)[0]
    head = row.split("::", 1)[0]
    return head.rsplit("/", 1)[0] if "/" in head else "(top folder)"


def _bench_rows(record: dict[str, Any] | None) -> str:
    if not record or not record.get("results"):
        return ""
    rows = []
    for r in record["results"]:
        r = r.to_json() if hasattr(r, "to_json") else r
        stats = r.get("stats") or {}
        median = stats.get("median_ms")
        change = (r.get("comparison") or {}).get("change")
        rows.append(
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(str(r.get("base", r.get("name", "")))),
                html.escape(str(r.get("device", ""))),
                html.escape(str(r.get("status", ""))),
                f"{median:.4g} ms" if isinstance(median, (int, float)) else "",
                f"{100 * change:+.1f}%" if isinstance(change, (int, float)) else "",
            )
        )
    return (
        "<h2>Benchmarks</h2><p>Run of "
        + html.escape(str(record.get("started", "")))
        + " (plots: <a href='iree_bench_report.html'>iree_bench_report.html</a>)</p>"
        "<table><thead><tr><th>benchmark</th><th>device</th><th>status</th><th>median</th>"
        "<th>vs baseline</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def render(runs: Sequence[dict[str, Any]], title: str, bench: dict[str, Any] | None = None) -> str:
    """The page's HTML for the kept runs (the last is shown) and a benchmark run."""
    latest = runs[-1]["tests"] if runs else {}
    flakes = flaky(runs)
    history: dict[str, list[str]] = {}
    for run in runs:
        for name, e in run["tests"].items():
            history.setdefault(name, []).append(e.get("o", "?"))
    rows: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    labels: list[str] = []
    for name, e in latest.items():
        row, label = _split(name)
        rows.setdefault(row, {})[label] = (name, e)
        if label not in labels:
            labels.append(label)
    counts = {o: 0 for o in OUTCOMES}
    details: list[dict[str, Any]] = []
    groups: dict[str, list[str]] = {}
    for row in sorted(rows):
        groups.setdefault(_group(row), []).append(row)
    body = []
    for group in sorted(groups):
        part = [f"<tbody><tr class=g><th colspan={len(labels) + 1}>{html.escape(group)}</th></tr>"]
        for row in groups[group]:
            cells = []
            for label in labels:
                if label not in rows[row]:
                    cells.append("<td class=none></td>")
                    continue
                name, e = rows[row][label]
                o = e.get("o", "fail")
                counts[o] = counts.get(o, 0) + 1
                flake = name in flakes
                detail = {"n": name, "o": o, "m": e.get("m", ""), "mg": e.get("mg", ""), "t": e.get("t")}
                if flake:
                    detail["f"] = " ".join(history.get(name, []))
                details.append(detail)
                tip = e.get("m") or e.get("mg") or o
                cells.append(
                    f"<td class='{o}{' flaky' if flake else ''}' data-o={o} data-i={len(details) - 1} "
                    f"title='{html.escape(tip[:300], quote=True)}'>{_MARK[o]}{'~' if flake else ''}</td>"
                )
            part.append(
                f"<tr data-n='{html.escape(row.lower(), quote=True)}'><th>{html.escape(row)}</th>"
                + "".join(cells)
                + "</tr>"
            )
        part.append("</tbody>")
        body.append("".join(part))
    head = "".join(f"<th>{html.escape(label or '-')}</th>" for label in labels)
    boxes = "".join(
        f"<label><input type=checkbox data-o={o} checked> {o} "
        f"(<span id=count-{o}>{counts[o]}</span>)</label> "
        for o in OUTCOMES
    )
    total = sum(counts.values())
    when = html.escape(str(runs[-1].get("time", ""))) if runs else ""
    matrix = (
        f"<table id=m><thead><tr><th>test</th>{head}</tr></thead>{''.join(body)}</table>"
        if rows
        else "<p>No test results yet.</p>"
    )
    # No '<' at all inside the script element: '</script>' would end it, and '<!--<script>' in
    # a message would make the parser read on past its end, over the rest of the page.
    data = json.dumps(details, separators=(",", ":")).replace("<", "\\u003c")
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style><h1>{html.escape(title)}</h1>"
        f"<p>Latest run {when}; {len(runs)} run(s) kept; {len(flakes)} flaky.</p>"
        f"<div class=counts>{total} results, <span id=shown>{len(rows)}</span> tests shown</div>"
        f"<div class=filters><input type=search id=q placeholder='filter by name'> {boxes}</div>"
        f"{matrix}<div id=detail hidden></div>{_bench_rows(bench)}"
        f"<script type=application/json id=details>{data}</script><script>{_SCRIPT}</script></html>\n"
    )


def write_page(
    base_dir: str | os.PathLike[str], runs: Sequence[dict[str, Any]], bench: dict[str, Any] | None = None
) -> Path:
    """Write the page into the build folder; returns its path."""
    path = Path(base_dir) / PAGE_NAME
    title = f"IREE tests: {Path(base_dir).resolve().name}"
    atomic_write_text(path, render(runs, title, bench))
    return path

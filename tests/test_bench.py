"""iree_benchmark / `scons bench` / `python -m iree_build bench`, with real modules and runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import Project

from iree_build.bench.compare import compare, comparison_line
from iree_build.bench.record import BenchResult
from iree_build.bench.stats import Stats, per_second, summarize
from iree_build.errors import IreeBuildError
from iree_build.testing.selection import parse_tag_filter, tags_selected
from rules.action_gate import ActionGate

SCONSTRUCT = """\
from iree_rules import *
SConscript("src/SConscript", variant_dir="build", duplicate=False)
"""


def matmul(k: int) -> str:
    """A 256x256 result from a 256xK by Kx256 product: K sets the work."""
    return f"""\
func.func @mm(%a: tensor<256x{k}xf32>, %b: tensor<{k}x256xf32>) -> tensor<256x256xf32> {{
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<256x256xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<256x256xf32>) -> tensor<256x256xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<256x{k}xf32>, tensor<{k}x256xf32>) outs(%z : tensor<256x256xf32>) -> tensor<256x256xf32>
  return %0 : tensor<256x256xf32>
}}
"""


def bench_project(project: Project, k: int = 64, extra: str = "") -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/mm.mlir", matmul(k))
    np.save(project.path("src/b.npy"), np.full((k, 256), 0.5, dtype=np.float32))
    project.write("src/SConscript", f"""\
        import numpy as np
        iree_module(name="mm", src="mm.mlir")
        iree_benchmark(name="mm", module="mm", function="mm",
                       inputs=[np.ones((256, {k}), np.float32), "b.npy"], devices=["local-task"],
                       repetitions=5, min_time=0.05, warmup=0.02, flops=2 * 256 * 256 * {k},
                       threshold=1.0, tags=["cpu", "matmul"])
        {extra}
        """)


BENCH_LINE = re.compile(
    r"^BENCH mm\[local-task\]: median ([\d.e+-]+) ms \(IQR ([\d.e+-]+) ms, stddev [\d.e+-]+ ms\), "
    r"5 repetitions x (\d+) calls, ([\d.e+-]+) GFLOP/s$", re.M)


def test_bench_line_json_history_and_report(project: Project, tmp_path: Path) -> None:
    bench_project(project)
    plain = project.scons()
    assert plain.returncode == 0, plain.output
    assert "BENCH" not in plain.stdout  # a plain build measures nothing
    manifest = json.loads(project.path("build/iree_benchmarks.json").read_text())
    assert [b["name"] for b in manifest["benchmarks"]] == ["mm[local-task]"]
    assert manifest["benchmarks"][0]["tags"] == ["cpu", "matmul"]

    run = project.scons("bench")
    assert run.returncode == 0, run.output
    (m,) = BENCH_LINE.findall(run.stdout)
    median, gflops = float(m[0]), float(m[3])
    assert gflops == pytest.approx(2 * 256 * 256 * 64 / (median / 1e3) / 1e9, rel=2e-3)
    assert run.stdout.splitlines()[-1] == "report: build/iree_bench_report.html; page: build/iree_test_report.html"
    assert "1 benchmark measured, 0 regressions, 0 failed, 0 skipped" in run.stdout
    page = project.path("build/iree_test_report.html").read_text()
    assert "<h2>Benchmarks</h2>" in page and "<tr><th>mm</th><td>local-task</td><td>measured</td>" in page

    build = project.path("build")
    record = json.loads((build / "iree_bench_results.json").read_text())
    assert record["format"] == "iree_build.bench_run/1" and record["tool"] == "iree-benchmark-module"
    assert set(record["machine"]) >= {"host", "arch", "cpu", "cpus"} and record["runtime"].startswith("3.")
    (result,) = record["results"]
    assert result["name"] == "mm[local-task]" and result["status"] == "measured"
    assert result["module_sha256"] == hashlib.sha256((build / "mm.vmfb").read_bytes()).hexdigest()
    assert result["hardware"].startswith("local-task on ")
    assert len(result["times_ms"]) == 5 and result["stats"]["median_ms"] == pytest.approx(median, rel=1e-3)
    assert json.loads((build / "mm.local-task.bench.json").read_text())["stats"] == result["stats"]

    again = project.scons("bench")  # a measurement is never "up to date"
    assert len(BENCH_LINE.findall(again.stdout)) == 1, again.output
    history = (build / "iree_bench_history.jsonl").read_text().splitlines()
    assert len(history) == 2 and json.loads(history[1])["results"][0]["name"] == "mm[local-task]"

    page = (build / "iree_bench_report.html").read_text()
    (png,) = re.findall(r"<img src='(iree_bench_plots/[^']+\.png)'", page)
    import matplotlib.image

    pixels = matplotlib.image.imread(build / png)
    assert (build / png).stat().st_size > 10_000
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 800
    ink = (pixels[..., :3] < 0.9).any(axis=-1).mean()  # share of pixels that are not white
    assert 0.01 < ink < 0.6, ink
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 20  # lines, text, colours

    # the same tree, measured by the runner a GPU machine uses (no SCons)
    tool = subprocess.run([sys.executable, "-m", "iree_build", "bench", str(build), "--tags=matmul,-slow"],
                          capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0, tool.stdout + tool.stderr
    assert len(BENCH_LINE.findall(tool.stdout)) == 1
    assert len((build / "iree_bench_history.jsonl").read_text().splitlines()) == 3
    none = subprocess.run([sys.executable, "-m", "iree_build", "bench", str(build), "--tags=-cpu"],
                          capture_output=True, text=True, timeout=120)
    assert none.returncode == 0 and "BENCH" not in none.stdout
    assert "note: no benchmarks selected" in none.stderr

    # without matplotlib: the page has its tables and says why there are no plots, in one line
    blocker = tmp_path / "no_mpl"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
    bare = subprocess.run([sys.executable, "-m", "iree_build", "bench", str(build)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert [ln for ln in bare.stdout.splitlines() if ln.startswith("note")] == [
        "note: the report has no plots: matplotlib is not installed (pip install 'iree-build-scons[plots]')"]
    page = (build / "iree_bench_report.html").read_text()
    assert "<table>" in page and "<img" not in page and "matplotlib is not installed" in page


def test_regression_against_baseline(project: Project, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    bench_project(project)
    first = project.scons("bench", f"--iree-bench-save={baseline}")
    assert first.returncode == 0, first.output
    assert "baseline saved: " in first.stdout and baseline.exists()

    same = project.scons("bench", f"--iree-bench-baseline={baseline}")
    assert same.returncode == 0, same.output
    assert re.search(r"^(UNCHANGED|FASTER) mm\[local-task\]: median [\d.]+ ms, baseline [\d.]+ ms "
                     r"\([+-][\d.]+%; threshold 100%, noise [\d.]+%\)$", same.stdout, re.M), same.stdout

    bench_project(project, k=2048)  # same name, 32x the work: past 2x even where small calls are overhead-bound
    slow = project.scons("bench", f"--iree-bench-baseline={baseline}")
    assert slow.returncode == 2, slow.output
    (line,) = re.findall(r"^REGRESSION mm\[local-task\]: .*$", slow.stdout, re.M)
    new, old, change = re.match(r"REGRESSION mm\[local-task\]: median ([\d.]+) ms, baseline ([\d.]+) ms "
                                r"\(\+([\d.]+)%; threshold 100%, noise [\d.]+%\)", line).groups()
    assert float(new) > 2 * float(old) and float(change) > 100
    assert "scons: *** [build/mm.local-task.bench.json] benchmark mm[local-task] is slower than the baseline" \
        in slow.stderr
    assert "1 regression," in slow.stdout  # the closing lines still come, with the report
    record = json.loads(project.path("build/iree_bench_results.json").read_text())
    assert record["results"][0]["comparison"]["verdict"] == "regression"

    # the standalone runner judges the same way, and exits 1
    tool = subprocess.run([sys.executable, "-m", "iree_build", "bench", str(project.path("build")),
                           f"--baseline={baseline}"], capture_output=True, text=True, timeout=120)
    assert tool.returncode == 1 and "REGRESSION mm[local-task]" in tool.stdout, tool.stdout + tool.stderr


def test_inputs_in_iree_syntax_and_a_failing_call(project: Project) -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/mm.mlir", matmul(64))
    project.write("src/SConscript", """\
        iree_module(name="mm", src="mm.mlir")
        iree_benchmark(name="splat", module="mm", function="mm", inputs=["256x64xf32=1", "64x256xf32=0.5"],
                       repetitions=1, min_time="10x", warmup=0)
        iree_benchmark(name="bad", module="mm", function="mm", inputs=["256x63xf32=1", "64x256xf32=0.5"],
                       repetitions=1, min_time="10x", warmup=0)
        """)
    run = project.scons("bench", "-k")
    assert run.returncode == 2, run.output
    assert re.search(r"^BENCH splat\[local-task\]: median [\d.]+ ms \(IQR 0 ms, stddev 0 ms\), "
                     r"1 repetition x 10 calls$", run.stdout, re.M), run.stdout
    (fail,) = [ln for ln in run.stdout.splitlines() if ln.startswith("FAIL")]
    assert fail.startswith("FAIL bad[local-task] (iree-benchmark-module reported an error: INVALID_ARGUMENT; "
                           "input0 shape dimension 1 mismatch; expected 64 but have 63"), fail
    assert "scons: *** [build/bad.local-task.bench.json] benchmark bad[local-task] failed" in run.stderr
    assert "Traceback" not in run.output
    manifest = json.loads(project.path("build/iree_benchmarks.json").read_text())
    assert manifest["benchmarks"][0]["inputs"] == [{"value": "256x64xf32=1"}, {"value": "64x256xf32=0.5"}]
    assert not list(project.path("build").glob("*.npy"))  # nothing to carry to the device


@pytest.mark.parametrize("call, message", [
    ('iree_benchmark(name="b", module="mm", function=3)',
     "iree_benchmark function: "),
    ('iree_benchmark(name="b", module="mm", function="mm", min_time=0)',
     "min_time must be more than 0 seconds, not 0"),
    ('iree_benchmark(name="b", module="mm", function="mm", repetitions=0)',
     "iree_benchmark repetitions: 0 is below 1; give a whole number of repetitions >= 1"),
    ('iree_benchmark(name="b", module="mm", function="mm", tags=["-slow"])',
     "iree_benchmark tags: '-slow' has a leading '-'"),
    ('iree_benchmark(name="b", module="mm", function="mm", devices=["cuda"])',
     "iree_benchmark devices: device 'cuda' cannot run a module built for llvm-cpu"),
])
def test_declaration_errors_name_the_line(project: Project, call: str, message: str) -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/mm.mlir", matmul(8))
    project.write("src/SConscript", f'iree_module(name="mm", src="mm.mlir")\n{call}\n')
    run = project.scons("bench")
    assert run.returncode == 2
    assert run.stderr.startswith(f"scons: *** src/SConscript:2: {message}"), run.stderr
    assert "Traceback" not in run.output


def test_bad_baseline_file_is_one_line(project: Project, tmp_path: Path) -> None:
    bench_project(project)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    run = project.scons("bench", f"--iree-bench-baseline={bad}")
    assert run.returncode == 2
    assert run.stderr == (f"scons: *** --iree-bench-baseline={bad}: not a benchmark run "
                          "(expected format 'iree_build.bench_run/1')\n")
    assert not project.path("build/mm.vmfb").exists()  # stopped before building or measuring


def _result(median: float, iqr: float, hardware: str = "local-task on X x2", threshold: float = 0.1) -> BenchResult:
    stats = Stats(n=5, median_ms=median, mean_ms=median, stddev_ms=iqr, iqr_ms=iqr,
                  min_ms=median - iqr, max_ms=median + iqr, q1_ms=median - iqr / 2, q3_ms=median + iqr / 2)
    return BenchResult("mm[local-task]", "mm", "local-task", "measured", hardware=hardware,
                       stats=stats, threshold=threshold)


MACHINE = {"arch": "x86_64", "cpu": "X", "cpus": 2}


@pytest.mark.parametrize("median, iqr, verdict", [
    (1.30, 0.01, "regression"),  # 30% slower, noise 2%
    (1.30, 0.30, "unchanged"),  # 30% slower, but the runs scatter by 31%
    (1.05, 0.00, "unchanged"),  # within the 10% threshold
    (0.70, 0.01, "faster"),
])
def test_regression_needs_threshold_and_noise(median: float, iqr: float, verdict: str) -> None:
    baseline = {"machine": MACHINE, "run_id": "r1", "results": [_result(1.0, 0.01)]}
    new = _result(median, iqr)
    assert compare(new, baseline, MACHINE)["verdict"] == verdict
    assert comparison_line(new).startswith(verdict.upper() + " mm[local-task]: median ")


def test_baseline_from_other_hardware_is_not_compared() -> None:
    baseline = {"machine": {**MACHINE, "cpu": "Y"}, "results": [_result(1.0, 0.01)]}
    new = _result(5.0, 0.01)
    assert compare(new, baseline, MACHINE)["verdict"] == "no-baseline"
    assert comparison_line(new) == "NO BASELINE mm[local-task] (baseline measured on other hardware (x86_64 Y x2))"


def test_stats_and_throughput() -> None:
    s = summarize([3.0, 1.0, 2.0, 4.0, 100.0])
    assert (s.median_ms, s.min_ms, s.max_ms, s.n) == (3.0, 1.0, 100.0, 5)
    assert (s.q1_ms, s.q3_ms, s.iqr_ms) == (2.0, 4.0, 2.0) and s.stddev_ms > 40  # one outlier: IQR unmoved
    assert per_second(2e9, 1000.0) == pytest.approx(2.0)  # 2 GFLOP in 1 s
    assert summarize([2.0]).stddev_ms == 0.0


def test_tag_filter() -> None:
    include, exclude = parse_tag_filter("gpu, -slow,,")
    assert (include, exclude) == ({"gpu"}, {"slow"})
    assert tags_selected(["gpu"], include, exclude)
    assert not tags_selected(["gpu", "slow"], include, exclude)
    assert not tags_selected(["cpu"], include, exclude)
    assert tags_selected([], *parse_tag_filter(""))
    assert tags_selected(["x"], *parse_tag_filter("-slow"))
    with pytest.raises(IreeBuildError, match="both selects and excludes slow"):
        parse_tag_filter("slow,-slow")
    with pytest.raises(IreeBuildError, match="is not a tag name"):
        parse_tag_filter("a b")


def test_gate_runs_a_benchmark_alone() -> None:
    """Exclusive waits for shared holders; shared holders wait behind a waiting exclusive."""
    gate = ActionGate()
    events: list[str] = []
    compile_started = threading.Event()

    def compile_(tag: str, hold: float) -> None:
        with gate.shared():
            compile_started.set()
            events.append(f"{tag} start")
            time.sleep(hold)
            events.append(f"{tag} end")

    def bench() -> None:
        with gate.exclusive():
            events.append("bench start")
            time.sleep(0.1)
            events.append("bench end")

    first = threading.Thread(target=compile_, args=("c1", 0.2))
    first.start()
    compile_started.wait()
    b = threading.Thread(target=bench)
    b.start()
    time.sleep(0.05)  # the benchmark is now waiting for c1
    second = threading.Thread(target=compile_, args=("c2", 0.0))
    second.start()
    for t in (first, b, second):
        t.join()
    assert events == ["c1 start", "c1 end", "bench start", "bench end", "c2 start", "c2 end"]


def _named(stdout: str, words: tuple[str, ...]) -> list[str]:
    return sorted(re.split(r":? ", ln, maxsplit=2)[1] for ln in stdout.splitlines()
                  if ln.startswith(words))


@pytest.mark.parametrize("pattern, want", [
    ("mm[local-task]", ["mm[local-task]"]),
    ("mm[local-*]", ["mm[local-sync]", "mm[local-task]"]),
    ("*[local-sync]", ["add[local-sync]", "mm[local-sync]"]),
    ("m?", []),
])
def test_one_filter_selects_alike_in_every_front_end(project: Project, pattern: str, want: list[str]) -> None:
    """``scons test``, ``scons bench``, ``python -m iree_build test`` and ``... bench`` read a
    filter alike (iree_build.testing.selection): a literal ``[device]`` matches, globs still work."""
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/mm.mlir", matmul(8))
    project.write("src/SConscript", """\
        iree_module(name="mm", src="mm.mlir")
        for name in ("mm", "add"):
            iree_test(name=name, module="mm", inputs=["256x8xf32=1", "8x256xf32=1"],
                      expected=["256x256xf32=8"], devices=["local-task", "local-sync"])
            iree_benchmark(name=name, module="mm", function="mm", inputs=["256x8xf32=1", "8x256xf32=1"],
                           devices=["local-task", "local-sync"], repetitions=1, min_time="1x", warmup=0)
        """)
    assert project.scons().returncode == 0
    build = str(project.path("build"))
    fronts = {
        "scons test": project.scons("test", f"--iree-test-filter={pattern}").stdout,
        "scons bench": project.scons("bench", f"--iree-test-filter={pattern}").stdout,
    }
    for command in ("test", "bench"):
        proc = subprocess.run([sys.executable, "-m", "iree_build", command, build, "--filter", pattern,
                               *(["--retest"] if command == "test" else [])],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        fronts[f"python -m iree_build {command}"] = proc.stdout
    for front, stdout in fronts.items():
        assert _named(stdout, ("PASS ", "BENCH ", "FAIL ", "SKIP ")) == want, (front, stdout)


def test_benchmark_resolves_its_function_as_a_test_does(project: Project) -> None:
    """No function named: the module's only export is measured (as iree_test calls it); a
    wrong name lists the module's exports in the FAIL line, in SCons and the standalone runner."""
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/mm.mlir", matmul(8))
    project.write("src/SConscript", """\
        iree_module(name="mm", src="mm.mlir")
        iree_benchmark(name="sole", module="mm", inputs=["256x8xf32=1", "8x256xf32=1"],
                       repetitions=1, min_time="1x", warmup=0)
        iree_benchmark(name="wrong", module="mm", function="main_graph", inputs=["256x8xf32=1", "8x256xf32=1"],
                       repetitions=1, min_time="1x", warmup=0)
        iree_test(name="wrong_test", module="mm", function="main_graph", inputs=["256x8xf32=1", "8x256xf32=1"])
        """)
    want = ("FAIL wrong[local-task] (function 'main_graph' not found in 'mm.vmfb' (exports: mm; "
            "declared at src/SConscript:4))")
    run = project.scons("bench", "-k")
    assert run.returncode == 2, run.output
    assert re.search(r"^BENCH sole\[local-task\]: median ", run.stdout, re.M), run.stdout
    assert want in run.stdout.splitlines(), run.stdout
    assert json.loads(project.path("build/sole.local-task.bench.json").read_text())["function"] == "mm"
    test = project.scons("test", "-k")
    assert ("FAIL wrong_test[local-task] (function 'main_graph' not found in 'mm.vmfb' (exports: mm; "
            "declared at src/SConscript:6))") in test.stdout.splitlines(), test.stdout
    tool = subprocess.run([sys.executable, "-m", "iree_build", "bench", str(project.path("build"))],
                          capture_output=True, text=True, timeout=120)
    assert tool.returncode == 1 and want in tool.stdout.splitlines(), tool.stdout + tool.stderr
    assert re.search(r"^BENCH sole\[local-task\]: median ", tool.stdout, re.M), tool.stdout

"""Long builds tell where they are and what broke: progress, the closing summary, margins,
the results page (opened in headless Chromium where it is installed), and ``scons -h``."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ADD_MLIR, Project

from iree_build.report.history import flaky, record_run
from iree_build.report.page import render
from iree_build.testing.results import TestResult

SCONSTRUCT = """\
from iree_rules import *
SConscript("src/SConscript", variant_dir="build", duplicate=False)
"""

BROKEN = "func.func @add(%a: tensor<4xf32>) -> tensor<4xf32> {\n  return %b : tensor<4xf32>\n}\n"

DECLARATIONS = """\
iree_module(name="add", src="add.mlir")
iree_module(name="broken", src="broken.mlir")
iree_test(name="good", module="add", function="add", inputs=["4xf32=1", "4xf32=2"], expected=["4xf32=3.00005"],
          devices=["local-task", "local-sync"])
iree_test(name="wrong", module="add", function="add", inputs=["4xf32=1", "4xf32=2"], expected=["4xf32=4"])
iree_test(name="shape", module="add", function="add", inputs=["4xf32=1", "4xf32=2"], expected=["2x2xf32=3"])
iree_test(name="orphan", module="broken", function="add", inputs=["4xf32=1"], expected=["4xf32=1"])
"""


def _project(project: Project) -> None:
    project.write("SConstruct", SCONSTRUCT)
    project.write("src/SConscript", DECLARATIONS)
    project.write("src/add.mlir", ADD_MLIR)
    project.write("src/broken.mlir", BROKEN)


def test_log_progress_summary_margins_and_page(project: Project) -> None:
    _project(project)
    run = project.scons("test", "-k", "-j1")
    assert run.returncode == 2
    counters = re.findall(r"^\[(\d+)/(\d+)\] IREE compile", run.stdout, re.M)
    # 2 compiles + 5 tests this build runs: N is known before the first line.
    assert [n for _, n in counters] == ["7", "7"] and counters[0][0] == "1", run.stdout
    lines = run.stdout.splitlines()
    tail = lines[lines.index(next(ln for ln in lines if ln.startswith("Failed compiles"))):]
    assert tail == [
        "Failed compiles (1):",
        "  build/broken.vmfb: IREE compile failed: src/broken.mlir:2:10: error: use of undeclared "
        "SSA value name (declared at src/SConscript:2)",
        "Failed tests by cause (3):",
        "  module not built (1): orphan[local-task]",
        "  shape/dtype mismatch (1): shape[local-task]",
        "  value mismatch (1): wrong[local-task]",
        "2 passed, 3 failed, 0 skipped",
    ], run.stdout
    assert "page: build/iree_test_report.html" in run.stdout

    stored = json.loads(project.path("build/good.local-task.result.json").read_text())
    (margin,) = stored["margins"]
    assert margin["mode"] == "approximate" and 0.3 < margin["used"] < 0.6  # 5e-5 of 1e-4 + 3e-5
    case = next(c for c in ET.parse(project.path("build/iree_test_results.xml")).getroot().iter("testcase")
                if c.get("name") == "good[local-task]")
    assert case.find("properties/property").get("value").endswith("atol 0.0001, rtol 1e-05)")

    page = project.path("build/iree_test_report.html").read_text()
    assert "<span id=count-pass>2</span>" in page and "<span id=count-fail>3</span>" in page

    quiet = project.scons("test", "-k", "--iree-progress=none")
    assert not re.search(r"^\[\d+/\d+\]", quiet.stdout, re.M)
    noop = project.scons("build/add.vmfb")
    assert "up to date" in noop.stdout and "IREE" not in noop.stdout  # nothing counted or printed


def _pty_run(args: list[str], cwd: Path) -> str:
    """Run ``args`` on a pseudo-terminal (a terminal of 100 columns); returns all it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env["COLUMNS"], env["TERM"] = "100", "xterm"
        os.execvpe(args[0], args, env)
    chunks = []
    deadline = time.time() + 240
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    os.waitpid(pid, 0)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def test_terminal_status_line_is_redrawn_in_place_and_cleared(project: Project) -> None:
    _project(project)
    out = _pty_run([sys.executable, "-m", "SCons", "-Q", "-k", "test"], project.root)
    statuses = re.findall(r"\[(\d+)/7(?:, (\d+) failed)?\] \d+:\d\d elapsed", out)
    assert statuses, out
    assert statuses[-1][0] in ("6", "7")  # counted up to the end
    assert "\r\x1b[K" in out  # drawn over, never scrolled
    assert "running: " in out
    # The status is taken away before the summary: the last lines are plain.
    last = out.replace("\r\n", "\n").rstrip("\n").split("\n")[-1]
    assert last == "2 passed, 3 failed, 0 skipped", repr(out[-400:])
    assert not re.search(r"^\[\d+/\d+\] IREE compile", out, re.M)  # no log counters on a terminal


def test_standalone_runner_gives_the_same_summary_and_page(project: Project) -> None:
    _project(project)
    project.scons("test", "-k")
    project.path("build/iree_test_report.html").unlink()
    run = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.path("build")),
                          "--retest"], capture_output=True, text=True, timeout=300)
    lines = run.stdout.splitlines()
    assert lines[-5:] == [
        "Failed tests by cause (3):",
        "  module not built (1): orphan[local-task]",
        "  shape/dtype mismatch (1): shape[local-task]",
        "  value mismatch (1): wrong[local-task]",
        "2 passed, 3 failed, 0 skipped",
    ], run.stdout + run.stderr
    assert project.path("build/iree_test_report.html").is_file()
    runs = [json.loads(line) for line in project.path("build/iree_test_history.jsonl").read_text().splitlines()]
    assert len(runs) == 2 and runs[-1]["tests"]["good[local-sync]"]["o"] == "pass"


def test_scons_h_shows_the_project_and_iree_options_not_scons_own(project: Project) -> None:
    _project(project)
    help_text = project.scons("-h").stdout
    assert "--iree-devices=LIST" in help_text and "IREE: 2 modules, 5 tests" in help_text
    assert "--clean" not in help_text  # SCons' own options are `scons -H`
    assert "--clean" in project.scons("-H").stdout


def test_flaky_tests_are_those_that_passed_and_failed(tmp_path: Path) -> None:
    for status in ("passed", "failed", "passed"):
        runs = record_run(tmp_path, [TestResult("a[local-task]", status), TestResult("b[local-task]", "passed"),
                                     TestResult("c[cuda]", "skipped" if status == "failed" else "passed")])
    assert len(runs) == 3 and flaky(runs) == {"a[local-task]"}
    assert "FAIL" not in render(runs, "t") and "pass~" in render(runs, "t")


def test_a_hand_edited_history_loses_its_bad_lines_only(tmp_path: Path) -> None:
    """Garbage, wrong types and a lone surrogate in the history: those lines are dropped, the
    good runs kept (bytes that are not UTF-8 spoil their line only), and the page is written."""
    from iree_build.report.publish import publish_tests

    record_run(tmp_path, [TestResult("a[local-task]", "passed")])
    history = tmp_path / "iree_test_history.jsonl"
    bad = [
        b"garbage",
        b"[1, 2]",
        b'{"tests": 5}',
        b'{"tests": {"a[local-task]": 5}}',
        b'{"tests": {"a[local-task]": {"o": [], "m": 7, "t": "x"}}}',
        b'{"tests": {"a[local-task]": {"o": "bogus"}}}',
        b'{"tests": {"a[local-task]": {"o": "fail", "m": "\\ud800"}}}',
        b'{"tests": {"a[local-task]": {"o": "fail", "m": "\xff\xfe"}}}',
    ]
    history.write_bytes(history.read_bytes() + b"\n".join(bad) + b"\n")
    page = publish_tests(tmp_path, [TestResult("a[local-task]", "failed", message="<script>x</script>")])
    runs = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines()]
    assert [r["tests"]["a[local-task]"]["o"] for r in runs] == ["pass", "fail", "fail"], runs
    assert runs[1]["tests"]["a[local-task]"]["m"] == "\ufffd\ufffd"  # the bytes that were not UTF-8
    text = page.read_text(encoding="utf-8")
    assert "<script>x" not in text and "a[local-task]" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _chromium(url: str, *args: str) -> str:
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          *args, url], capture_output=True, text=True, timeout=120)
    return run.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_renders_and_filters_in_a_browser(tmp_path: Path) -> None:
    """2000 tests on 3 devices: the matrix renders with the right counts, and filtering by
    outcome (from the address, as a person's click leaves it) shows only those rows."""
    results = []
    for i in range(2000):
        for device in ("local-task", "local-sync", "vulkan"):
            status = "failed" if i % 97 == 0 and device == "vulkan" else \
                "crashed" if i == 5 and device == "local-sync" else "passed"
            results.append(TestResult(f"suite{i % 7}/op_{i:04d}[{device}]", status,
                                      "output 0 mismatch" if status == "failed" else ""))
    record_run(tmp_path, results)
    from iree_build.report.history import load
    from iree_build.report.page import write_page

    page = write_page(tmp_path, load(tmp_path / "iree_test_history.jsonl"))
    dom = _chromium(page.as_uri() + "#o=fail,crash", "--dump-dom")
    visible = re.findall(r'<tr data-n="([^"]*)"(?! hidden)', dom)
    failing = {f"suite{i % 7}/op_{i:04d}" for i in range(2000) if i % 97 == 0} | {"suite5/op_0005"}
    assert set(visible) == failing, sorted(set(visible) ^ failing)[:5]
    assert re.search(r'id="count-fail">21<', dom) and re.search(r'id="count-pass">5978<', dom)
    assert re.search(r'id="shown">22<', dom)
    shot = tmp_path / "page.png"
    _chromium(page.as_uri(), f"--screenshot={shot}", "--window-size=1000,700")
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one

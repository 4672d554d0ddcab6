"""What ``scons -c`` removes beyond SCons' own targets, and the temporaries a killed build left.

Test results and benchmark files are targets SCons never visits on a plain
``scons -c`` (they are kept out of folder targets so that ``scons`` does not run
tests); reports, plots and the ONNX policy cache are written beside the build
by the actions themselves. ``iree_bench_history.jsonl`` and
``iree_test_history.jsonl`` are kept: they are the record of earlier runs that
the reports and the page are drawn from, which no build can make again.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from pathlib import Path

from SCons.Script import COMMAND_LINE_TARGETS, GetOption

from iree_build.compile.pool import DIAG_DIR, TMP_DIR
from iree_build.util.atomic import remove_dead_temps

from .registry import registry

TOP_FILES = (".iree_onnx_policy.json",)
TOP_FOLDERS = (TMP_DIR, DIAG_DIR)  # compile workers' TMPDIR and diagnostics
BUILD_FILES = (
    "iree_tests.json",
    "iree_test_results.xml",
    "iree_benchmarks.json",
    "iree_bench_results.json",
    "iree_bench_report.html",
    "iree_test_report.html",  # the page: drawn again from the histories by the next run
)
PLOTS = "iree_bench_plots"


def sweep_temps(folders) -> None:
    """Remove ``.NAME.tmp-PID`` files whose process is gone, in each folder."""
    for folder in set(folders):
        remove_dead_temps(folder, "")


def set_up(env) -> None:
    """Under ``scons -c`` (of the whole tree, ``test`` or ``bench``): remove the rest once
    SCons has cleaned its targets."""
    if not GetOption("clean"):
        return
    if COMMAND_LINE_TARGETS and not {"test", "bench", "."} & set(COMMAND_LINE_TARGETS):
        return
    reg = registry(env)
    if reg.once("cleanup"):
        atexit.register(_clean, reg, env.Dir("#").get_abspath())


def _remove(path: str, top: str) -> None:
    p = Path(path)
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            return
    except OSError:
        return
    if not GetOption("silent"):
        sys.stdout.write(f"Removed {os.path.relpath(path, top)}\n")


def _clean(reg, top: str) -> None:
    folders = {top}
    files = [os.path.join(top, name) for name in (*TOP_FILES, *TOP_FOLDERS)]
    if reg.build_dir is not None:
        bdir = reg.build_dir.get_abspath()
        folders.add(bdir)
        files += [os.path.join(bdir, name) for name in BUILD_FILES]
        plots = Path(bdir) / PLOTS
        if plots.is_dir():
            files += [str(p) for p in plots.glob("*.png")]
    for test in reg.tests:
        files.append(test.result.get_abspath())
        folders.add(test.result.dir.get_abspath())
    for bench in reg.benchmarks:
        files.append(bench.result.get_abspath())
        folders.add(bench.result.dir.get_abspath())
    folders.update(reg.stages)
    for path in files:
        _remove(path, top)
    if reg.build_dir is not None:
        try:
            (Path(reg.build_dir.get_abspath()) / PLOTS).rmdir()
        except OSError:
            pass
    sweep_temps(folders)

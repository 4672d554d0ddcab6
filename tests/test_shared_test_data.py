"""Test data in the build tree: staged once per folder, shared by the tests that read it."""

from __future__ import annotations

import json
import textwrap

import numpy as np
from conftest import ADD_MLIR, Project


def _variant_project(project: Project, sconscript: str) -> np.ndarray:
    """An SConstruct reading ``src/SConscript`` under ``build/``, with ``add.mlir``,
    ``x.npy`` and ``twice.npy`` (2 * x) in ``src``; returns x."""
    project.write("SConstruct", """\
        from iree_rules import *
        SConscript("src/SConscript", variant_dir="build", duplicate=False)
        """)
    project.write("src/SConscript", sconscript)
    project.write("src/add.mlir", ADD_MLIR)
    x = np.arange(4, dtype=np.float32)
    np.save(project.path("src/x.npy"), x, allow_pickle=False)
    np.save(project.path("src/twice.npy"), x + x, allow_pickle=False)
    return x


def test_tests_reading_one_file_share_its_copy_in_the_build_tree(project: Project) -> None:
    x = _variant_project(project, """\
        iree_module(name="add", src="add.mlir")
        for n in range(3):
            iree_test(name=f"t{n}", module="add", function="add", inputs=["x.npy", "x.npy"],
                      expected=["twice.npy"])
        """)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines()[-1] == "3 passed, 0 failed, 0 skipped"
    npy = sorted(p.name for p in project.path("build").glob("*.npy"))
    assert npy == ["twice.npy", "x.npy"]  # not one copy per test and input
    assert project.scons("-q", "test").returncode == 0  # up to date

    np.save(project.path("src/x.npy"), x + 1, allow_pickle=False)  # every reader sees the change
    again = project.scons("test", "-k")
    assert again.returncode == 2
    assert [line.split(" (")[0] for line in again.stdout.splitlines() if line.startswith("FAIL")] == [
        "FAIL t0[local-task]", "FAIL t1[local-task]", "FAIL t2[local-task]"]


def test_staged_data_is_one_action_per_folder_and_restaged_when_deleted(project: Project) -> None:
    """Literals and copies are written by the folder's stage, not one target each; a test
    depends on the copied file's source and on its literals' hashes only, so adding a
    test reruns no other; a staged file deleted by hand comes back on the next build."""
    tests = """\
        iree_module(name="add", src="add.mlir")
        iree_test(name="lit", module="add", function="add", inputs=[[1.0, 2.0, 3.0, 4.0], "x.npy"],
                  expected=[[1.0, 3.0, 5.0, 7.0]])
        iree_test(name="copy", module="add", function="add", inputs=["x.npy", "x.npy"],
                  expected=["twice.npy"])
        """
    x = _variant_project(project, tests)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert "2 tests run" in run.stdout
    staged = {"lit.input0.npy", "lit.expected0.npy", "x.npy", "twice.npy"}
    assert {p.name for p in project.path("build").glob("*.npy")} == staged
    assert set(json.loads(project.path("build/.iree_data.json").read_text())) == staged
    tree = project.scons("--tree=all", "-n", "test").stdout
    assert "lit.input0.npy" not in tree and "build/x.npy" not in tree  # no target per file
    assert "src/x.npy" in tree  # the copy's source is what a test depends on

    project.write("src/SConscript", textwrap.dedent(tests) + textwrap.dedent("""\
        iree_test(name="more", module="add", function="add", inputs=[[0.0] * 4, [0.0] * 4],
                  expected=[[0.0] * 4])
        """))
    added = project.scons("test")
    assert added.returncode == 0, added.output
    assert "1 test run, 2 up to date" in added.stdout  # the others did not rerun

    project.path("build/x.npy").unlink()
    project.path("build/lit.input0.npy").unlink()
    rebuilt = project.scons(".")
    assert rebuilt.returncode == 0, rebuilt.output
    assert np.array_equal(np.load(project.path("build/x.npy"), allow_pickle=False), x)
    assert project.path("build/lit.input0.npy").is_file()
    assert project.scons("-q", ".").returncode == 0  # and then it is up to date

    project.write("src/SConscript", tests.replace("[1.0, 3.0, 5.0, 7.0]", "[1.0, 3.0, 5.0, 8.0]"))
    changed = project.scons("test", "-k")  # a changed literal reruns its test only
    assert [ln.split(" (")[0] for ln in changed.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))] == [
        "FAIL lit[local-task]"], changed.output

    cleaned = project.scons("-c", ".", "test")
    assert cleaned.returncode == 0, cleaned.output
    left = sorted(p.name for p in project.path("build").glob("*.npy"))
    assert left == ["more.expected0.npy", "more.input0.npy", "more.input1.npy"]  # no longer declared

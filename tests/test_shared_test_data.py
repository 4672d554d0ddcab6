"""A data file read by many tests under a variant dir is one build target, copied once."""

from __future__ import annotations

import numpy as np

from conftest import ADD_MLIR, Project


def test_tests_reading_one_file_share_its_copy_in_the_build_tree(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        SConscript("src/SConscript", variant_dir="build", duplicate=False)
        """)
    project.write("src/SConscript", """\
        iree_module(name="add", src="add.mlir")
        for n in range(3):
            iree_test(name=f"t{n}", module="add", function="add", inputs=["x.npy", "x.npy"],
                      expected=["twice.npy"])
        """)
    project.write("src/add.mlir", ADD_MLIR)
    x = np.arange(4, dtype=np.float32)
    np.save(project.path("src/x.npy"), x, allow_pickle=False)
    np.save(project.path("src/twice.npy"), x + x, allow_pickle=False)
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

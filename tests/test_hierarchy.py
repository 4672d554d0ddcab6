"""Larger projects: SConscript hierarchies, two configurations, labels, folder and tag selection,
a readable ``scons -h``. Real ``scons`` processes over a generated three-level tree."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ADD_MLIR, Project


def _names(out: str, word: str = "PASS") -> set[str]:
    return {ln.split(" (")[0][len(word) + 1:] for ln in out.splitlines() if ln.startswith(word + " ")}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Project:
    """models/{mlp,mlp/deep,cnn} read twice, for llvm-cpu and vmvx, each in its variant dir."""
    project = Project(tmp_path_factory.mktemp("tree"))
    project.write("SConstruct", """\
        from iree_rules import *
        base = IreeEnvironment()
        for config, backends in (("cpu", ["llvm-cpu"]), ("vmvx", ["vmvx"])):
            env = base.Clone(IREE_TARGET_BACKENDS=backends)
            SConscript("models/SConscript", variant_dir=f"build/{config}", duplicate=False,
                       exports={"env": env})
        """)
    project.write("models/SConscript", """\
        Import("env")
        env.iree_module(name="add", src="add.mlir")
        env.iree_test(name="smoke", module="add", function="add", inputs=[[1.0] * 4, [2.0] * 4],
                      expected=[[3.0] * 4], tags=["fast"])
        SConscript(dirs=["mlp", "cnn"], exports="env")
        """)
    for folder, tags in (("mlp", '["fast"]'), ("cnn", '["slow", "gpu"]')):
        project.write(f"models/{folder}/SConscript", f"""\
            Import("env")
            env.iree_module(name="m", src="../add.mlir")
            env.iree_test(name="smoke", module="m", function="add", inputs=[[1.0] * 4, [1.0] * 4],
                          expected=[[2.0] * 4], tags={tags})
            {'SConscript(dirs=["deep"], exports="env")' if folder == "mlp" else ""}
            """)
    project.write("models/mlp/deep/SConscript", """\
        Import("env")
        env.iree_module(name="m", src="../../add.mlir")
        env.iree_test(name="smoke", module="m", function="add", inputs=[[0.0] * 4, [5.0] * 4],
                      expected=[[5.0] * 4])
        """)
    project.write("models/add.mlir", ADD_MLIR)
    assert project.scons("-j2").returncode == 0
    return project


ALL = {f"{config}{folder}:smoke[local-task]" for config in ("cpu", "vmvx")
       for folder in ("", "/mlp", "/mlp/deep", "/cnn")}


def test_same_names_in_every_folder_and_configuration(tree: Project) -> None:
    run = tree.scons("test", "--iree-retest", "-j2")
    assert run.returncode == 0, run.output
    assert _names(run.stdout) == ALL
    assert run.stdout.splitlines()[-1] == "8 passed, 0 failed, 0 skipped"


def test_folder_selection_takes_the_folder_and_below(tree: Project) -> None:
    run = tree.scons("test", "models/mlp", "--iree-retest")
    assert run.returncode == 0, run.output
    assert _names(run.stdout) == {"cpu/mlp:smoke[local-task]", "cpu/mlp/deep:smoke[local-task]",
                                  "vmvx/mlp:smoke[local-task]", "vmvx/mlp/deep:smoke[local-task]"}
    variant = tree.scons("test", "build/vmvx/cnn", "--iree-retest")
    assert _names(variant.stdout) == {"vmvx/cnn:smoke[local-task]"}


def test_tag_selection_includes_and_excludes(tree: Project) -> None:
    run = tree.scons("test", "--iree-retest", "--iree-test-tags=fast,gpu", "--iree-test-filter=cpu[:/]*")
    assert _names(run.stdout) == {"cpu:smoke[local-task]", "cpu/mlp:smoke[local-task]",
                                  "cpu/cnn:smoke[local-task]"}
    run = tree.scons("test", "--iree-retest", "--iree-test-tags=-slow")
    assert _names(run.stdout) == ALL - {"cpu/cnn:smoke[local-task]", "vmvx/cnn:smoke[local-task]"}
    none = tree.scons("test", "--iree-test-tags=nosuchtag")
    assert none.returncode == 0
    assert "none of the 8 declared tests matches" in none.stdout
    bad = tree.scons("test", "--iree-test-tags=gpu,-")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "scons: *** command line: --iree-test-tags: tag '' is not a tag name (letters, digits, "
        "'_', '.', '+', '-'; not starting with '-')")
    assert "nothing to test" not in bad.stdout


def test_standalone_runner_selects_the_same_way(tree: Project) -> None:
    proc = subprocess.run([sys.executable, "-m", "iree_build", "test", str(tree.path("build")),
                           "models/mlp", "--tags=-fast", "--retest"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _names(proc.stdout) == {"cpu/mlp/deep:smoke[local-task]", "vmvx/mlp/deep:smoke[local-task]"}
    by_label = subprocess.run([sys.executable, "-m", "iree_build", "test", str(tree.path("build")),
                               "vmvx/mlp", "--retest"], capture_output=True, text=True)
    assert _names(by_label.stdout) == {"vmvx/mlp:smoke[local-task]", "vmvx/mlp/deep:smoke[local-task]"}


@pytest.mark.parametrize(
    ("devices", "says"),
    [
        ("cudaa", "unknown device 'cudaa' in {opt} (did you mean 'cuda'?)"),
        ("local-task@sparc", "{opt}: unknown architecture 'sparc' in 'local-task@sparc'"),
        ("cuda://x", "{opt}: 'cuda://x' is not one GPU: write DRIVER://N"),
        ("local-task://1", "{opt}: 'local-task://1' is not one GPU"),
        ("vulkan@aarch64", "{opt}: 'vulkan@aarch64' is not a lane"),
    ],
)
def test_a_device_filter_that_would_select_nothing_by_a_typo_is_one_line_everywhere(
    tree: Project, devices: str, says: str
) -> None:
    scons = tree.scons("test", f"--iree-devices={devices}")
    assert scons.returncode == 2 and scons.stderr.strip().startswith(
        "scons: *** command line: " + says.format(opt="--iree-devices")), scons.output
    assert "Traceback" not in scons.output
    proc = subprocess.run([sys.executable, "-m", "iree_build", "test", str(tree.path("build")),
                           f"--devices={devices}"], capture_output=True, text=True)
    assert proc.returncode == 2 and says.format(opt="--devices") in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_help_is_a_summary_and_the_list_on_request(tree: Project) -> None:
    short = tree.scons("-h")
    assert short.returncode == 0, short.output
    assert "IREE: 8 modules, 8 tests" in short.stdout
    assert "models/mlp/deep" in short.stdout and "tags: fast (4), gpu (2), slow (2)" in short.stdout
    assert "smoke[local-task]" not in short.stdout
    assert "--iree-test-tags" in short.stdout
    full = tree.scons("-h", "--iree-list")
    assert all(f"test   {name}" in full.stdout for name in ALL), full.stdout
    assert "module build/vmvx/mlp/deep/m.vmfb" in full.stdout


def test_a_name_twice_in_one_folder_is_refused(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="add", src="add.mlir")
        iree_test(name="t", module="add", function="add", inputs=[[1.0] * 4, [2.0] * 4])
        iree_test(name="t", module="add", function="add", inputs=[[1.0] * 4, [3.0] * 4])
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("-n")
    assert run.returncode == 2
    assert run.stderr.strip() == "scons: *** SConstruct:4: test t[local-task] is already declared in this folder"

"""Every example under ``examples/`` builds from a fresh copy, and its tests that this
machine can run pass (or fail the way the example means them to); tests for a device
that is not here (cuda, vulkan) skip."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import Project

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "SConstruct").is_file())

# What `scons test -k` ends with where the example's tests fail on purpose.
EXPECTED_FAILURES = {"faults": ["CRASH cpu_faults/cpu/crash.mlir::test_crash[local-task]"]}
GPU_DEVICES = ("[cuda]", "[vulkan]", "[hip]", "[rocm]")


def test_every_example_is_covered() -> None:
    assert {"quickstart", "gpu", "bench_gpu", "faults", "onnx"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_builds_and_tests_from_a_fresh_copy(name: str, tmp_path: Path) -> None:
    if name == "onnx":
        pytest.importorskip("onnx")
    shutil.copytree(EXAMPLES / name, tmp_path / name, ignore=shutil.ignore_patterns(
        "build", ".sconsign*", ".iree_build*", "__pycache__"))
    project = Project(tmp_path / name)
    build = project.scons("-j2")
    assert build.returncode == 0, build.output
    assert build.compiled(), build.output
    assert project.scons("-q").returncode == 0  # built means up to date

    test = project.scons("-j2", "test", "-k")
    lines = test.stdout.splitlines()
    failed = [ln.split(" (", 1)[0] for ln in lines if ln.startswith(("FAIL ", "CRASH ", "TIMEOUT ", "ERROR "))]
    assert failed == EXPECTED_FAILURES.get(name, []), test.output
    assert test.returncode == (2 if failed else 0), test.output
    skipped = [ln for ln in lines if ln.startswith("SKIP ")]
    assert all(any(d in ln for d in GPU_DEVICES) for ln in skipped), skipped  # only devices not here
    summary = [ln for ln in lines if re.fullmatch(r"\d+ passed, \d+ failed, \d+ skipped", ln)]
    if "no tests are declared here" not in test.output:
        assert summary and not summary[-1].startswith("0 passed"), test.output

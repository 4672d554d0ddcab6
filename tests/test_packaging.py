"""The wheel as a user installs it: built from this tree, installed without extras in a fresh
venv (not editable), it runs the quickstart; a feature of a missing extra is one line that
names the extra to install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel built from this tree, and its dependencies only."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)], tmp)
    if built.returncode != 0:
        pytest.skip(f"the wheel could not be built here (no package index?): {built.stderr.strip()[-300:]}")
    (wheel,) = wheels.glob("iree_build_scons-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp)
    if install.returncode != 0:
        pytest.skip(f"the wheel's dependencies could not be installed here: {install.stderr.strip()[-300:]}")
    return python


def test_wheel_without_extras_runs_the_quickstart(installed: Path, tmp_path: Path) -> None:
    project = tmp_path / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", project)
    where = _run([str(installed), "-c", "import iree_rules, iree_build; print(iree_build.__file__)"], project)
    assert where.returncode == 0 and "site-packages" in where.stdout, where.stdout + where.stderr
    build = _run([str(installed), "-m", "SCons", "-Q"], project)
    assert build.returncode == 0, build.stdout + build.stderr
    test = _run([str(installed), "-m", "SCons", "-Q", "test"], project)
    assert test.returncode == 0, test.stdout + test.stderr
    assert test.stdout.splitlines()[-1] == "4 passed, 0 failed, 0 skipped", test.stdout


def test_a_missing_extra_is_one_line_naming_it(installed: Path, tmp_path: Path) -> None:
    project = tmp_path / "extras"
    project.mkdir()
    (project / "model.onnx").write_bytes(b"\x08\x07")  # never read: the missing package is said first
    (project / "SConstruct").write_text('from iree_rules import *\niree_module(name="m", src="model.onnx")\n')
    onnx = _run([str(installed), "-m", "SCons", "-Q"], project)
    assert onnx.returncode == 2, onnx.stdout + onnx.stderr
    (line,) = onnx.stderr.strip().splitlines()
    assert "pip install 'iree-build-scons[onnx]'" in line and "Traceback" not in onnx.stderr, onnx.stderr

    (project / "SConstruct").write_text('from iree_rules import *\n')
    (project / "add.mlir").write_text((ROOT / "examples" / "quickstart" / "src" / "add.mlir").read_text())
    (project / "SConstruct").write_text('from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
    cluster = _run([str(installed), "-m", "SCons", "-Q", "--iree-cluster=tcp://127.0.0.1:9"], project)
    assert cluster.returncode == 2, cluster.stdout + cluster.stderr
    errors = [e for e in cluster.stderr.strip().splitlines() if e]
    assert len(errors) == 1 and "pip install 'iree-build-scons[cluster]'" in errors[0], cluster.stderr
    assert "Traceback" not in cluster.stderr


def test_every_package_of_the_tree_is_in_the_wheel() -> None:
    """pyproject lists packages by hand (two are installed under other names): a new engine
    folder missing from the list would be missing from every user's install."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts).replace("rules", "iree_rules", 1)
             for p in ROOT.glob("*/**/__init__.py") if p.parent.parts[len(ROOT.parts)] in ("iree_build", "rules")}
    assert found <= listed, sorted(found - listed)

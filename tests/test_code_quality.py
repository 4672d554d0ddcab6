"""The product and tests are clean under ruff and mypy (configured in pyproject.toml)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_ruff_clean():
    run = _run("ruff", "check", "iree_build", "rules", "tests", "benchmarks", "examples", "toolchains")
    assert run.returncode == 0, run.stdout + run.stderr


def test_product_formatted():
    run = _run("ruff", "format", "--check", "iree_build", "rules")
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_clean():
    run = _run("mypy")
    assert run.returncode == 0, run.stdout + run.stderr

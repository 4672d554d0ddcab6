"""Fixtures: real SCons processes building real IREE modules in temporary folders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ADD_MLIR = """\
func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.addf %a, %b : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

MUL_MLIR = """\
func.func @mul(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %a, %b : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

MATMUL_MLIR = """\
func.func @mm(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>) -> tensor<8x4xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
"""

ENDLESS_LOOP = """\
  %zero = util.unfoldable_constant 0 : i32
  %one = util.unfoldable_constant 1 : i32
  %r = scf.while (%i = %zero) : (i32) -> i32 {
    %go = arith.cmpi sge, %i, %zero : i32
    scf.condition(%go) %i : i32
  } do {
  ^bb0(%j: i32):
    %k = arith.muli %j, %one : i32
    scf.yield %k : i32
  }
  %t = tensor.from_elements %r : tensor<1xi32>
"""
"""Function-body lines of a host-side loop whose condition the compiler cannot fold: it
never ends; ``%t`` (``tensor<1xi32>``) would be its value."""

BAD_MLIR = """\
func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.addf %a, %b : tensor<5xf32>
  return %0 : tensor<4xf32>
}
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def compiled(self) -> list[str]:
        """Targets of the ``IREE compile ... -> TARGET [...]`` progress lines."""
        out = []
        for line in self.stdout.splitlines():
            line = re.sub(r"^\[\d+/\d+\] ", "", line)  # the progress counter of a log
            if line.startswith("IREE compile "):
                out.append(line.split(" -> ", 1)[1].split(" [", 1)[0])
        return sorted(out)

    def commands(self) -> dict[str, str]:
        """``iree-compile`` command lines (``--iree-verbose``) by output, without the progress counter."""
        lines = (re.sub(r"^\[\d+/\d+\] ", "", line) for line in self.stdout.splitlines())
        return {ln.rsplit(" -o ", 1)[1]: ln for ln in lines if ln.startswith("iree-compile ")}


class Project:
    """A temporary SCons project; ``scons()`` runs a real SCons process in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def path(self, rel: str) -> Path:
        return self.root / rel

    def scons(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "SCons", "-Q", "-C", str(self.root), *args],
            capture_output=True, text=True, env=full_env, timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)


def write_onnx_matmul(path: Path, n: int = 16, weights: str = "mm.weights") -> None:
    """An ONNX model ``Y = X @ W`` (X: 2xN) whose NxN weights live in an external data file."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(n * n, dtype=np.float32).reshape(n, n), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "mm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=weights, size_threshold=0)


@pytest.fixture(scope="session", autouse=True)
def _stop_cluster_agents():
    """Cluster agents (iree_build/cluster/agent.py) that builds under test start live in a
    folder of this session (made when its first test starts: a session that runs none, or
    only collects, leaves none), and are stopped by PID when it ends."""
    folder = tempfile.mkdtemp(prefix="iree_agents_")
    os.environ["IREE_CLUSTER_AGENT_DIR"] = folder
    yield
    from iree_build.cluster.agent import stop_agents

    stop_agents()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def worker_pids(root: Path) -> list[int]:
    """PIDs of live compile workers started for the project at ``root``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"iree_build.compile.worker" not in cmd:
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == root.resolve():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids

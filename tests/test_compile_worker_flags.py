"""A compile worker forgets what an earlier compile set: workers are reused across
modules, and on a cluster across projects."""

from __future__ import annotations

from pathlib import Path

from conftest import ADD_MLIR
from test_dependencies import SPEC

from iree_build.compile.compiler_info import compiler_info
from iree_build.compile.pool import CompilePool
from iree_build.compile.request import CompileRequest

CPU = ("--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
       "--iree-llvmcpu-target-cpu=generic")


def test_a_tuning_spec_does_not_outlive_its_module(tmp_path: Path) -> None:
    (tmp_path / "add.mlir").write_text(ADD_MLIR)
    (tmp_path / "spec.mlir").write_text(SPEC)
    identity = compiler_info().identity
    pool = CompilePool(size=1)  # one worker: the second compile runs where the first ran
    try:
        tuned = pool.compile(CompileRequest("add.mlir", "tuned.vmfb",
                                            (*CPU, "--iree-codegen-tuning-spec-path=spec.mlir"), identity),
                             cwd=str(tmp_path))
        assert tuned.ok, tuned.diagnostics
        (tmp_path / "spec.mlir").unlink()  # the option is process-global in the compiler
        plain = pool.compile(CompileRequest("add.mlir", "plain.vmfb", CPU, identity), cwd=str(tmp_path))
        assert plain.ok, plain.diagnostics  # it failed with "Failed to load tuning spec" before
    finally:
        pool.close()
    assert (tmp_path / "plain.vmfb").stat().st_size > 0

"""The compile plan (iree_build.compile.plan), without SCons: one argument list in a fixed
order, the files it reads, flag files read only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from iree_build.compile.plan import plan_module
from iree_build.errors import IreeBuildError

REGISTERED = ["llvm-cpu", "vmvx", "cuda"]


def in_sub(path: str, origin: str) -> str:
    """Paths as the SCons side maps them: relative to the declaring SConscript (sub/)."""
    if path.startswith("missing"):
        raise IreeBuildError(f"{origin} names '{path}', which does not exist (sub/{path})")
    return "sub/" + path


def test_flags_in_one_order_and_the_files_they_read() -> None:
    plan = plan_module(lambda suffix: "sub/m" + suffix, resolve=in_sub, registered=REGISTERED,
                       target_backends=["llvm-cpu", "cuda"], cpu="generic", triple="x86_64-unknown-linux-gnu",
                       env_flags=["@env.flags"], model_flags=["--iree-input-demote-f64-to-f32=false"],
                       flags=["--iree-codegen-tuning-spec-path=spec.mlir"],
                       backend_flags={"cuda": ["--iree-cuda-target=sm_80"], "vmvx": ["--not-mine"]})
    assert plan.output == "sub/m.vmfb" and plan.backends == ("llvm-cpu", "cuda")
    assert plan.args == (
        "--iree-hal-target-device=local,cuda", "--iree-hal-local-target-device-backends=llvm-cpu",
        "--iree-hal-link-executables=false",
        "--iree-llvmcpu-target-triple=x86_64-unknown-linux-gnu", "--iree-llvmcpu-target-cpu=generic",
        "@sub/env.flags", "--iree-input-demote-f64-to-f32=false",
        "--iree-codegen-tuning-spec-path=sub/spec.mlir", "--iree-cuda-target=sm_80")
    assert plan.reads == ("sub/env.flags", "sub/spec.mlir") and plan.flag_files == ("sub/env.flags",)
    assert plan.cpu_arch == "x86_64"  # its CPU code runs only there (vmvx would run anywhere)
    assert plan.summary == "llvm-cpu, cuda, cpu=generic"


def test_flag_files_are_read_when_the_flags_are_asked_for(tmp_path: Path) -> None:
    plan = plan_module(lambda suffix: "m" + suffix, resolve=lambda p, o: p, registered=REGISTERED,
                       target_backends=["vmvx"], flags=["@gen.flags", "--iree-opt-level=O2"])
    assert plan.flags(str(tmp_path), missing_ok=True)[-2:] == ("@gen.flags", "--iree-opt-level=O2")
    with pytest.raises(FileNotFoundError):
        plan.flags(str(tmp_path))
    (tmp_path / "gen.flags").write_text("# made by another rule\n--iree-opt-const-eval=false 'x y'\n")
    assert plan.flags(str(tmp_path))[-3:] == ("--iree-opt-const-eval=false", "x y", "--iree-opt-level=O2")


def test_declaration_mistakes_are_errors() -> None:
    with pytest.raises(IreeBuildError, match=r"^\$IREE_COMPILEFLAGS names 'missing.flags'"):
        plan_module(lambda s: "m" + s, resolve=in_sub, registered=REGISTERED, target_backends=["vmvx"],
                    env_flags=["@missing.flags"])
    with pytest.raises(IreeBuildError, match="does not start with '-'"):
        plan_module(lambda s: "m" + s, resolve=in_sub, registered=REGISTERED, target_backends=["vmvx"],
                    flags=["O3"])
    with pytest.raises(IreeBuildError, match="already says the targets"):
        plan_module(lambda s: "m" + s, resolve=in_sub, registered=REGISTERED, toolchain="cpu-host",
                    cpu="generic")

"""Toolchains through the rules: toolchain=, --iree-toolchain, project presets, outputs."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ADD_MLIR, Project

ADD_TEST = 'inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], expected=[[2.0, 3.0, 4.0, 5.0]]'


def test_presets_cross_compiling_and_static_library_linking(project: Project) -> None:
    project.write("SConstruct", f"""\
        from iree_rules import *
        iree_module(name="portable", src="add.mlir", toolchain="vmvx")
        iree_module(name="arm", src="add.mlir", toolchain="aarch64-linux")
        iree_module(name="gpu", src="add.mlir", toolchain="cuda-sm80")
        iree_module(name="static", src="add.mlir", toolchain="llvm-cpu-static-library")
        iree_test(name="t_portable", module="portable", function="add", {ADD_TEST},
                  devices=["local-sync"])
        iree_test(name="t_arm", module="arm", function="add", {ADD_TEST})
        env = Environment()
        lib = env.StaticLibrary("dispatch", ["static_dispatch.o"])
        env.Program("user", ["user.c", lib])
        """)
    project.write("add.mlir", ADD_MLIR)
    # Links against the executable library the static-library preset wrote.
    project.write("user.c", """\
        extern const void** add_dispatch_0_library_query(int max_version, const void* environment);
        int main(void) { return add_dispatch_0_library_query ? 0 : 1; }
        """)
    # No aarch64 runtime tools here: the emulated lane (tests/test_emulator.py) says so.
    project.write("no-tools/.keep", "")
    run = project.scons(".", "test", "-j2",
                        env={"IREE_RUNTIME_TOOLS_AARCH64": str(project.path("no-tools"))})
    assert run.returncode == 0, run.output
    assert "IREE compile add.mlir -> arm.vmfb [llvm-cpu, cpu=generic, aarch64]" in run.stdout
    assert "IREE compile add.mlir -> gpu.vmfb [cuda, sm_80]" in run.stdout
    assert "PASS t_portable[local-sync]" in run.stdout
    assert ("SKIP t_arm[local-task@aarch64] (arm.vmfb holds aarch64 code only; this machine is x86_64"
            in run.stdout)
    assert run.stdout.splitlines()[-1] == "1 passed, 0 failed, 1 skipped"
    tool = os.path.join(os.path.dirname(sys.executable), "iree-dump-module")
    dump = subprocess.run([tool, str(project.path("arm.vmfb"))],
                          capture_output=True, text=True).stdout
    assert "embedded-elf-arm_64" in dump
    assert subprocess.run([str(project.path("user"))]).returncode == 0

    assert project.scons("-q", "user", "static.vmfb").returncode == 0  # all up to date
    assert project.scons("-c").returncode == 0
    for name in ("static.vmfb", "static_dispatch.o", "static_dispatch.h", "arm.vmfb"):
        assert not project.path(name).exists(), name


def test_project_presets_and_the_command_line_toolchain(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="any", src="add.mlir")
        iree_module(name="mine", src="add.mlir", toolchain="my-cuda")
        """)
    project.write("toolchains/my-cuda.toml", """\
        description = "our GPUs"
        extends = "cuda-sm80"
        [options]
        cuda_target = "sm_86"
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("--iree-toolchain=vmvx")
    assert run.returncode == 0, run.output
    assert "IREE compile add.mlir -> any.vmfb [vmvx]" in run.stdout
    assert "IREE compile add.mlir -> mine.vmfb [cuda, sm_86]" in run.stdout
    again = project.scons("--iree-toolchain=x86_64-generic", "--debug=explain")
    assert "rebuilding `any.vmfb' because the build action changed" in again.stdout
    assert again.compiled() == ["any.vmfb"]


def test_toolchain_errors_name_the_file_and_key(project: Project) -> None:
    project.write("add.mlir", ADD_MLIR)
    project.write("toolchains/broken.toml", 'description = "x"\ntarget_backends = ["cuda"]\n'
                  '[options]\ncuda_target = "sm_90"\n')
    project.write("toolchains/typo.toml", 'target_backend = ["vmvx"]\n')
    cases = {
        'toolchain="nope"': "no toolchain 'nope'; known toolchains: aarch64-linux",
        'toolchain="webgpu-wgsl"': "target backend 'webgpu-wgsl' is not registered in this compiler; "
                                   "registered: cuda, llvm-cpu",
        'toolchain="broken"': "toolchains/broken.toml: options.cuda_target = 'sm_90': iree-base-compiler 3.13 cannot build CUDA code for it",
        'toolchain="typo"': "toolchains/typo.toml",
        'toolchain="vmvx", cpu="host"': "toolchain='vmvx' already says the targets",
    }
    for args, message in cases.items():
        project.write("SConstruct", f'from iree_rules import *\niree_module(name="m", src="add.mlir", {args})\n')
        run = project.scons()
        assert run.returncode == 2, run.output
        assert message in run.stderr, (args, run.stderr)
        assert run.stderr.startswith("scons: *** SConstruct:2: "), run.stderr
        assert "Traceback" not in run.output


def test_vulkan_preset_runs_on_the_vulkan_device_and_bare_metal_outputs_are_declared(project: Project) -> None:
    from iree_build.testing.devices import device_status

    project.write("SConstruct", f"""\
        from iree_rules import *
        iree_module(name="vk", src="add.mlir", toolchain="vulkan-spirv")
        iree_module(name="bm", src="add.mlir", toolchain="bare-metal")
        iree_test(name="t_vk", module="vk", function="add", {ADD_TEST}, devices=["vulkan"])
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons(".", "test")
    assert run.returncode == 0, run.output
    assert "IREE compile add.mlir -> bm.h [llvm-cpu, cpu=generic, x86_64, static-library, vm-c]" in run.stdout
    for name in ("bm.h", "bm_dispatch.o", "bm_dispatch.h"):
        assert project.path(name).exists(), name
    assert "module_create" in project.path("bm.h").read_text()
    if device_status("vulkan")[0]:
        assert run.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    else:
        assert run.stdout.splitlines()[-1] == "0 passed, 0 failed, 1 skipped"
    if os.environ.get("CI") == "true":  # CI installs lavapipe: the preset must really run there
        assert device_status("vulkan")[0]
    assert project.scons("-c").returncode == 0
    assert not any(project.path(n).exists() for n in ("bm.h", "bm_dispatch.o", "bm_dispatch.h", "vk.vmfb"))

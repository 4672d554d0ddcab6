"""Toolchain presets: every shipped preset compiles the add module to what it promises.

The compiles are real (``iree-compile`` in a subprocess with ``Toolchain.flags``)
and what they wrote is read back with ``iree-dump-module``; bad preset files
must fail while loading, naming the file and the key, before any compile.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from iree_build.compile.compiler_info import compiler_info
from iree_build.errors import IreeBuildError
from iree_build.targets import options as target_options
from iree_build.targets.toolchains import ENV_VAR, find_toolchain, list_toolchains, shipped_dirs

ADD_MLIR = """\
func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.addf %a, %b : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

BIN = Path(sys.executable).parent
IREE_COMPILE = shutil.which("iree-compile", path=str(BIN)) or shutil.which("iree-compile")
IREE_DUMP = shutil.which("iree-dump-module", path=str(BIN)) or shutil.which("iree-dump-module")

_ELF_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm_64", "arm64": "arm_64"}
HOST_ARCH = _ELF_ARCH.get(platform.machine().lower(), platform.machine().lower())

# Preset -> the hal.executable.format its output must hold (None: not buildable here).
EXPECTED_FORMAT = {
    "host": f"embedded-elf-{HOST_ARCH}",
    "x86_64-generic": "embedded-elf-x86_64",
    "aarch64-linux": "embedded-elf-arm_64",
    "riscv64-linux": "embedded-elf-riscv_64",
    "vmvx": "vmvx-bytecode-fb",
    "cuda-sm80": "cuda-nvptx-fb",
    "rocm-gfx942": "rocm-hsaco-fb",
    "vulkan-spirv": "vulkan-spirv-fb",
    "vulkan-portable-baseline": "vulkan-spirv-fb",
    "vulkan-ampere": "vulkan-spirv-fb",
    "vulkan-rdna3": "vulkan-spirv-fb",
    "metal-spirv": "metal-msl-fb",
    "llvm-cpu-system-library": f"system-elf-{HOST_ARCH}",
    "llvm-cpu-static-library": "static",
    "bare-metal": "static",
    "webgpu-wgsl": None,
}

pytestmark = pytest.mark.skipif(IREE_COMPILE is None, reason="iree-compile is not installed")


def _compile(toolchain, out: Path, src: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [IREE_COMPILE, *toolchain.flags(str(out)), str(src), "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )


def _rodata_strings(vmfb: Path) -> list[str]:
    """The module's embedded strings (formats, device ids) from iree-dump-module."""
    dump = subprocess.run([IREE_DUMP, str(vmfb)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"embedded\s+\d+ bytes `([^`]*)`", dump)


def _formats(vmfb: Path) -> list[str]:
    strings = _rodata_strings(vmfb)
    return [strings[i + 1] for i, s in enumerate(strings[:-1]) if s == "hal.executable.format"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[object, Path, subprocess.CompletedProcess]]:
    """Every buildable shipped preset, compiled once (two at a time) into one folder."""
    root = tmp_path_factory.mktemp("toolchains")
    src = root / "add.mlir"
    src.write_text(ADD_MLIR)
    registered = set(compiler_info().targets)
    jobs = []
    for tc in list_toolchains():
        if set(tc.target_backends) <= registered:
            out = root / tc.name / f"add{tc.output_suffix}"
            out.parent.mkdir()
            jobs.append((tc, out))
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda job: _compile(job[0], job[1], src), jobs))
    return {tc.name: (tc, out, proc) for (tc, out), proc in zip(jobs, procs, strict=True)}


def test_every_shipped_preset_has_an_expectation():
    assert shipped_dirs(), "the shipped toolchains/ folder is not found"
    assert sorted(t.name for t in list_toolchains()) == sorted(EXPECTED_FORMAT)


@pytest.mark.parametrize("name", sorted(n for n, f in EXPECTED_FORMAT.items() if f))
def test_preset_compiles_to_its_format(built, name):
    if name not in built:
        pytest.skip(f"{name}: backend not registered in this compiler")
    tc, out, proc = built[name]
    assert proc.returncode == 0, f"{name}: {shlex_join(tc, out)}\n{proc.stderr[-3000:]}"
    assert out.is_file()
    if tc.output_format == "vm-c":
        text = out.read_text()
        assert "iree_status_t module_create(" in text
        assert "EMITC_IMPLEMENTATION" in text
        # The executable format is a C byte array in the source: "static".
        assert "module__utf8_static_" in text
    else:
        assert EXPECTED_FORMAT[name] in _formats(out), _formats(out)
    for side in tc.side_outputs(str(out)):
        assert Path(side).is_file(), f"{name}: declared side output {side} was not written"


def shlex_join(tc, out) -> str:
    import shlex

    return shlex.join(["iree-compile", *tc.flags(str(out)), "add.mlir", "-o", str(out)])


def test_cross_presets_hold_foreign_elf(built):
    for name, arch in (("aarch64-linux", "arm_64"), ("riscv64-linux", "riscv_64")):
        _, out, proc = built[name]
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert _formats(out) == [f"embedded-elf-{arch}"]


def test_static_library_writes_object_and_header(built):
    for name in ("llvm-cpu-static-library", "bare-metal"):
        tc, out, _ = built[name]
        obj, header = (Path(p) for p in tc.side_outputs(str(out)))
        assert (obj.suffix, header.suffix) == (".o", ".h")
        assert obj.read_bytes()[:4] == b"\x7fELF"
        assert "_library_query(" in header.read_text()
        assert not list(out.parent.glob("*.so"))


def test_bare_metal_output_is_a_c_module(built):
    tc, out, _ = built["bare-metal"]
    assert tc.output_suffix == ".h" and tc.needs_cli
    assert tc.devices == ("local-sync",)
    assert "--output-format=vm-c" in tc.flags(str(out))
    assert "--iree-stream-partitioning-favor=min-peak-memory" in tc.flags(str(out))


def test_webgpu_is_not_registered_in_this_compiler():
    if "webgpu-wgsl" in compiler_info().targets:
        pytest.skip("this compiler has webgpu-wgsl")
    with pytest.raises(IreeBuildError) as e:
        find_toolchain("webgpu-wgsl")
    assert "not registered in this compiler" in e.value.message
    assert "llvm-cpu" in e.value.message and "vulkan-spirv" in e.value.message
    assert e.value.where.endswith("webgpu-wgsl.toml")
    listed = {t.name: t for t in list_toolchains()}  # listing still shows it
    with pytest.raises(IreeBuildError, match="not registered"):
        listed["webgpu-wgsl"].flags("x.vmfb")


def test_summaries():
    assert find_toolchain("cuda-sm80").summary() == "cuda, sm_80"
    host = find_toolchain("host").summary()
    assert host.startswith("llvm-cpu, cpu=") and "cpu=host" not in host
    assert find_toolchain("x86_64-generic").summary() == "llvm-cpu, cpu=generic, x86_64"
    assert find_toolchain("rocm-gfx942").summary() == "rocm, gfx942"


# --- validation before compiling -------------------------------------------


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _error(folder: Path, name: str, text: str) -> IreeBuildError:
    _write(folder, name, text)
    with pytest.raises(IreeBuildError) as e:
        find_toolchain(name, extra_dirs=[folder])
    assert e.value.where and e.value.where.endswith(f"{name}.toml"), e.value.where
    return e.value


def test_syntax_error_names_file(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["llvm-cpu"\n[options\n')
    assert "TOML syntax error" in err.message


def test_unknown_key_names_key(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["llvm-cpu"]\ncolour = "red"\n')
    assert "unknown key 'colour'" in err.message


def test_unknown_option_names_key(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["llvm-cpu"]\n[options]\ncpuu = "generic"\n')
    assert "options.cpuu" in err.message and "did you mean 'cpu'" in err.message


@pytest.mark.parametrize("text, key", [
    ('target_backends = "llvm-cpu"\n', "target_backends: 'llvm-cpu' is a string, not a list of strings"),
    ('target_backends = ["llvm-cpu"]\nflags = "--x"\n', "flags: '--x' is a string, not a list of strings"),
    ('target_backends = ["llvm-cpu"]\ndescription = 3\n', "description: 3 is an int, not a string"),
    ('target_backends = ["llvm-cpu"]\n[options]\ncpu = 3\n', "options.cpu: 3 is an int, not a string"),
    ('target_backends = ["llvm-cpu"]\ndevices = ["local-tsk"]\n',
     "devices: unknown HAL device 'local-tsk' (did you mean 'local-task'?)"),
    ('target_backend = ["llvm-cpu"]\n', "unknown key 'target_backend' (did you mean 'target_backends'?)"),
    ('target_backends = ["llvm-cpu"]\n[options]\ncpu_features = "+avx3"\n',
     "options.cpu_features: 'avx3' is not a CPU feature of x86_64"),
    ('target_backends = ["llvm-cpu"]\n[options]\ntriple = "foo-bar-baz"\n',
     "options.triple: LLVM has no target for triple 'foo-bar-baz'"),
    ('target_backends = ["llvm-cpu"]\noptions = 3\n', "options must be a table"),
])
def test_wrong_types_name_key(tmp_path, text, key):
    assert key in _error(tmp_path, "bad", text).message


def test_extends_cycle(tmp_path):
    _write(tmp_path, "a", 'extends = "b"\ntarget_backends = ["vmvx"]\n')
    _write(tmp_path, "b", 'extends = "a"\n')
    with pytest.raises(IreeBuildError) as e:
        find_toolchain("a", extra_dirs=[tmp_path])
    assert e.value.message == "extends: cycle a -> b -> a"
    assert e.value.where.endswith("b.toml")  # its extends closes the loop


def test_unknown_backend(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["tpu"]\n')
    assert "target_backends: unknown backend 'tpu'" in err.message


def test_option_for_absent_backend(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["vmvx"]\n[options]\ncuda_target = "sm_80"\n')
    assert "options.cuda_target applies to cuda" in err.message


def test_device_that_cannot_run_the_code(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["cuda"]\ndevices = ["vulkan"]\n')
    assert "devices: 'vulkan' cannot run" in err.message


def test_generated_flag_in_free_flags(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["cuda"]\nflags = ["--iree-cuda-target=sm_80"]\n')
    assert "options.cuda_target" in err.message


def test_sm90_rejected_before_compiling_with_sm80_suggestion(tmp_path):
    err = _error(tmp_path, "h100", 'target_backends = ["cuda"]\n[options]\ncuda_target = "sm_90"\n')
    assert "options.cuda_target = 'sm_90'" in err.message
    assert "use 'sm_80'" in err.message


def test_sm90_still_fails_in_this_compiler(tmp_path):
    """Guards the rule: drop sm_90 from gpu_targets.json 'instead' once this fails."""
    src = tmp_path / "add.mlir"
    src.write_text(ADD_MLIR)
    proc = subprocess.run(
        [IREE_COMPILE, "--iree-hal-target-device=cuda", "--iree-cuda-target=sm_90", str(src),
         "-o", str(tmp_path / "x.vmfb")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "missing GPU target" in proc.stderr


@pytest.mark.parametrize("key, value, expect", [
    ("cuda_target", "sm_100", "use 'sm_80'"),
    ("cuda_target", "bogus", "use one of: sm_60"),
    ("vulkan_target", "bogus", "crashes the compiler"),
    ("vulkan_target", "lavapipe", "use 'llvmpipe'"),
    ("rocm_target", "cdna3", "use 'gfx942'"),
    ("executable_format", "vmvx", "put 'vmvx' in target_backends"),
    ("output_format", "vm-asm", "not one of: vm-bytecode, vm-c"),
])
def test_validate_target_rejects(key, value, expect):
    with pytest.raises(IreeBuildError) as e:
        target_options.validate_target(key, value)
    assert expect in e.value.message and f"options.{key}" in e.value.message


@pytest.mark.parametrize("key, value", [
    ("cuda_target", "sm_80"), ("cuda_target", "ampere"), ("cuda_target", "a100"),
    ("rocm_target", "gfx942"), ("rocm_target", "mi300x"),
    ("vulkan_target", "ampere"), ("vulkan_target", "rdna3"), ("vulkan_target", "adreno-740"),
])
def test_validate_target_accepts(key, value):
    target_options.validate_target(key, value)


def test_rocm_requires_a_chip(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["rocm"]\n')
    assert "options.rocm_target is required" in err.message


def test_system_library_cannot_cross_compile(tmp_path):
    triple = "riscv64-unknown-linux-gnu" if HOST_ARCH != "riscv_64" else "x86_64-unknown-linux-gnu"
    err = _error(tmp_path, "bad", 'target_backends = ["llvm-cpu"]\n[options]\n'
                 f'triple = "{triple}"\ncpu_features = "+m,+a,+f,+d"\nexecutable_format = "system-library"\n')
    assert "options.executable_format = 'system-library'" in err.message


def test_riscv_generic_without_float_is_rejected(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["llvm-cpu"]\n[options]\n'
                 'triple = "riscv64-unknown-linux-gnu"\n')
    assert "options.cpu_features" in err.message and "+f" in err.message


# --- search path and inheritance --------------------------------------------


def test_extends_merges_options_and_overrides(tmp_path):
    _write(tmp_path, "cuda-turing", 'extends = "cuda-sm80"\ndescription = "T4"\n'
           '[options]\ncuda_target = "sm_75"\n')
    tc = find_toolchain("cuda-turing", extra_dirs=[tmp_path])
    assert tc.target_backends == ("cuda",) and tc.description == "T4"
    assert "--iree-cuda-target=sm_75" in tc.flags("x.vmfb")
    assert tc.summary() == "cuda, sm_75"


def test_project_preset_overrides_shipped_and_extends_it(tmp_path):
    _write(tmp_path, "host", 'extends = "host"\nflags = ["--iree-opt-level=O2"]\n')
    tc = find_toolchain("host", extra_dirs=[tmp_path])
    assert tc.path.parent == tmp_path
    assert tc.options == {"cpu": "host"}
    assert tc.flags("x.vmfb")[-1] == "--iree-opt-level=O2"


def test_env_var_adds_folders(tmp_path, monkeypatch):
    _write(tmp_path, "from-env", 'target_backends = ["vmvx"]\n')
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert find_toolchain("from-env").summary() == "vmvx"
    assert "from-env" in {t.name for t in list_toolchains()}


def test_unknown_toolchain_lists_known():
    with pytest.raises(IreeBuildError) as e:
        find_toolchain("no-such-preset")
    assert "no toolchain 'no-such-preset'" in e.value.message and "cuda-sm80" in e.value.message


def test_unknown_cpu_names_key(tmp_path):
    err = _error(tmp_path, "bad", 'target_backends = ["llvm-cpu"]\n[options]\ncpu = "znver99"\n')
    assert err.message.startswith("options.cpu: unknown CPU 'znver99'")


def test_host_cpu_cannot_cross_compile(tmp_path):
    triple = "aarch64-unknown-linux-gnu" if HOST_ARCH == "x86_64" else "x86_64-unknown-linux-gnu"
    err = _error(tmp_path, "bad", f'target_backends = ["llvm-cpu"]\n[options]\ncpu = "host"\ntriple = "{triple}"\n')
    assert err.message.startswith("options.cpu: cpu='host' means this machine")

"""A shared ``CacheDir``: checkouts at other paths, damaged entries, CPU keys, hardware keys.

Real SCons processes in two (or more) copies of one project at different
absolute paths, sharing one cache folder, as a team shares a cache on NFS.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from conftest import ADD_MLIR, Project

from iree_build.errors import IreeBuildError
from iree_build.hardware import hardware_identity
from iree_build.targets.toolchains import list_toolchains

# Two dispatches (a matmul, then a fused elementwise + reduction): with several
# dispatches the compiler also embeds the source's base name.
TWO_DISPATCHES = """\
func.func @f(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>, %c: tensor<8x4xf32>) -> tensor<8xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  %1 = arith.addf %0, %c : tensor<8x4xf32>
  %2 = math.exp %1 : tensor<8x4xf32>
  %s = tensor.empty() : tensor<8xf32>
  %r = linalg.reduce ins(%2 : tensor<8x4xf32>) outs(%s : tensor<8xf32>) dimensions = [1]
    (%x: f32, %y: f32) { %t = arith.addf %x, %y : f32
      linalg.yield %t : f32 }
  return %r : tensor<8xf32>
}
"""

ADD_TEST = ('inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], '
            'expected=[[2.0, 3.0, 4.0, 5.0]]')


def buildable_presets() -> list[str]:
    """Every shipped preset this compiler can build (cross-compiling ones included)."""
    names = []
    for tc in list_toolchains():
        try:
            tc.check_registered()
        except IreeBuildError:
            continue
        names.append(tc.name)
    return names


def checkout(root: Path, cache: Path, sconscript: str, sources: dict[str, str]) -> Project:
    """One copy of the project: SConstruct at ``root``, sources in ``src/``, outputs in ``build/``."""
    project = Project(root)
    project.write("SConstruct", f"""\
        from iree_rules import *
        CacheDir({str(cache)!r})
        SConscript("src/SConscript", variant_dir="build")
        """)
    project.write("src/SConscript", sconscript)
    for name, text in sources.items():
        project.write(f"src/{name}", text)
    return project


def built_files(project: Project) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(project.path("build").iterdir())
            if p.is_file() and not p.name.endswith((".mlir", ".xml", ".html", ".jsonl"))}  # reports: dated


def retrieved(output: str) -> list[str]:
    return sorted(line.split("`", 1)[1].split("'", 1)[0]
                  for line in output.splitlines() if line.startswith("Retrieved `"))


PRESETS = buildable_presets()
ALL_PRESETS = textwrap.dedent(f"""\
    for name in {PRESETS!r}:
        iree_module(name="m_" + name.replace("-", "_"), src="two.mlir", toolchain=name)
    iree_module(name="m_host_cpu", src="two.mlir", cpu="host")
    iree_module(name="add", src="add.mlir", toolchain="x86_64-generic")
    iree_test(name="t", module="add", function="add", {ADD_TEST})
    """)


@pytest.fixture(scope="module")
def first_checkout(tmp_path_factory) -> tuple[Project, Path, dict[str, bytes]]:
    """Checkout A builds every preset and runs a test, filling the shared cache."""
    base = tmp_path_factory.mktemp("shared")
    cache = base / "cache"
    a = checkout(base / "a", cache, ALL_PRESETS, {"two.mlir": TWO_DISPATCHES, "add.mlir": ADD_MLIR})
    run = a.scons("-j2", ".", "test")
    assert run.returncode == 0, run.output
    assert "PASS t[local-task]" in run.stdout
    return a, cache, built_files(a)


def test_presets_cover_every_shipped_preset_this_compiler_registers() -> None:
    shipped = sorted(p.stem for p in (Path(__file__).parent.parent / "toolchains").glob("*.toml"))
    not_buildable = sorted(set(shipped) - set(PRESETS))
    assert not_buildable == ["webgpu-wgsl"]  # the pip compiler lacks this one backend
    assert {"bare-metal", "llvm-cpu-static-library", "aarch64-linux", "cuda-sm80"} <= set(PRESETS)


def test_second_checkout_elsewhere_compiles_nothing_and_gets_identical_bytes(
        first_checkout, tmp_path: Path) -> None:
    a, cache, a_files = first_checkout
    b = checkout(tmp_path / "another" / "much" / "longer" / "path" / "b", cache, ALL_PRESETS,
                 {"two.mlir": TWO_DISPATCHES, "add.mlir": ADD_MLIR})
    run = b.scons("-j2", ".", "test")
    assert run.returncode == 0, run.output
    assert run.compiled() == []  # zero compiles: every CacheDir key is the same at the other path
    assert "scons: warning" not in run.output
    b_files = built_files(b)
    assert sorted(b_files) == sorted(a_files)
    different = [name for name in a_files if a_files[name] != b_files[name]]
    assert different == []
    # Every module (one per preset), the static-library side outputs and the test result came
    # from the cache: the same hardware is served its own passed result, so no test ran.
    got = retrieved(run.stdout)
    for name in PRESETS:
        stem = "m_" + name.replace("-", "_")
        assert f"build/{stem}{'.h' if name == 'bare-metal' else '.vmfb'}" in got, name
    for side in ("m_llvm_cpu_static_library_dispatch.o", "m_llvm_cpu_static_library_dispatch.h",
                 "m_bare_metal_dispatch.o", "m_bare_metal_dispatch.h"):
        assert f"build/{side}" in got
    assert "build/t.local-task.result.json" in got
    # The result retrieved from the cache is a passed, up-to-date test, not a new run.
    assert "PASS t[local-task] (cached)" in run.stdout and "0 tests run, 1 up to date" in run.stdout
    assert run.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"


def _entry_of(cache: Path, data: bytes) -> Path:
    """The cache entry holding exactly these bytes."""
    digest = hashlib.sha256(data).hexdigest()
    for path in cache.glob("*/*"):
        if path.suffix != ".sha256" and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return path
    raise AssertionError("no cache entry holds these bytes")


def test_corrupt_truncated_and_unrecorded_entries_are_rebuilt_never_used(
        first_checkout, tmp_path: Path) -> None:
    a, cache, a_files = first_checkout
    truncated = _entry_of(cache, a_files["m_x86_64_generic.vmfb"])
    truncated.write_bytes(a_files["m_x86_64_generic.vmfb"][:1000])
    flipped = _entry_of(cache, a_files["m_llvm_cpu_static_library_dispatch.o"])
    data = bytearray(a_files["m_llvm_cpu_static_library_dispatch.o"])
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    unrecorded = _entry_of(cache, a_files["m_vmvx.vmfb"])
    Path(f"{unrecorded}.sha256").unlink()  # as a plain SCons CacheDir writes them

    c = checkout(tmp_path / "c", cache, ALL_PRESETS, {"two.mlir": TWO_DISPATCHES, "add.mlir": ADD_MLIR})
    run = c.scons("-j2", ".")
    assert run.returncode == 0, run.output
    assert run.compiled() == ["build/m_llvm_cpu_static_library.vmfb", "build/m_vmvx.vmfb",
                              "build/m_x86_64_generic.vmfb"]
    assert (f"scons: warning: cache entry {truncated.name} for build/m_x86_64_generic.vmfb does not "
            "match its recorded sha256 (corrupt or truncated); removed it; building "
            "build/m_x86_64_generic.vmfb") in run.stderr
    assert f"cache entry {flipped.name} for build/m_llvm_cpu_static_library_dispatch.o" in run.stderr
    assert f"cache entry {unrecorded.name} for build/m_vmvx.vmfb has no recorded sha256" in run.stderr
    assert built_files(c) == {k: v for k, v in a_files.items() if not k.endswith(".result.json")}

    d = checkout(tmp_path / "d", cache, ALL_PRESETS, {"two.mlir": TWO_DISPATCHES, "add.mlir": ADD_MLIR})
    again = d.scons("-j2", ".")  # the rebuilds pushed good entries in place of the bad ones
    assert again.returncode == 0 and again.compiled() == [] and "warning" not in again.output, again.output


def test_a_module_for_one_cpu_is_never_served_to_another(tmp_path: Path) -> None:
    from iree_build.targets.host_cpu import resolve

    resolved = resolve("host")  # the concrete CPU: name and the features the compiler knows
    name, features = resolved.cpu, resolved.features
    cache = tmp_path / "cache"
    decl = 'iree_module(name="m", src="add.mlir", cpu=ARGUMENTS["cpu"], cpu_features=ARGUMENTS.get("features"))\n'

    def build(where: str, *args: str):
        project = checkout(tmp_path / where, cache, decl, {"add.mlir": ADD_MLIR})
        run = project.scons(*args)
        assert run.returncode == 0, run.output
        return run, project.path("build/m.vmfb").read_bytes()

    host_run, host_bytes = build("host", "cpu=host")
    assert host_run.compiled() == ["build/m.vmfb"]
    # cpu="host" is keyed by the concrete CPU it resolves to: the same name and features spelled
    # out elsewhere hit its entry; one feature fewer is another CPU and compiles.
    same, same_bytes = build("spelled", f"cpu={name}", f"features={features}")
    assert same.compiled() == [] and retrieved(same.stdout) == ["build/m.vmfb"] and same_bytes == host_bytes
    fewer = ",".join(features.split(",")[:-1])
    other, _ = build("fewer", f"cpu={name}", f"features={fewer}")
    assert other.compiled() == ["build/m.vmfb"]
    # Two named CPUs never share an entry; each one's entry serves that CPU.
    haswell, haswell_bytes = build("haswell", "cpu=haswell")
    skylake, skylake_bytes = build("skylake", "cpu=skylake-avx512")
    assert haswell.compiled() == ["build/m.vmfb"] and skylake.compiled() == ["build/m.vmfb"]
    assert haswell_bytes != skylake_bytes
    haswell_again, again_bytes = build("haswell2", "cpu=haswell")
    assert haswell_again.compiled() == [] and again_bytes == haswell_bytes


def _machine(root: Path, cpu_model: str, flags: str, gpus: list[tuple[str, str, str]]) -> str:
    """A /proc + /sys tree as Linux lays it out; returns the root."""
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text(
        f"processor\t: 0\nmodel name\t: {cpu_model}\nflags\t\t: {flags}\n\n"
        f"processor\t: 1\nmodel name\t: {cpu_model}\nflags\t\t: {flags}\n")
    for i, (cls, vendor, device) in enumerate(gpus):
        dev = root / f"sys/bus/pci/devices/0000:0{i}:00.0"
        dev.mkdir(parents=True)
        (dev / "class").write_text(cls + "\n")
        (dev / "vendor").write_text(vendor + "\n")
        (dev / "device").write_text(device + "\n")
    (root / "sys/bus/pci/devices").mkdir(parents=True, exist_ok=True)
    return str(root)


def test_hardware_identity_tells_cpus_and_gpus_apart(tmp_path: Path) -> None:
    h100 = _machine(tmp_path / "h100", "AMD EPYC 9454", "fpu sse avx2 avx512f",
                    [("0x030200", "0x10de", "0x2330"), ("0x020000", "0x15b3", "0x101d")])
    a100 = _machine(tmp_path / "a100", "AMD EPYC 9454", "fpu sse avx2 avx512f",
                    [("0x030200", "0x10de", "0x20b0")])
    old = _machine(tmp_path / "old", "AMD EPYC 9454", "fpu sse avx2", [])
    assert hardware_identity("cuda", h100).endswith("; gpus 10de:2330")  # the network card is not a GPU
    assert hardware_identity("cuda", h100) != hardware_identity("cuda", a100)
    assert hardware_identity("vulkan", a100) != hardware_identity("vulkan", old)
    # CPU tests do not depend on the GPUs, but on the CPU's features.
    assert hardware_identity("local-task", h100) == hardware_identity("local-task", a100)
    assert hardware_identity("local-task", h100) != hardware_identity("local-task", old)
    assert "AMD EPYC 9454" in hardware_identity("local-sync", old)


def test_a_result_from_another_cpu_is_rerun_by_scons_and_the_runner(project: Project, tmp_path: Path) -> None:
    """A built tree whose results were obtained on another x86-64 machine (same OS, another
    CPU model and features: ``$IREE_BUILD_HARDWARE_ROOT`` plays it, as a copied tree carries
    its results along) reruns its tests under ``scons test`` and ``python -m iree_build test``
    alike; on the same hardware both take them as up to date."""
    import os
    import subprocess
    import sys

    project.write("SConstruct", f"""\
        from iree_rules import *
        iree_module(name="m", src="add.mlir", cpu="host")
        iree_test(name="t", module="m", {ADD_TEST}, devices=["local-task"])
        """)
    project.write("add.mlir", ADD_MLIR)
    other = {"IREE_BUILD_HARDWARE_ROOT": _machine(tmp_path / "other", "Another CPU 9000", "fpu sse", [])}

    def runner(env: dict[str, str] | None = None) -> str:
        proc = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root), "-j1"],
                              capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def scons(env: dict[str, str] | None = None) -> str:
        run = project.scons("test", env=env)
        assert run.returncode == 0, run.output
        return run.stdout

    assert "1 test run, 0 up to date" in scons(other)  # obtained on the other machine
    assert "1 tests run, 0 up to date" in runner(), "the runner took the other CPU's result"
    assert "0 tests run, 1 up to date" in runner()
    assert "1 test run, 0 up to date" in scons(), "scons took the other CPU's result"
    assert "0 test" in scons() and "1 up to date" in scons()
    assert "0 tests run, 1 up to date" in runner()  # SCons' result holds for the runner too
    assert "1 tests run, 0 up to date" in runner(other)


def test_a_gpu_result_names_the_model_not_its_index(tmp_path: Path) -> None:
    """Four H100s and one H100 are the same hardware for a result, on any lane; an A100
    beside them is not."""
    h100 = ("0x030200", "0x10de", "0x2330")
    one = _machine(tmp_path / "one", "AMD EPYC 9454", "fpu avx2", [h100])
    four = _machine(tmp_path / "four", "AMD EPYC 9454", "fpu avx2", [h100] * 4)
    mixed = _machine(tmp_path / "mixed", "AMD EPYC 9454", "fpu avx2", [h100, ("0x030200", "0x10de", "0x20b0")])
    assert hardware_identity("cuda", four).endswith("; gpus 10de:2330")
    assert hardware_identity("cuda", four) == hardware_identity("cuda", one)
    lanes = {hardware_identity(f"cuda://{k}", four) for k in range(4)}
    assert lanes == {hardware_identity("cuda", four)}
    assert hardware_identity("cuda://1", mixed).endswith("; gpus 10de:20b0,10de:2330")

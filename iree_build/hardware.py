"""Which hardware a result holds for: the one place that reads it.

A result is a build target: with a shared ``CacheDir`` a passed result would be
served to every machine whose signature matches, and a built tree copied to
another machine carries its stored results along. Naming the hardware in the
signature keeps a result on the hardware it was obtained on: a pass on a
software Vulkan driver says nothing about an NVIDIA GPU, nor an AVX-512 run
about a machine without it. ``scons test``, ``python -m iree_build test``, the
cluster's workers and the benchmarks' records all take it from here.

CPU code of another architecture run here under an emulator (``qemu-aarch64``) holds
for the emulated architecture, the emulator's command and version (its
``--version``, asked where the code runs: a cluster worker answers for its own
emulator) and the tools that ran it, on this CPU.

Read from ``/proc`` and ``/sys`` (Linux), never by creating a device: a no-op
``scons test`` computes every result's signature, and a CUDA device takes
~0.4 s to create. Elsewhere the machine's name stands in (conservative: results
are then kept to one machine). ``$IREE_BUILD_HARDWARE_ROOT`` names another
folder to read them under (a container whose ``/proc`` describes the host
wrongly, or a test that plays another machine). Standard library only: the
runner imports it on machines that have only the runtime.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
from functools import cache

CPU_DEVICES = frozenset({"local-sync", "local-task"})
ENV_ROOT = "IREE_BUILD_HARDWARE_ROOT"
_ACCELERATOR_CLASSES = ("0x03", "0x12")  # PCI display controllers, processing accelerators
# /proc/cpuinfo lines that change between reads or between cores, not between CPUs.
VOLATILE = frozenset(
    {
        "processor",
        "cpu MHz",
        "bogomips",
        "BogoMIPS",
        "core id",
        "apicid",
        "initial apicid",
        "physical id",
        "siblings",
        "cpu cores",
        "power management",
    }
)


def _root(root: str | None) -> str:
    return root if root is not None else (os.environ.get(ENV_ROOT) or "/")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@cache
def cpuinfo_lines(root: str | None = None) -> tuple[str, ...]:
    """The first processor's lines of ``/proc/cpuinfo`` (empty where there is none)."""
    lines: list[str] = []
    for line in _read(os.path.join(_root(root), "proc/cpuinfo")).splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line)
    return tuple(lines)


def _fields(root: str | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in cpuinfo_lines(root):
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def stable_cpuinfo(root: str | None = None) -> list[str]:
    """The first processor's lines less those that change between reads or cores: what
    tells one CPU from another (the key of ``host_cpu``'s cache of llvmlite's answer)."""
    return sorted(ln for ln in cpuinfo_lines(root) if ln.split(":", 1)[0].strip() not in VOLATILE)


_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
# CPU architectures as LLVM triples spell them, that a lane (``local-task@ARCH``) may name.
KNOWN_ARCHES = (
    "x86_64",
    "aarch64",
    "arm",
    "riscv64",
    "riscv32",
    "i686",
    "wasm32",
    "wasm64",
    "ppc64le",
    "s390x",
    "loongarch64",
    "mips64",
)


def normal_arch(arch: str) -> str:
    """An architecture as LLVM triples spell it (``arm64`` -> ``aarch64``)."""
    arch = arch.strip().lower()
    return _ARCH_ALIASES.get(arch, arch)


def architecture() -> str:
    """This machine's CPU architecture, spelled as in LLVM triples (``x86_64``, ``aarch64``)."""
    return normal_arch(platform.machine())


def emulated(arch: str, device: str) -> bool:
    """Whether CPU code for ``arch`` on ``device`` runs here only under an emulator."""
    return bool(arch) and normal_arch(arch) != architecture() and device.split("://", 1)[0] in CPU_DEVICES


def cpu_model(root: str | None = None) -> str:
    """The CPU's name (``AMD EPYC 7B13``), else what ``platform`` says."""
    fields = _fields(root)
    model = (
        fields.get("model name")
        or fields.get("Model")
        or fields.get("cpu model")
        or fields.get("Hardware")
        or fields.get("uarch")
        or " ".join(fields.get(k, "") for k in ("CPU implementer", "CPU part")).strip()
    )
    return model or platform.processor() or platform.machine() or "unknown"


def cpu_features(root: str | None = None) -> tuple[str, ...]:
    """The CPU's feature flags as the kernel lists them, sorted."""
    fields = _fields(root)
    return tuple(
        sorted(set((fields.get("flags") or fields.get("Features") or fields.get("isa") or "").split()))
    )


@cache
def cpu_identity(root: str | None = None) -> str:
    """``x86_64 AMD EPYC 7B13 (features sha256 0123456789ab)``: the CPU model and its features."""
    if not cpuinfo_lines(root):  # no /proc/cpuinfo: keep results to this one machine
        return f"{platform.machine()} {platform.processor() or 'cpu'} on host {platform.node()}"
    digest = hashlib.sha256(" ".join(cpu_features(root)).encode()).hexdigest()[:12]
    return f"{platform.machine()} {cpu_model(root)} (features sha256 {digest})"


@cache
def accelerator_identity(root: str | None = None) -> str:
    """``gpus 10de:2330; nvidia 560.35.03``: the models (PCI ids) of the GPUs/accelerators and
    the driver version that JIT-compiles their code (PTX), or ``no gpus``. Each model once:
    the same model on another index (or a host with more of them) is the same hardware,
    so a test's result holds whichever of a host's GPU lanes ran it."""
    root = _root(root)
    base = os.path.join(root, "sys/bus/pci/devices")
    ids = []
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        entries = []
    for entry in entries:
        dev = os.path.join(base, entry)
        if _read(os.path.join(dev, "class")).strip().startswith(_ACCELERATOR_CLASSES):
            vendor = _read(os.path.join(dev, "vendor")).strip().removeprefix("0x")
            device = _read(os.path.join(dev, "device")).strip().removeprefix("0x")
            ids.append(f"{vendor}:{device}")
    text = f"gpus {','.join(sorted(set(ids)))}" if ids else "no gpus"
    for driver in ("nvidia", "amdgpu"):
        version = _read(os.path.join(root, f"sys/module/{driver}/version")).strip()
        if version:
            text += f"; {driver} {version}"
    if not entries and not os.path.isdir(os.path.join(root, "sys")):
        text += f" on host {platform.node()}"  # cannot tell: keep results to this one machine
    return text


def emulator_version(program: str) -> str:
    """The first line of ``PROGRAM --version`` (``qemu-aarch64 version 7.2.22 (Debian ...)``),
    asked again when the program's file changes (an upgrade under a long-lived worker)."""
    path = shutil.which(program)
    if path is None:
        return f"{program}: not installed"
    try:
        st = os.stat(path)
    except OSError:
        return f"{program}: not installed"
    return _version(path, st.st_ino, st.st_size, st.st_mtime_ns)


@cache
def _version(path: str, inode: int, size: int, mtime_ns: int) -> str:
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path}: no version ({type(exc).__name__})"
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return lines[0] if lines else f"{path}: no version"


def hardware_identity(
    device: str,
    root: str | None = None,
    *,
    arch: str = "",
    emulator: tuple[str, ...] | list[str] = (),
    tools: str = "",
) -> str:
    """The hardware a result on ``device`` depends on: the CPU for host devices; the CPU
    and the accelerators for the others (a software Vulkan driver runs on the CPU). A GPU's
    lane (``cuda://1``) is not part of it: its index is no hardware. ``arch`` code that
    runs here under ``emulator`` (by ``tools``: that architecture's runtime) adds the
    emulated architecture, the emulator and its version."""
    if device.split("://", 1)[0] in CPU_DEVICES:
        here = cpu_identity(root)
    else:
        here = f"{cpu_identity(root)}; {accelerator_identity(root)}"
    if not emulator or not emulated(arch, device):
        return here
    by = f", {tools}" if tools else ""
    return (
        f"{normal_arch(arch)} emulated by {shlex.join(emulator)} "
        f"[{emulator_version(emulator[0])}]{by}, on {here}"
    )

"""Which hardware a test or run result was obtained on, as one line of its signature.

A result is a build target: with a shared ``CacheDir`` a passed result would be
served to every machine whose signature matches. Naming the hardware in the
signature keeps a result on the hardware it was obtained on: a pass on a
software Vulkan driver says nothing about an NVIDIA GPU, nor an AVX-512 run
about a machine without it.

Read from ``/proc`` and ``/sys`` (Linux), never by creating a device: a no-op
``scons test`` computes every result's signature, and a CUDA device takes
~0.4 s to create. Elsewhere the machine's name stands in (conservative: results
are then kept to one machine). Imports neither SCons nor the runtime.
"""

from __future__ import annotations

import hashlib
import os
import platform
from functools import lru_cache

CPU_DEVICES = frozenset({"local-sync", "local-task"})
_ACCELERATOR_CLASSES = ("0x03", "0x12")  # PCI display controllers, processing accelerators


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _first_block(cpuinfo: str) -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


@lru_cache(maxsize=None)
def cpu_identity(root: str = "/") -> str:
    """``x86_64 AMD EPYC 7B13 (features sha256 0123456789ab)``: the CPU model and its features."""
    fields = _first_block(_read(os.path.join(root, "proc/cpuinfo")))
    model = (fields.get("model name") or fields.get("Hardware") or fields.get("uarch") or
             " ".join(fields.get(k, "") for k in ("CPU implementer", "CPU part")).strip())
    features = fields.get("flags") or fields.get("Features") or fields.get("isa") or ""
    if not model and not features:  # no /proc/cpuinfo: keep results to this one machine
        return f"{platform.machine()} {platform.processor() or 'cpu'} on host {platform.node()}"
    digest = hashlib.sha256(" ".join(sorted(features.split())).encode()).hexdigest()[:12]
    return f"{platform.machine()} {model} (features sha256 {digest})"


@lru_cache(maxsize=None)
def accelerator_identity(root: str = "/") -> str:
    """``gpus 10de:2330; nvidia 560.35.03``: PCI ids of the GPUs/accelerators and the driver
    version that JIT-compiles their code (PTX), or ``no gpus``."""
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
    text = f"gpus {','.join(sorted(ids))}" if ids else "no gpus"
    for driver in ("nvidia", "amdgpu"):
        version = _read(os.path.join(root, f"sys/module/{driver}/version")).strip()
        if version:
            text += f"; {driver} {version}"
    if not entries and not os.path.isdir(os.path.join(root, "sys")):
        text += f" on host {platform.node()}"  # cannot tell: keep results to this one machine
    return text


def hardware_identity(device: str, root: str = "/") -> str:
    """The hardware a result on ``device`` depends on: the CPU for host devices; the CPU
    and the accelerators for the others (a software Vulkan driver runs on the CPU)."""
    if device.split("://", 1)[0] in CPU_DEVICES:
        return cpu_identity(root)
    return f"{cpu_identity(root)}; {accelerator_identity(root)}"

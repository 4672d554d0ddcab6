"""What a test result was obtained with: the runtime's version and the hardware.

Both enter every test's signature: a runtime upgrade reruns tests, and a result
from one machine's device (a software Vulkan driver, say) is never taken as a
result for another's. Read without loading ``iree.runtime``.
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata


@functools.lru_cache(maxsize=1)
def runtime_version() -> str:
    """The installed ``iree-base-runtime`` version, from its package metadata."""
    try:
        return metadata.version("iree-base-runtime")
    except metadata.PackageNotFoundError:
        return "unknown"


def hardware_identity(present: bool, reason: str) -> str:
    """This machine's architecture and what the runtime reports of the device."""
    return f"{platform.machine()} {reason if present else 'absent'}"


@functools.lru_cache(maxsize=None)
def machine_fingerprint(cpu_only: bool) -> str:
    """This machine's hardware, read from the OS without starting any driver.

    The CPU model always; for a GPU device also the display-class PCI devices and
    the NVIDIA driver version. Cheap enough for every test's build signature, so a
    shared ``CacheDir`` never hands one machine's test result to another machine.
    """
    parts = [platform.machine(), _cpu_model()]
    if not cpu_only:
        parts += _display_devices()
        parts.append(_first_line("/proc/driver/nvidia/version"))
    return "; ".join(p for p in parts if p)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "CPU part"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def _display_devices() -> list[str]:
    import glob
    import os

    found = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        if _first_line(os.path.join(dev, "class")).startswith("0x03"):
            found.append(f"pci {_first_line(os.path.join(dev, 'vendor'))}:"
                         f"{_first_line(os.path.join(dev, 'device'))}")
    return found


def _first_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().strip()
    except OSError:
        return ""

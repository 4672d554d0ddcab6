"""HAL device names: aliases, CPU or not. No runtime import: the build process and the
run pool's parent side use these without loading ``iree.runtime``."""

from __future__ import annotations

CPU_DEVICES = frozenset({"local-sync", "local-task"})
"""Devices that run on host threads; tests on them may run concurrently."""

DEVICE_ALIASES = {"rocm": "hip"}
"""Manifest device name -> runtime driver name."""

KNOWN_DEVICES = (
    "local-sync",
    "local-task",
    "vulkan",
    "cuda",
    "hip",
    "rocm",
    "webgpu",
    "metal",
)


def driver_name(device: str) -> str:
    """The runtime driver for a device name or URI (``rocm`` -> ``hip``)."""
    scheme = device.split("://", 1)[0]
    return DEVICE_ALIASES.get(scheme, scheme)


def canonical_device(device: str) -> str:
    """The device name with aliases resolved, for comparing names."""
    if "://" in device:
        return driver_name(device) + "://" + device.split("://", 1)[1]
    return driver_name(device)


def is_cpu_device(device: str) -> bool:
    """True for host-thread devices (safe and useful to run tests in parallel)."""
    return driver_name(device) in CPU_DEVICES

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


def lane_index(device: str) -> int | None:
    """``k`` of a lane URI ``driver://k`` (the driver's k-th device, or k-th lane), else None."""
    path = device.split("://", 1)[1] if "://" in device else ""
    return int(path) if path.isdigit() else None


def lane_uri(device: str, index: int) -> str:
    """Lane ``index`` of ``device``'s driver: ``cuda://1``."""
    return f"{driver_name(device)}://{index}"


def parse_lane_counts(text: str, option: str = "--device-lanes") -> dict[str, int]:
    """``"vulkan:2,cuda:1"`` -> ``{"vulkan": 2, "cuda": 1}``: lanes per GPU driver, over
    the count of its devices. Raises ValueError with one line naming the bad part."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, _, number = part.partition(":")
        name = driver_name(name.strip())
        if not number.strip().isdigit() or int(number) < 1 or not name or is_cpu_device(name):
            raise ValueError(
                f"{option}: {part!r} is not DRIVER:N with a GPU driver and N >= 1 (e.g. vulkan:2)"
            )
        counts[name] = int(number)
    return counts


def file_part(device: str) -> str:
    """The device as it goes in a file name: ``cuda://1`` -> ``cuda-1``."""
    return device.replace("://", "-")

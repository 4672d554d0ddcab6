"""Which machine and which device a measurement was made on.

A baseline is compared only with a run on the same hardware: the same CPU
model, architecture and logical CPU count for CPU devices, and the same GPU
model for the others. The CPU is read by :mod:`iree_build.hardware`, the one
reader of the machine's description. The host name is recorded but not compared, so CI
runners that are identical machines under different names share baselines.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
from typing import Any

from iree_build.hardware import cpu_identity, cpu_model
from iree_build.testing.devices import driver_name, is_cpu_device


@functools.lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """This machine, as recorded in every run."""
    return {
        "host": socket.gethostname(),
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cpu_identity": cpu_identity(),  # model and features, as test results name the hardware
        "cpus": os.cpu_count() or 0,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def machine_key(info: dict[str, Any]) -> str:
    """The part of a machine record that decides comparability."""
    return f"{info.get('arch', '?')} {info.get('cpu', '?')} x{info.get('cpus', '?')}"


@functools.cache
def device_hardware(device: str) -> str:
    """The hardware behind a HAL device name: the GPU's model, or the CPU for local-*.

    Raises nothing: an unqueryable driver gives a description of why.
    """
    if is_cpu_device(device):
        return f"{driver_name(device)} on {cpu_model()} x{os.cpu_count() or 0}"
    import iree.runtime as ireert

    try:
        found = ireert.get_driver(driver_name(device)).query_available_devices()
    except Exception as exc:  # driver cannot start: recorded, never compared equal to a GPU
        return f"{driver_name(device)}: unavailable ({str(exc).splitlines()[0][:80]})"
    names = sorted({str(d.get("name") or d.get("path") or "?") for d in found})
    return f"{driver_name(device)}: {', '.join(names) or 'no device'}"

"""What a test result was obtained with: the runtime's version and the hardware.

Both enter every test's signature: a runtime upgrade reruns tests, and a result
from one machine's device (a software Vulkan driver, say) is never taken as a
result for another's. Read without loading ``iree.runtime``.
"""

from __future__ import annotations

import functools
import platform


@functools.lru_cache(maxsize=None)
def package_version(distribution: str, missing: str = "unknown") -> str:
    """An installed package's version from its metadata (``missing`` if not installed)."""
    from importlib import metadata  # here, not at import: a no-op build may never ask

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return missing


def runtime_version() -> str:
    """The installed ``iree-base-runtime`` version: part of every test's signature."""
    return package_version("iree-base-runtime")


def hardware_identity(present: bool, reason: str) -> str:
    """This machine's architecture and what the runtime reports of the device."""
    return f"{platform.machine()} {reason if present else 'absent'}"

"""What a test result was obtained with: the runtime's version (the hardware is
:mod:`iree_build.hardware`'s).

It enters every test's signature: a runtime upgrade reruns tests. Read without
loading ``iree.runtime``.
"""

from __future__ import annotations

import functools


@functools.cache
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

"""Compiles, ONNX imports and device tests on a Dask cluster (``pip install 'iree-build-scons[cluster]'``).

Entry points: :func:`client.connect` (one connection per scheduler per process),
:func:`compile.compile_on` (a compile or import, outputs written into the build
tree) and :func:`device_tests.run_test_on` (one test on a worker offering its
device). Workers announce what they offer as Dask worker resources:
``iree-compiler`` for compile hosts, HAL device names (``local-task``, ``cuda``,
``vulkan``) for device hosts. Importing this package does not import Dask.

Dask moves pickled Python objects between the build and its workers: a cluster
must be trusted (see :mod:`config` for TLS).
"""

from __future__ import annotations

from .config import ENV_ADDRESS, ClusterConfig, ClusterError

__all__ = ["ENV_ADDRESS", "ClusterConfig", "ClusterError"]

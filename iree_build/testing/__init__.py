"""Run built IREE modules as tests with ``iree.runtime`` alone.

This package must import only the standard library, numpy and ``iree.runtime``
(never SCons or the compiler): a built tree is tested on machines that have
only the runtime. Re-exports below are lazy: importing the package, or its
``manifest``/``results``/``compare`` modules, does not load ``iree.runtime``.

Entry points for the SCons side: :func:`run_pool.default_run_pool` (tests and
build-time calls run in crash-isolated worker processes), :func:`results.write_result`,
:func:`results.summary_line`, :func:`results.write_junit`. :func:`execute.run_test`
runs one test in the calling process (what a worker does).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "TestSpec": "manifest",
    "Manifest": "manifest",
    "ManifestError": "manifest",
    "load_manifest": "manifest",
    "save_manifest": "manifest",
    "TestResult": "results",
    "read_result": "results",
    "write_result": "results",
    "write_junit": "results",
    "summary_line": "results",
    "result_line": "results",
    "compare_outputs": "compare",
    "DevicePool": "devices",
    "default_pool": "devices",
    "device_status": "devices",
    "run_test": "execute",
    "run_one": "runner",
    "run_check_file": "check_runner",
    "check_functions": "check_runner",
    "test_signature": "signature",
    "FileHasher": "signature",
    "run_manifest": "runner",
    "RunOptions": "runner",
    "RunPool": "run_pool",
    "default_run_pool": "run_pool",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy re-exports: importing the package does not load iree.runtime."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

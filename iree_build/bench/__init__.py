"""Benchmarks of built IREE modules: measure, keep, compare, report.

Like :mod:`iree_build.testing`, this package imports only the standard library,
numpy and ``iree.runtime`` (matplotlib lazily, for the report's plots), so a
built tree's benchmarks run on a machine that has only the runtime wheel:
``python -m iree_build bench BUILD_DIR``.

Modules, one job each: :mod:`.spec` (the benchmark manifest), :mod:`.measure`
(one ``iree-benchmark-module`` run, its JSON), :mod:`.stats` (median, spread,
throughput), :mod:`.identity` (machine and device), :mod:`.record` (result
files, history, baselines), :mod:`.compare` (regressions), :mod:`.report`
(HTML and plots), :mod:`.runner` (the standalone runner; also what the SCons
rule calls, one benchmark at a time).
"""

"""``iree_check_test_suite``: IREE's check-dialect test files, run and judged for real.

Like CMake's ``iree_check_single_backend_test_suite``: every source is compiled
for every backend, and each (file, backend, device) becomes one test whose cases
are the file's exported functions. The ``check`` module they import is provided
from Python (``iree_build.testing.check_module``), so a failing check fails,
instead of passing silently as it does under ``iree-run-module``.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Sequence

from iree_build.errors import IreeBuildError
from iree_build.targets import BACKENDS, check_device

from . import module_rule
from .arguments import checked
from .test_rule import DeclaredTest, _selected, register
from .where import declared_at, fail

Entry = str | tuple


def _match(entries: Sequence[Entry], file: str, backend: str, device: str, what: str) -> str:
    """The reason of the first entry matching (file, backend, device), or ''.

    An entry is ``"file"`` or ``(file, backend, device[, reason])`` with globs.
    """
    for entry in entries:
        parts = (entry,) if isinstance(entry, str) else tuple(entry)
        if not 1 <= len(parts) <= 4 or not all(isinstance(p, str) for p in parts):
            raise IreeBuildError(
                f"{what} entry {entry!r} must be 'file' or (file, backend, device[, reason])")
        pattern = (parts + ("*", "*"))[:3]
        if all(fnmatch.fnmatchcase(v, p) for v, p in zip((file, backend, device), pattern)):
            return parts[3] if len(parts) == 4 else f"declared in {what}"
    return ""


@checked("iree_check_test_suite")
def IreeCheckTestSuite(env, name: str, srcs, target_backends: Sequence[str] | None = None,
                       devices: Sequence[str] | None = None, flags: Sequence[str] | None = None,
                       xfail: Sequence[Entry] = (), skip: Sequence[Entry] = ()) -> list:
    """Declare the suite; returns the test result nodes."""
    where = declared_at()
    sources = env.Flatten([srcs])
    backends = list(target_backends or env.get("IREE_TARGET_BACKENDS", ["llvm-cpu"]))
    devices = [devices] if isinstance(devices, str) else list(devices or env.get("IREE_TEST_DEVICES", ["local-task"]))
    try:
        if not sources:
            raise IreeBuildError(f"check suite '{name}' has no sources (srcs matched no file?)")
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise IreeBuildError(f"unknown target backend '{unknown[0]}'; known backends: {', '.join(BACKENDS)}")
        pairs = []
        for device in devices:
            runs = [b for b in backends if device in BACKENDS[b].runs_on]
            if not runs:
                check_device(device, backends)  # raises the usual message
            pairs += [(b, device, len(runs) > 1) for b in runs]
    except IreeBuildError as e:
        fail(e.message, where)

    results = []
    for src in sources:
        node = env.File(src) if isinstance(src, str) else src
        file = Path(str(node)).name
        stem = Path(file).stem
        modules = {}
        for backend in backends:
            mod = module_rule.IreeModule(env, f"{name}_{stem}_{backend}", node,
                                         target_backends=[backend], flags=flags)
            modules[backend] = mod[0]
        for backend, device, shared in pairs:
            label = f"{backend}:{device}" if shared else device
            try:
                reason_skip = _match(skip, file, backend, device, "skip")
                reason_xfail = _match(xfail, file, backend, device, "xfail")
            except IreeBuildError as e:
                fail(e.message, where)
            info = module_rule.declared_modules[modules[backend].get_abspath()]
            test = DeclaredTest(
                name=f"{file}[{label}]", base=file, device=device, module=modules[backend],
                function="*", inputs=[], expected=[], rtol=0.0, atol=0.0, declared_at=where,
                result=env.File(f"{name}_{stem}_{backend}.{device}.result.json"),
                selected=_selected(f"{file}[{label}]", device), parameters=[],
                parameter_scope="model",
                arch=info.cpu_arch or "" if device in ("local-sync", "local-task") else "",
                kind="check", xfail=reason_xfail, skip=reason_skip,
            )
            results.append(register(env, test, [modules[backend]]))
    return results


@checked("iree_check_test_suite")
def iree_check_test_suite(name: str, srcs, target_backends: Sequence[str] | None = None,
                          devices: Sequence[str] | None = None, flags: Sequence[str] | None = None,
                          xfail: Sequence[Entry] = (), skip: Sequence[Entry] = (), env=None) -> list:
    """Compile each check file for each backend; one test per (file, device), a case per function."""
    from . import default_environment

    return IreeCheckTestSuite(env or default_environment(), name, srcs,
                              target_backends=target_backends, devices=devices, flags=flags,
                              xfail=xfail, skip=skip)

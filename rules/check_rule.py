"""``iree_check_test_suite``: IREE's check-dialect test files, run and judged for real.

Like CMake's ``iree_check_single_backend_test_suite`` (and its
``TARGET_CPU_FEATURES_VARIANTS``): every source is compiled for every target
(a backend, a CPU-feature variant of ``llvm-cpu``, or a toolchain preset), and
each (file, target, device) becomes one test whose cases are the file's
exported functions, named ``SUITE/file.mlir::fn[device]``: the suite's name
keeps files of the same name in two suites (or one file in two suites) apart.
The ``check`` module they import is provided from Python
(``iree_build.testing.check_module``), so a failing check fails, instead of
passing silently as it does under ``iree-run-module``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from iree_build.errors import IreeBuildError
from iree_build.targets.backends import BACKENDS, check_device
from iree_build.testing.device_names import file_part

from . import module_rule
from .arguments import checked, env_last
from .registry import registry
from .test_rule import DeclaredTest, register
from .where import declared_at, fail

Entry = str | tuple | list


@dataclass(frozen=True)
class SuiteTarget:
    """One way the suite compiles each file: a backend (maybe a CPU variant) or a preset."""

    key: str  # the label part: "llvm-cpu", "llvm-cpu:avx2_fma", "vulkan-ampere"
    backend: str  # what xfail/skip entries match as the backend
    module_kw: dict = field(default_factory=dict, hash=False, compare=False)


def _match(entries: Sequence[Entry], file: str, backend: str, device: str, what: str) -> str:
    """The reason of the first entry matching (file, backend, device), or ''.

    An entry is ``"file"`` or ``(file, backend, device[, reason])`` with globs.
    """
    for entry in entries:
        parts = (entry,) if isinstance(entry, str) else tuple(entry)
        if not 1 <= len(parts) <= 4 or not all(isinstance(p, str) for p in parts):
            raise IreeBuildError(
                f"{what} entry {entry!r} must be 'file' or (file, backend, device[, reason])"
            )
        pattern = (parts + ("*", "*"))[:3]
        if all(fnmatch.fnmatchcase(v, p) for v, p in zip((file, backend, device), pattern, strict=True)):
            return parts[3] if len(parts) == 4 else f"declared in {what}"
    return ""


def _variants(variants: Sequence[str] | None, triple_arch: str) -> list[tuple[str, str]]:
    """``(name, features)`` per CPU-feature variant, as CMake's TARGET_CPU_FEATURES_VARIANTS
    spells them: ``"default"`` or ``"ARCH:NAME:+feat,+feat"`` (kept only for that arch)."""
    if not variants:
        return [("", "")]
    out = []
    for v in variants:
        if v == "default":
            out.append(("default", ""))
            continue
        parts = v.split(":")
        if len(parts) != 3 or not all(parts) or not re.fullmatch(r"[\w.-]+", parts[1]):
            raise IreeBuildError(
                f"cpu_features_variants entry {v!r} must be 'default' or 'ARCH:NAME:FEATURES', "
                "e.g. 'x86_64:avx2_fma:+avx,+avx2,+fma'"
            )
        if parts[0] == triple_arch:
            out.append((parts[1], parts[2]))
    return out or [("default", "")]


def _targets(
    env,
    backends: list[str],
    toolchain: str | None,
    cpu,
    cpu_features,
    triple,
    variants,
    flags,
    backend_flags: Mapping[str, Sequence[str]],
) -> list[SuiteTarget]:
    if toolchain is not None:
        if backends or variants:
            raise IreeBuildError(
                f"toolchain='{toolchain}' already says the targets; drop "
                "target_backends/cpu_features_variants or write a preset"
            )
        return [
            SuiteTarget(str(toolchain), str(toolchain), dict(toolchain=str(toolchain), flags=list(flags)))
        ]
    backends = backends or list(env.get("IREE_TARGET_BACKENDS", ["llvm-cpu"]))
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise IreeBuildError(f"unknown target backend '{unknown[0]}'; known backends: {', '.join(BACKENDS)}")
    stray = [b for b in backend_flags if b not in backends]
    if stray:
        raise IreeBuildError(
            f"backend_flags names '{stray[0]}', which is not among target_backends ({', '.join(backends)})"
        )
    arch = (triple or env.get("IREE_TRIPLE") or os.uname().machine).split("-", 1)[0]
    out = []
    for backend in backends:
        cpu_kw = dict(cpu=cpu, triple=triple) if backend == "llvm-cpu" else {}
        for name, features in _variants(variants, arch) if backend == "llvm-cpu" else [("", "")]:
            joined = ",".join(f for f in (cpu_features or "", features) if f) or None
            kw = dict(
                target_backends=[backend], flags=list(flags), **cpu_kw, _IREE_BACKEND_FLAGS=backend_flags
            )  # the plan takes its backend's
            if backend == "llvm-cpu":
                kw["cpu_features"] = joined
            out.append(SuiteTarget(f"{backend}:{name}" if name else backend, backend, kw))
    return out


@checked("iree_check_test_suite")
def IreeCheckTestSuite(
    env,
    name: str,
    srcs,
    target_backends: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    flags: Sequence[str] | None = None,
    xfail: Sequence[Entry] = (),
    skip: Sequence[Entry] = (),
    cpu: str | None = None,
    cpu_features: str | None = None,
    triple: str | None = None,
    toolchain: str | None = None,
    backend_flags: Mapping[str, Sequence[str]] | None = None,
    cpu_features_variants: Sequence[str] | None = None,
    timeout: float | None = None,
    tags: Sequence[str] = (),
) -> list:
    """Declare the suite; returns the test result nodes."""
    where = declared_at()
    sources = env.Flatten([srcs])
    devices = (
        [devices]
        if isinstance(devices, str)
        else list(devices or env.get("IREE_TEST_DEVICES", ["local-task"]))
    )
    flags = [flags] if isinstance(flags, str) else list(flags or [])
    try:
        suite_tags = tuple(tags)
        targets = _targets(
            env,
            list(target_backends or []),
            toolchain,
            cpu,
            cpu_features,
            triple,
            cpu_features_variants,
            flags,
            dict(backend_flags or {}),
        )
    except IreeBuildError as e:
        fail(e.message, where)

    here = env.Dir(".").srcnode()
    results = []
    for src in sources:
        node = env.File(src) if isinstance(src, str) else src
        rel = os.path.relpath(node.srcnode().get_abspath(), here.get_abspath()).replace(os.sep, "/")
        if rel.startswith("../"):
            rel = os.path.basename(rel)
        flat = re.sub(r"[^\w.-]", "_", os.path.splitext(rel)[0])
        modules = {}
        for t in targets:
            suffix = t.key.replace(":", "_")
            mod = module_rule.IreeModule(env, f"{name}_{flat}_{suffix}", node, **t.module_kw)
            modules[t.key] = (mod[0], registry(env).modules[mod[0].get_abspath()])
        try:
            pairs = []
            for device in devices:
                runs = [t for t in targets if device in modules[t.key][1].devices]
                if not runs:
                    info = modules[targets[0].key][1]
                    check_device(device, info.backends, info.devices)  # raises the usual message
                pairs += [(t, device, len(runs) > 1) for t in runs]
        except IreeBuildError as e:
            fail(e.message, where)
        base = f"{name}/{rel}"
        file = os.path.basename(rel)
        for t, device, shared in pairs:
            label = f"{t.key}:{device}" if shared else device
            try:
                reason_skip = _match(skip, file, t.backend, device, "skip") or (
                    _match(skip, rel, t.backend, device, "skip") if rel != file else ""
                )
                reason_xfail = _match(xfail, file, t.backend, device, "xfail") or (
                    _match(xfail, rel, t.backend, device, "xfail") if rel != file else ""
                )
            except IreeBuildError as e:
                fail(e.message, where)
            module, info = modules[t.key]
            test = DeclaredTest(
                short=base,
                label=label,
                device=device,
                module=module,
                function="*",
                inputs=[],
                expected=[],
                rtol=0.0,
                atol=0.0,
                declared_at=where,
                result=env.File(f"{name}_{flat}_{t.key.replace(':', '_')}.{file_part(device)}.result.json"),
                parameters=[],
                parameter_scope="model",
                arch=info.cpu_arch or "" if device in ("local-sync", "local-task") else "",
                kind="check",
                xfail=reason_xfail,
                skip=reason_skip,
                timeout=float(timeout or 0.0),
                tags=suite_tags,
            )
            results.append(register(env, test, [module]))
    return results


iree_check_test_suite = env_last(
    IreeCheckTestSuite,
    "iree_check_test_suite",
    """Compile each check file for each target; one test per (file, target, device), a case
    per function.""",
)

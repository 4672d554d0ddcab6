"""What ``scons -h`` says of the declared modules and tests: a summary, or the full list.

A project of hundreds of models should get a readable page: counts per folder, the
presets in use, and the options (SCons lists those); ``scons -h --iree-list`` lists
every module and test with where it was declared. The text is rendered when SCons
prints it, after every SConscript was read, so the counts are whole.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import options
from .registry import Registry, registry


class _Text:
    """Help text whose parts are rendered when printed (SCons does ``help_text += text``
    while reading SConscripts and ``print(help_text)`` at the end)."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def __radd__(self, other: Any) -> _Text:
        return _Text([other, *self.parts])

    def __add__(self, other: Any) -> _Text:
        return _Text([*self.parts, other])

    def __str__(self) -> str:
        return "".join(str(p) for p in self.parts)


class _Summary:
    def __init__(self, reg: Registry) -> None:
        self._reg = reg

    def __str__(self) -> str:
        return render(self._reg, full=bool(options.option("iree-list")))


def _start(env: Any) -> None:
    reg = registry(env)
    if reg.once("help"):
        from SCons.Script import Help

        text = _Text([_Summary(reg)])
        try:  # the project's summary and the IREE options; SCons' own options are `scons -H`
            Help(text, append=True, local_only=True)
        except TypeError:  # SCons < 4.9 spells it keep_local (4.6) or has neither
            try:
                Help(text, append=True, keep_local=True)
            except TypeError:
                Help(text, append=True)


def note_module(env: Any) -> None:
    """A module was declared (its facts are in the registry already)."""
    _start(env)


def note_test(env: Any, test: Any) -> None:
    _start(env)


def render(reg: Registry, full: bool = False) -> str:
    """The IREE part of ``scons -h``."""
    modules = list(reg.modules.items())
    tests = reg.tests
    benches = f", {len(reg.benchmarks)} benchmarks" if reg.benchmarks else ""
    lines = [
        "",
        f"IREE: {len(modules)} module{'s' * (len(modules) != 1)}, "
        f"{len(tests)} test{'s' * (len(tests) != 1)}{benches} "
        "(scons builds the modules; scons test runs the tests; scons test FOLDER, "
        "--iree-test-tags, --iree-test-filter and --iree-devices select)",
    ]
    if full:
        for _path, info in modules:
            lines.append(f"  module {info.label}  [{info.summary}]  {info.where}")
        for t in tests:
            tags = f"  tags: {','.join(t.tags)}" if t.tags else ""
            lines.append(f"  test   {t.name}  {t.declared_at}{tags}")
        for b in reg.benchmarks:
            lines.append(f"  bench  {b.spec.name}  {b.spec.declared_at}")
        return "\n".join(lines) + "\n"
    per_folder: Counter[str] = Counter()
    per_folder_tests: Counter[str] = Counter()
    for _, info in modules:
        per_folder[info.folder or "."] += 1
    for t in tests:
        per_folder_tests[t.folder or "."] += 1
    folders = sorted(set(per_folder) | set(per_folder_tests))
    if folders:
        width = max(len(f) for f in folders)
        lines.append(f"  {'folder':<{width}}  modules  tests")
        for f in folders:
            lines.append(f"  {f:<{width}}  {per_folder[f]:>7}  {per_folder_tests[f]:>5}")
    devices = Counter(t.device for t in tests)
    if devices:
        lines.append("  tests per device: " + ", ".join(f"{d} {n}" for d, n in sorted(devices.items())))
    tag_counts = Counter(tag for t in tests for tag in t.tags)
    if tag_counts:
        lines.append("  tags: " + ", ".join(f"{tag} ({n})" for tag, n in sorted(tag_counts.items())))
    if reg.presets:
        lines.append("  toolchain presets in use: " + ", ".join(sorted(reg.presets)))
    lines.append("  scons -h --iree-list lists every module and test.")
    return "\n".join(lines) + "\n"

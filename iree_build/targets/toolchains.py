"""Toolchain presets: named TOML files that say what a module is compiled for.

A preset keeps target knowledge out of SConscripts: ``toolchain="cuda-sm80"``
instead of flag lists that rot with each compiler release. A preset file::

    description = "NVIDIA Ampere and newer"
    extends = "other"              # optional: inherit, then override keys
    target_backends = ["cuda"]
    devices = ["cuda"]             # optional: runtime HAL devices (default: all that fit)
    flags = ["--iree-opt-level=O2"]  # optional: extra compiler flags
    emulator = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]  # optional: runs its CPU code
                                   # on a machine of another architecture (tests, runs)
    [options]                      # version-independent keys, see target_options.OPTIONS
    cuda_target = "sm_80"

``extends`` merges ``options`` key by key; every other key replaces the
parent's. The preset's name is its file name without ``.toml``.

Search path, first match wins (so a project can override a shipped preset, and
``extends`` of a preset's own name reaches the next one down the path):

1. ``extra_dirs`` the caller passes (the project's own folders);
2. each folder in ``$IREE_TOOLCHAIN_PATH`` (``os.pathsep``-separated);
3. the shipped presets: ``toolchains/`` at the source tree's root (editable
   installs), or ``iree_build/toolchains/`` when packaged inside the package.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import toml

from iree_build import validation
from iree_build.compile.compiler_info import compiler_info
from iree_build.errors import IreeBuildError
from iree_build.targets import options as target_options
from iree_build.targets.backends import BACKENDS, HAL_DEVICES, check_backends, device_flags, devices_for

ENV_VAR = "IREE_TOOLCHAIN_PATH"
KEYS = ("description", "extends", "target_backends", "options", "flags", "devices", "emulator")


def shipped_dirs() -> list[Path]:
    """Where the presets that come with iree_build lie (those that exist)."""
    package = Path(__file__).resolve().parent.parent  # iree_build
    # An installed copy has them as the package data iree_build/presets; a checkout at the root.
    candidates = [package / "presets", package.parent / "toolchains"]
    return [d for d in candidates if d.is_dir()]


def search_path(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[Path]:
    dirs = [Path(d) for d in extra_dirs]
    dirs += [Path(d) for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d]
    dirs += shipped_dirs()
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _display(path: Path) -> str:
    """The path as a person would type it: relative to here when below here."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


@dataclass(frozen=True)
class Toolchain:
    """A resolved preset: what to compile for, and the flags that say it."""

    name: str
    path: Path
    description: str
    target_backends: tuple[str, ...]
    options: Mapping[str, str] = field(default_factory=dict)
    extra_flags: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    chain: tuple[Path, ...] = ()  # this file, then the files it extends
    emulator: tuple[str, ...] = ()  # how its CPU code runs on a machine of another architecture

    @property
    def where(self) -> str:
        return _display(self.path)

    @property
    def output_format(self) -> str:
        return str(self.options.get("output_format", "vm-bytecode"))

    @property
    def output_suffix(self) -> str:
        """``.vmfb``, or ``.h`` for a vm-c (bare-metal C) module."""
        return target_options.output_suffix(self.options)

    @property
    def needs_cli(self) -> bool:
        """True when only the ``iree-compile`` tool can build it (vm-c, tool-only flags)."""
        return target_options.needs_cli(self.options, self.extra_flags)

    def check_registered(self, registered: Iterable[str] | None = None) -> None:
        """Fail clearly when this compiler lacks one of the preset's backends."""
        try:
            check_backends(
                list(self.target_backends), compiler_info().targets if registered is None else registered
            )
        except IreeBuildError as e:
            raise IreeBuildError(f"target_backends: {e.message}", where=self.where) from None

    def flags(self, output_path: str | os.PathLike) -> list[str]:
        """The full device + target flag list for the compiler (output ``-o`` excluded)."""
        self.check_registered()
        try:
            return [
                *device_flags(list(self.target_backends)),
                *target_options.option_flags(self.target_backends, self.options, os.fspath(output_path)),
                *self.extra_flags,
            ]
        except IreeBuildError as e:
            raise IreeBuildError(e.message, where=self.where) from None

    def side_outputs(self, output_path: str | os.PathLike) -> list[str]:
        """Files the compile writes beside ``output_path`` (declare them as targets)."""
        return target_options.side_outputs(self.target_backends, self.options, os.fspath(output_path))

    def summary(self) -> str:
        """Short target text for progress lines: ``llvm-cpu, cpu=znver3``, ``cuda, sm_80``."""
        parts = list(self.target_backends)
        opts = self.options
        if "llvm-cpu" in self.target_backends:
            cpu = target_options.cpu_target(opts)
            parts.append(cpu.summary())
            if "triple" in opts:
                parts.append(cpu.triple.split("-", 1)[0])
            if opts.get("executable_format", "embedded-elf") != "embedded-elf":
                parts.append(str(opts["executable_format"]))
        for key in ("cuda_target", "rocm_target", "vulkan_target", "metal_platform"):
            if key in opts:
                parts.append(str(opts[key]))
        if self.output_format != "vm-bytecode":
            parts.append(self.output_format)
        return ", ".join(parts)


# ---------------------------------------------------------------------------
# Loading


def _read(path: Path) -> dict:
    try:
        data = toml.loads(path.read_text(encoding="utf-8"))
    except toml.TomlDecodeError as e:
        raise IreeBuildError(
            f"TOML syntax error: {e.msg} (line {e.lineno}, column {e.colno})",
            where=_display(path),
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise IreeBuildError(f"cannot read toolchain file: {e}", where=_display(path)) from None
    for key in data:
        if key not in KEYS:
            hint = " (the preset's name is its file name)" if key == "name" else ""
            hint = hint or validation.did_you_mean(key, KEYS)
            raise IreeBuildError(
                f"unknown key '{key}'{hint}; known keys: {', '.join(KEYS)}", where=_display(path)
            )
    return data


def _string(data: dict, key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return validation.string(value, f'write {key} = "..."', empty=key == "description")
    except IreeBuildError as e:
        raise IreeBuildError(f"{key}: {e.message}", where=_display(path)) from None


def _strings(data: dict, key: str, path: Path) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return validation.strings(value, f'write {key} = ["a", "b"]', single=False, empty=True)
    except IreeBuildError as e:
        raise IreeBuildError(f"{key}: {e.message}", where=_display(path)) from None


def _locate(name: str, dirs: Sequence[Path], skip: Path | None = None) -> Path | None:
    for d in dirs:
        candidate = d / f"{name}.toml"
        if candidate.is_file() and (skip is None or candidate.resolve() != skip.resolve()):
            return candidate
    return None


def _merged(path: Path, dirs: Sequence[Path], seen: tuple[Path, ...] = ()) -> tuple[dict, tuple[Path, ...]]:
    """The file's keys over those of the files it extends; detects cycles."""
    if path.resolve() in [p.resolve() for p in seen]:
        cycle = " -> ".join(p.stem for p in (*seen, path))
        raise IreeBuildError(f"extends: cycle {cycle}", where=_display(seen[-1]))
    data = _read(path)
    parent_name = _string(data, "extends", path)
    if parent_name is None:
        return data, (path,)
    parent = _locate(parent_name, dirs, skip=path)
    if parent is None:
        raise IreeBuildError(
            f"extends: no toolchain '{parent_name}' in {', '.join(_display(d) for d in dirs)}",
            where=_display(path),
        )
    base, chain = _merged(parent, dirs, (*seen, path))
    merged = {k: v for k, v in base.items() if k != "extends"}
    for key, value in data.items():
        if key == "options" and isinstance(value, dict) and isinstance(merged.get("options"), dict):
            merged["options"] = {**merged["options"], **value}
        elif key != "extends":
            merged[key] = value
    return merged, (path, *chain)


def load(path: str | os.PathLike, extra_dirs: Iterable[str | os.PathLike] = ()) -> Toolchain:
    """Read and validate one preset file (its ``extends`` found on the search path)."""
    path = Path(path)
    dirs = search_path([*extra_dirs, path.parent])
    data, chain = _merged(path, dirs)

    def fail(message: str) -> IreeBuildError:
        return IreeBuildError(message, where=_display(path))

    description = _string(data, "description", path) or ""
    backends = _strings(data, "target_backends", path)
    if not backends:
        raise fail('target_backends is missing or empty; name at least one, e.g. ["llvm-cpu"]')
    for b in backends:
        try:
            validation.one_of(b, list(BACKENDS), "backend")
        except IreeBuildError as e:
            raise fail(f"target_backends: {e.message}") from None
    backends = list(dict.fromkeys(backends))
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise fail(f"options must be a table ([options]), got {type(options).__name__} {options!r}")
    extra_flags = _strings(data, "flags", path) or []
    for flag in extra_flags:
        if not flag.startswith("-"):
            raise fail(f"flags: {flag!r} does not start with '-'")
        owner = target_options.FLAG_OWNERS.get(target_options.flag_name(flag))
        if owner:
            raise fail(f"flags: {flag!r} is generated from {owner}; set that instead")
    try:
        target_options.check_options(backends, options, extra_flags)
    except IreeBuildError as e:
        raise fail(e.message) from None
    usable = devices_for(backends)
    devices = _strings(data, "devices", path)
    for dev in devices or []:
        try:
            validation.one_of(dev, HAL_DEVICES, "HAL device")
        except IreeBuildError as e:
            raise fail(f"devices: {e.message}") from None
        if dev not in usable:
            raise fail(
                f"devices: '{dev}' cannot run code built for {', '.join(backends)}; "
                f"its code runs on: {', '.join(usable)}"
            )
    emulator = _strings(data, "emulator", path) or []
    if "emulator" in data and not emulator:
        raise fail(
            "emulator is empty; write the command that runs this preset's CPU code here, "
            'e.g. emulator = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]'
        )
    return Toolchain(
        name=path.stem,
        path=path,
        description=description,
        target_backends=tuple(backends),
        options=MappingProxyType(dict(options)),
        extra_flags=tuple(extra_flags),
        devices=tuple(devices if devices else usable),
        chain=chain,
        emulator=tuple(emulator),
    )


def find_toolchain(
    name: str, extra_dirs: Iterable[str | os.PathLike] = (), check_registered: bool = True
) -> Toolchain:
    """The preset called ``name`` on the search path, validated.

    With ``check_registered`` (the default) a preset whose backends this
    compiler lacks fails here, listing the registered ones.
    """
    dirs = search_path(extra_dirs)
    path = _locate(name, dirs)
    if path is None:
        known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})
        raise IreeBuildError(
            f"no toolchain '{name}'{validation.did_you_mean(name, known)}; "
            f"known toolchains: {', '.join(known) or 'none'} "
            f"(searched {', '.join(_display(d) for d in dirs) or 'nothing'}; add folders with ${ENV_VAR})"
        )
    toolchain = load(path, extra_dirs)
    if check_registered:
        toolchain.check_registered()
    return toolchain


def list_toolchains(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[Toolchain]:
    """Every preset on the search path (first of each name), sorted by name.

    Presets are listed whether or not this compiler can build them; use
    ``Toolchain.check_registered`` to tell.
    """
    dirs = search_path(extra_dirs)
    names = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})
    return [load(_locate(n, dirs), extra_dirs) for n in names]  # type: ignore[arg-type]

"""Emulated test lanes: CPU code for another architecture, run here under an emulator.

A module cross-compiled for ``aarch64`` cannot run in this x86-64 process; with an
emulator declared for its architecture (``qemu-aarch64 -L /usr/aarch64-linux-gnu``,
as CMake's ``CMAKE_CROSSCOMPILING_EMULATOR``) its tests run that architecture's own
``iree-run-module`` (:mod:`runtime_tools`) under the emulator on ``local-task`` or
``local-sync``, and are judged here as native tests are. The lane shows in a test's
label (``add[local-task@aarch64]``); its hardware (:mod:`iree_build.hardware`: the
emulated architecture, the emulator's version, the tools) keys its results.

Where the emulator is declared: a toolchain preset's ``emulator`` key, the
``IREE_EMULATORS`` construction variable, ``scons --iree-emulator=ARCH:COMMAND``; the
test manifest carries it. Where the tests run (the standalone runner, a cluster
worker), ``$IREE_EMULATORS`` (``ARCH:COMMAND``, ``;`` between several) and then the
runner's ``--emulator=ARCH:COMMAND`` replace it: the emulator of the machine that runs
the code. Standard library only.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iree_build.errors import IreeBuildError
from iree_build.hardware import architecture, emulated, hardware_identity
from iree_build.hardware import normal_arch as normal_arch  # the owner of architecture names
from iree_build.testing.runtime_tools import RUN_TOOL, find_tools, tools_version

ENV_EMULATORS = "IREE_EMULATORS"
# Debian's names of an architecture (its cross C library: libc6-arm64-cross).
_DEBIAN = {"aarch64": "arm64", "riscv64": "riscv64", "x86_64": "amd64", "arm": "armhf"}
CPU_LANES = ("local-task", "local-sync")


host_arch = architecture  # this machine's CPU architecture (iree_build.hardware owns it)


def foreign(arch: str) -> bool:
    """True when code for ``arch`` cannot run natively here."""
    return bool(arch) and normal_arch(arch) != host_arch()


def lane_label(device: str, arch: str) -> str:
    """What a test's label shows: ``local-task@aarch64`` for emulated code, else the device."""
    return f"{device}@{normal_arch(arch)}" if foreign(arch) else device


def suggested(arch: str) -> str:
    """A usual emulator command for ``arch`` (Debian's qemu-user and cross C library)."""
    return f"qemu-{arch} -L /usr/{arch}-linux-gnu"


def parse_emulator(text: str, what: str = "--iree-emulator") -> tuple[str, tuple[str, ...]]:
    """``ARCH:COMMAND`` (``aarch64:qemu-aarch64 -L /usr/aarch64-linux-gnu``) -> (arch, argv)."""
    arch, sep, command = text.partition(":")
    arch = normal_arch(arch)
    if not sep or not arch or not command.strip():
        raise IreeBuildError(
            f"{what}: {text!r} is not ARCH:COMMAND; write e.g. {what}='aarch64:{suggested('aarch64')}'"
        )
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise IreeBuildError(f"{what}: cannot split {command!r} into words ({exc})") from None
    return arch, argv


def parse_emulators(texts: list[str] | tuple[str, ...], what: str) -> dict[str, tuple[str, ...]]:
    """Several ``ARCH:COMMAND`` (one option given several times, or ';'-separated)."""
    out: dict[str, tuple[str, ...]] = {}
    for text in texts:
        for part in text.split(";"):
            if part.strip():
                arch, argv = parse_emulator(part.strip(), what)
                out[arch] = argv
    return out


def emulators_here(given: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, tuple[str, ...]]:
    """The emulators this machine declares for the tests it runs: ``$IREE_EMULATORS``, then
    ``given`` (the runner's ``--emulator``) over it; they replace the manifest's."""
    text = os.environ.get(ENV_EMULATORS, "")
    here = parse_emulators([text], f"${ENV_EMULATORS}") if text.strip() else {}
    return {**here, **(given or {})}


def how_to_configure(arch: str) -> str:
    """The end of a skip line: where an emulator for ``arch`` is declared."""
    command = suggested(arch)
    return (
        f"declare an emulator to test it here: emulator = {list(shlex.split(command))!r} in its "
        f"toolchain preset, IREE_EMULATORS={{'{arch}': '{command}'}} in the SCons Environment, or "
        f"--iree-emulator='{arch}:{command}' (the standalone runner and cluster workers: "
        f"--emulator='{arch}:...' or ${ENV_EMULATORS}='{arch}:...')"
    )


@dataclass(frozen=True)
class Lane:
    """How this machine runs ``arch`` code: the emulator's argv and the arch's tools folder."""

    arch: str
    emulator: tuple[str, ...]
    tools: Path

    def command(self, tool: str = RUN_TOOL) -> list[str]:
        """The argv prefix that runs ``tool`` of this architecture."""
        return [*self.emulator, str(self.tools / tool)]

    @property
    def identity(self) -> str:
        """The hardware its results hold for (:func:`iree_build.hardware.hardware_identity`)."""
        return hardware_identity("local-task", arch=self.arch, emulator=self.emulator, tools=self._tools())

    def _tools(self) -> str:
        return f"{RUN_TOOL} {tools_version(self.tools)}"


def _missing_emulator(arch: str, emulator: tuple[str, ...]) -> str:
    """Why the emulator cannot start (its program or its target C library is missing), or ''."""
    program = emulator[0]
    debian = _DEBIAN.get(arch, arch)
    if shutil.which(program) is None:
        return (
            f"the {arch} emulator {program} is not installed (on Debian or Ubuntu: "
            f"apt-get install qemu-user libc6-{debian}-cross libstdc++6-{debian}-cross)"
        )
    prefix = ""
    if "-L" in emulator[:-1]:
        prefix = emulator[emulator.index("-L") + 1]
    prefix = prefix or os.environ.get("QEMU_LD_PREFIX", "")
    if prefix and not os.path.isdir(prefix):
        return (
            f"the {arch} emulator's library folder {prefix} is missing (on Debian or Ubuntu: "
            f"apt-get install libc6-{debian}-cross libstdc++6-{debian}-cross)"
        )
    return ""


def lane_for(
    module: str, arch: str, device: str, emulator: tuple[str, ...] | list[str], kind: str = "call"
) -> tuple[Lane | None, str]:
    """How a test of ``module`` (CPU code for ``arch``) runs here: (None, '') natively,
    (lane, '') emulated, (None, why not) when it cannot run here."""
    if not foreign(arch) or device.split("://", 1)[0] not in CPU_LANES:
        return None, ""
    arch = normal_arch(arch)
    here = f"{module} holds {arch} code only; this machine is {host_arch()}"
    if not emulator:
        return None, f"{here}: {how_to_configure(arch)}"
    missing = _missing_emulator(arch, tuple(emulator))
    if missing:
        return None, f"{here}: {missing}"
    tools, why = find_tools(arch)
    if tools is None:
        return None, f"{here}: {why}"
    if kind == "check":
        return None, (
            f"{here}: a check file needs IREE's check module to be judged, and the "
            f"{arch} {RUN_TOOL} run under {emulator[0]} has none (it would pass a "
            "failing check silently); not run on the emulated lane"
        )
    return Lane(arch, tuple(emulator), tools), ""


def lane_hardware(device: str, arch: str, emulator: tuple[str, ...] | list[str]) -> str:
    """The hardware a result on ``device`` of ``arch`` code obtained here holds for: this
    machine's (:mod:`iree_build.hardware`), and where the code is emulated, the emulated
    architecture, the emulator's version and the tools that run it."""
    if not emulator or not emulated(arch, device):
        return hardware_identity(device)
    tools, _ = find_tools(normal_arch(arch))
    found = f"{RUN_TOOL} {tools_version(tools)}" if tools is not None else f"no {RUN_TOOL}"
    return hardware_identity(device, arch=arch, emulator=tuple(emulator), tools=found)

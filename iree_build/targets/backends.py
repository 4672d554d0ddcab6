"""Target backends, HAL devices, and which backend's code runs on which device.

The table is the seed's deployment-configuration table: it is what lets a
declaration be checked while the SConscript is read (a test on ``cuda`` of a
module built only for ``llvm-cpu`` is an error, not a runtime surprise).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from iree_build.errors import IreeBuildError
from iree_build.testing.device_names import CPU_DEVICES, KNOWN_DEVICES


@dataclass(frozen=True)
class Backend:
    """A compiler target backend and the runtime side that can execute its code."""

    name: str
    target_device: str  # value of --iree-hal-target-device
    runs_on: tuple[str, ...]  # HAL devices that run this backend's executables

    @property
    def is_local(self) -> bool:
        return self.target_device == "local"


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("llvm-cpu", "local", ("local-sync", "local-task")),
        Backend("vmvx", "local", ("local-sync", "local-task")),
        Backend("vulkan-spirv", "vulkan", ("vulkan",)),
        Backend("cuda", "cuda", ("cuda",)),
        Backend("rocm", "hip", ("hip", "rocm")),
        Backend("webgpu-wgsl", "webgpu", ("webgpu",)),
        Backend("metal-spirv", "metal", ("metal",)),
    )
}

HAL_DEVICES: tuple[str, ...] = KNOWN_DEVICES  # one list: the runner's (standard library only)


def check_backends(backends: Sequence[str], registered: Iterable[str]) -> list[str]:
    """Validate a declaration's backends against the seed table and the compiler.

    Returns them de-duplicated in the given order, so the signature is stable.
    """
    if isinstance(backends, str):
        backends = [backends]
    if not backends:
        raise IreeBuildError("target_backends is empty: name at least one, e.g. ['llvm-cpu']")
    registered = sorted(set(registered))
    result: list[str] = []
    for name in backends:
        if name not in BACKENDS:
            raise IreeBuildError(f"unknown target backend '{name}'; known backends: {', '.join(BACKENDS)}")
        if name not in registered:
            raise IreeBuildError(
                f"target backend '{name}' is not registered in this compiler; "
                f"registered: {', '.join(registered)}"
            )
        if name not in result:
            result.append(name)
    return result


def devices_for(backends: Iterable[str]) -> list[str]:
    """HAL devices on which a module with these backends' executables can run."""
    out: list[str] = []
    for name in backends:
        for dev in BACKENDS[name].runs_on:
            if dev not in out:
                out.append(dev)
    return out


def check_device(device: str, backends: Sequence[str], devices: Sequence[str] | None = None) -> None:
    """Reject a run or test on a device none of the module's backends can serve.

    ``devices`` narrows the table's answer when a toolchain knows better (a
    bare-metal module runs on ``local-sync`` only).
    """
    base, sep, index = device.partition("://")
    if sep:  # one GPU of a driver: cuda://1
        if not index.isdigit() or base in CPU_DEVICES or base not in HAL_DEVICES:
            raise IreeBuildError(
                f"device '{device}': a device URI names one GPU of a driver by its index, e.g. 'cuda://1'"
            )
        device = base
    if device not in HAL_DEVICES:
        raise IreeBuildError(f"unknown HAL device '{device}'; known devices: {', '.join(HAL_DEVICES)}")
    usable = list(devices) if devices else devices_for(backends)
    if device not in usable:
        raise IreeBuildError(
            f"device '{device}' cannot run a module built for {', '.join(backends)}; "
            f"its code runs on: {', '.join(usable)} (add a backend for '{device}' to the module)"
        )


def device_flags(backends: Sequence[str]) -> list[str]:
    """Spell the target devices as the 3.x compiler wants them.

    One ``--iree-hal-target-device=a,b`` flag whose comma-separated list is a
    *device select*: the module gets one device with an executable variant per
    target and runs on whichever is present (repeating the flag would instead
    declare several devices that must all exist at run time). CPU-side backends
    share the ``local`` device, each named by its own
    ``--iree-hal-local-target-device-backends`` flag.

    A select of several devices also turns executable linking off: the compiler
    (3.13) links each target's executables into one, and the linked executable keeps
    the variants of only one device of the select, so a module with two dispatches
    built for ``llvm-cpu`` and ``cuda`` would not load on ``local-task`` (nor one
    built for ``llvm-cpu`` and ``vulkan-spirv`` on ``vulkan``).
    """
    devices: list[str] = []
    for name in backends:
        device = BACKENDS[name].target_device
        if device not in devices:
            devices.append(device)
    flags = [f"--iree-hal-target-device={','.join(devices)}"]
    flags += [f"--iree-hal-local-target-device-backends={b}" for b in backends if BACKENDS[b].is_local]
    if len(devices) > 1:
        flags.append("--iree-hal-link-executables=false")
    return flags


def uses_llvm_cpu(backends: Iterable[str]) -> bool:
    return "llvm-cpu" in backends

"""Version-independent target option keys, spelled as the installed compiler wants them.

A toolchain preset says ``cuda_target = "sm_80"``; this module is the one place
that knows that iree-base-compiler 3.13 spells it ``--iree-cuda-target=sm_80``
(not the seed's old ``--iree-hal-cuda-llvm-target-arch``). When the compiler's
flags change, only this table and ``data/gpu_targets.json`` change.

Verified against iree-base-compiler 3.13.0 (3.13.0rc20261016 @ 89ece87b8985)
by compiling ``func.func @add`` (tensor<4xf32> addf) with ``iree-compile`` in a
subprocess per case and reading the ``hal.executable.format`` strings back with
``iree-dump-module``:

* ``cpu``, ``cpu_features``, ``triple`` (llvm-cpu): ``host_cpu.resolve(...).flags()``
  -> ``embedded-elf-x86_64`` / ``embedded-elf-arm_64`` / ``embedded-elf-riscv_64``
* ``executable_format = "embedded-elf"`` (default): no flag -> ``embedded-elf-<arch>``
* ``executable_format = "system-library"``: ``--iree-llvmcpu-link-embedded=false``
  -> ``system-elf-<arch>``
* ``executable_format = "static-library"``: ``--iree-llvmcpu-link-embedded=false
  --iree-llvmcpu-link-static --iree-llvmcpu-static-library-output-path=<o>``
  -> ``static``, plus ``<o>`` and ``<o stem>.h`` written beside the module
* ``cuda_target``: ``--iree-cuda-target=<name>`` -> ``cuda-nvptx-fb``
* ``rocm_target`` (required): ``--iree-rocm-target=<name>`` -> ``rocm-hsaco-fb``
* ``vulkan_target``: ``--iree-vulkan-target=<name>`` -> ``vulkan-spirv-fb``
* ``metal_platform``: ``--iree-metal-target-platform=macos|ios|ios-simulator``
  -> ``metal-msl-fb`` (MSL source; no metallib without Xcode)
* ``output_format = "vm-c"``: ``--output-format=vm-c`` -> a C module (header)
* vmvx (a backend, not a format) -> ``vmvx-bytecode-fb``; webgpu-wgsl is not
  in the 3.13 wheel ("unregistered device alias"), so it has no options.

Facts the checks below encode (each seen, not assumed):

* A GPU target name the compiler does not know crashes it (SIGSEGV, exit 245)
  for cuda and vulkan, and sm_90/sm_100 fail with "missing GPU target in
  #hal.executable.target"; so names are checked against the verified lists.
* rocm has no default chip ("ROCM target not set"); cuda defaults to sm_60 and
  vulkan to the portable ``vp_android_baseline_2022`` profile.
* ``link-static`` alone fails ("cannot embed ELF and produce static library
  simultaneously"); the ``.o`` directory must exist; the ``.h`` is written
  beside the ``.o`` with the same stem.
* system-library links with the host's ``ld``: cross-arch fails ("file in wrong
  format") unless a system linker is given.
* riscv with the generic CPU and no ``+f``/``+d`` cannot link float code
  ("undefined symbol: __addsf3").
* ``--output-format`` and ``--iree-stream-partitioning-favor`` are options of the
  ``iree-compile`` tool: ``iree.compiler.api`` sessions reject them ("option not
  found"), and the API has no vm-c output; such compiles need the CLI.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from iree_build.errors import IreeBuildError
from iree_build.targets.cpu_features import arch_of as _arch
from iree_build.targets.cpu_features import check_features, check_triple
from iree_build.targets.host_cpu import CpuTarget, host, resolve
from iree_build.validation import did_you_mean, wrong_type

EXECUTABLE_FORMATS = ("embedded-elf", "system-library", "static-library")
OUTPUT_FORMATS = ("vm-bytecode", "vm-c")
METAL_PLATFORMS = ("macos", "ios", "ios-simulator")


@dataclass(frozen=True)
class TargetOption:
    """One preset option: which backends it applies to and how its value is spelled."""

    key: str
    backends: tuple[str, ...]  # empty: applies whatever the backends
    flag: str = ""  # "--x" -> "--x=<value>"; empty: spelled by code below
    choices: tuple[str, ...] = ()  # fixed values; GPU names come from gpu_targets.json


OPTIONS: dict[str, TargetOption] = {
    o.key: o
    for o in (
        TargetOption("cpu", ("llvm-cpu",)),
        TargetOption("cpu_features", ("llvm-cpu",)),
        TargetOption("triple", ("llvm-cpu",)),
        TargetOption("executable_format", ("llvm-cpu",), choices=EXECUTABLE_FORMATS),
        TargetOption("cuda_target", ("cuda",), flag="--iree-cuda-target"),
        TargetOption("rocm_target", ("rocm",), flag="--iree-rocm-target"),
        TargetOption("vulkan_target", ("vulkan-spirv",), flag="--iree-vulkan-target"),
        TargetOption(
            "metal_platform", ("metal-spirv",), flag="--iree-metal-target-platform", choices=METAL_PLATFORMS
        ),
        TargetOption("output_format", (), choices=OUTPUT_FORMATS),
    )
}

# Generated flags a preset's free ``flags`` must not repeat: the option to use instead.
FLAG_OWNERS: dict[str, str] = {
    "--iree-hal-target-device": "target_backends",
    "--iree-hal-target-backends": "target_backends",
    "--iree-hal-local-target-device-backends": "target_backends",
    "--iree-llvmcpu-target-cpu": "options.cpu",
    "--iree-llvmcpu-target-cpu-features": "options.cpu_features",
    "--iree-llvmcpu-target-triple": "options.triple",
    "--iree-llvmcpu-link-embedded": "options.executable_format",
    "--iree-llvmcpu-link-static": "options.executable_format",
    "--iree-llvmcpu-static-library-output-path": "options.executable_format",
    "--iree-cuda-target": "options.cuda_target",
    "--iree-rocm-target": "options.rocm_target",
    "--iree-rocm-target-chip": "options.rocm_target",
    "--iree-hal-cuda-llvm-target-arch": "options.cuda_target",
    "--iree-vulkan-target": "options.vulkan_target",
    "--iree-metal-target-platform": "options.metal_platform",
    "--output-format": "options.output_format",
}

# Options of the iree-compile tool that iree.compiler.api sessions reject.
CLI_ONLY_FLAGS: tuple[str, ...] = (
    "--output-format",
    "--iree-stream-partitioning-favor",
    "--iree-hal-link-executables",  # a module for several devices (backends.device_flags)
)

_GPU_KIND = {"cuda_target": "CUDA", "rocm_target": "ROCm", "vulkan_target": "Vulkan"}


@lru_cache(maxsize=1)
def gpu_targets() -> dict:
    """The verified GPU target names (``data/gpu_targets.json``)."""
    text = resources.files("iree_build").joinpath("data/gpu_targets.json").read_text()
    return json.loads(text)


def flag_name(flag: str) -> str:
    """``--x=1`` -> ``--x``."""
    return flag.split("=", 1)[0]


def _choices_error(key: str, value: str, choices: Sequence[str]) -> IreeBuildError:
    return IreeBuildError(
        f"options.{key} = {value!r} is not one of: {', '.join(choices)}{did_you_mean(value, choices)}"
    )


def validate_target(key: str, value: object, triple: str | None = None) -> None:
    """Reject, before compiling, a value the installed compiler cannot build.

    GPU names are checked against lists verified by compiling (an unknown name
    crashes the compiler); a known-bad one says what to use instead.
    """
    if key not in OPTIONS:
        raise IreeBuildError(f"unknown target option '{key}'; known options: {', '.join(OPTIONS)}")
    if not isinstance(value, str):
        raise IreeBuildError(
            f"options.{key}: " + wrong_type(value, "a string", f'write {key} = "..."').message
        )
    option = OPTIONS[key]
    if key == "executable_format" and value == "vmvx":
        raise IreeBuildError(
            "options.executable_format = 'vmvx': vmvx is a target backend, not an executable "
            "format; put 'vmvx' in target_backends"
        )
    if option.choices and value not in option.choices:
        raise _choices_error(key, value, option.choices)
    if key == "cpu":
        resolve(value, None, triple)
    elif key == "triple":
        check_triple(value)
    elif key == "cpu_features":
        check_features(value, triple or host()[2])
    elif key in _GPU_KIND:
        _validate_gpu(key, value)


def _validate_gpu(key: str, value: str) -> None:
    table = gpu_targets()[key]
    if value in table["accepted"] or any(re.fullmatch(p, value) for p in table["patterns"]):
        return
    kind = _GPU_KIND[key]
    built_with = gpu_targets()["verified_with"]
    instead = table["instead"].get(value) or table["instead"].get(value.lower())
    if instead:
        use = f"use {instead['use']!r} instead: " if instead["use"] else ""
        raise IreeBuildError(
            f"options.{key} = {value!r}: {built_with} cannot build {kind} code for it "
            f"({instead['why']}); {use}{instead['note']}"
        )
    if value.lower() in table["accepted"]:
        raise IreeBuildError(f"options.{key} = {value!r}: write it in lower case, {value.lower()!r}")
    close = difflib.get_close_matches(value.lower(), table["accepted"], n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise IreeBuildError(
        f"options.{key} = {value!r} is not a {kind} target {built_with} knows "
        f"(an unknown name crashes the compiler); {hint}"
        f"use one of: {', '.join(table['suggest'])} (all names: iree_build/data/gpu_targets.json)"
    )


def check_options(
    backends: Sequence[str], options: Mapping[str, object], extra_flags: Sequence[str] = ()
) -> None:
    """Validate a whole option set for these backends (before any compile).

    Raises IreeBuildError whose message starts with the offending key.
    """
    for key, value in options.items():
        if key not in OPTIONS:
            raise IreeBuildError(
                f"unknown key 'options.{key}'{did_you_mean(key, OPTIONS)}; "
                f"known options: {', '.join(OPTIONS)}"
            )
        applies = OPTIONS[key].backends
        if applies and not any(b in backends for b in applies):
            raise IreeBuildError(
                f"options.{key} applies to {', '.join(applies)}, but the target backends "
                f"are {', '.join(backends)}"
            )
        try:
            triple = options.get("triple") if key in ("cpu", "cpu_features") else None
            validate_target(key, value, triple=triple if isinstance(triple, str) else None)
        except IreeBuildError as e:
            raise _keyed(key, e) from None
    if "rocm" in backends and "rocm_target" not in options:
        raise IreeBuildError(
            "options.rocm_target is required for rocm (the compiler has no default chip); "
            f"e.g. 'gfx942' (MI300); use one of: {', '.join(gpu_targets()['rocm_target']['suggest'])}"
        )
    if "llvm-cpu" in backends:
        try:
            cpu = cpu_target(options)
        except IreeBuildError as e:
            raise _keyed("cpu", e) from None
        _check_cpu_format(cpu, options, extra_flags)


def _keyed(key: str, error: IreeBuildError) -> IreeBuildError:
    """Prefix a message from elsewhere (host_cpu) with the option key it is about."""
    if error.message.startswith("options."):
        return error
    return IreeBuildError(f"options.{key}: {error.message}", where=error.where)


def _check_cpu_format(cpu: CpuTarget, options: Mapping[str, object], extra_flags: Sequence[str]) -> None:
    arch = _arch(cpu.triple)
    fmt = options.get("executable_format", "embedded-elf")
    if fmt == "system-library" and arch != _arch(host()[2]):
        if not any(flag_name(f) == "--iree-llvmcpu-system-linker-path" for f in extra_flags):
            raise IreeBuildError(
                f"options.executable_format = 'system-library' links with this machine's "
                f"linker, which cannot link {arch} code; use 'embedded-elf' or "
                "'static-library' when cross-compiling, or add "
                "'--iree-llvmcpu-system-linker-path=...' to flags"
            )
    if arch.startswith("riscv") and cpu.cpu == "generic":
        features = cpu.features.split(",")
        if "+f" not in features and "+d" not in features:
            raise IreeBuildError(
                f"options.cpu_features: the generic {arch} CPU has no floating point, so "
                "float code cannot link (undefined __addsf3); set cpu_features = "
                '"+m,+a,+f,+d,+c" (RV64GC) or name a CPU'
            )


def cpu_target(options: Mapping[str, object]) -> CpuTarget:
    """The concrete llvm-cpu target (``cpu = "host"`` resolved to this machine)."""
    return resolve(options.get("cpu"), options.get("cpu_features"), options.get("triple"))  # type: ignore[arg-type]


def static_library_paths(output_path: str) -> tuple[str, str]:
    """Where a static-library build writes its executables: ``<stem>_dispatch.o/.h``.

    Derived from the module's output so two modules never share one; the compiler
    writes the header beside the object with the same stem.
    """
    stem, _ = os.path.splitext(output_path)
    return f"{stem}_dispatch.o", f"{stem}_dispatch.h"


def option_flags(backends: Sequence[str], options: Mapping[str, object], output_path: str) -> list[str]:
    """The compiler flags for these options (device flags excluded)."""
    flags: list[str] = []
    if "llvm-cpu" in backends:
        flags.extend(cpu_target(options).flags())
        fmt = options.get("executable_format", "embedded-elf")
        if fmt == "system-library":
            flags.append("--iree-llvmcpu-link-embedded=false")
        elif fmt == "static-library":
            obj, _ = static_library_paths(output_path)
            flags += [
                "--iree-llvmcpu-link-embedded=false",
                "--iree-llvmcpu-link-static",
                f"--iree-llvmcpu-static-library-output-path={obj}",
            ]
    for key, option in OPTIONS.items():
        if option.flag and key in options:
            flags.append(f"{option.flag}={options[key]}")
    if options.get("output_format", "vm-bytecode") != "vm-bytecode":
        flags.append(f"--output-format={options['output_format']}")
    return flags


def side_outputs(backends: Sequence[str], options: Mapping[str, object], output_path: str) -> list[str]:
    """Files the compile writes besides its output (to declare as SCons targets)."""
    if "llvm-cpu" in backends and options.get("executable_format") == "static-library":
        return list(static_library_paths(output_path))
    return []


def output_suffix(options: Mapping[str, object]) -> str:
    """``.vmfb`` for bytecode; ``.h`` for a vm-c module (IREE's C modules are headers)."""
    return ".h" if options.get("output_format") == "vm-c" else ".vmfb"


def needs_cli(options: Mapping[str, object], extra_flags: Sequence[str] = ()) -> bool:
    """Whether only the ``iree-compile`` tool (not an api.Session) can run this compile."""
    if options.get("output_format", "vm-bytecode") != "vm-bytecode":
        return True
    return any(flag_name(f) in CLI_ONLY_FLAGS for f in extra_flags)

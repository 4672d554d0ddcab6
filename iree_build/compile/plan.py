"""One module's compile plan: everything that decides its compile, made once.

The target (a preset, or backends with a CPU), ``$IREE_COMPILEFLAGS``, the model's
own flags (an ONNX import's policy), ``flags=`` and per-backend flags meet here, and
nowhere else, in one argument list, with the files that list reads (flag files,
tuning specs, substituted executables). The SCons build, the cluster,
``--iree-commands`` and the CMake/Bazel export all read the plan, like iree.build's
``TargetMachine.flag_list``.

Paths a flag names are relative to the SConscript that declared the module (the
caller's ``resolve`` maps them to the compiler's view, relative to the top folder,
and rejects a missing one); a flag file's contents are read when the module is
built, so a generated one is read after it is made.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from iree_build.compile.scan import read_flag_file, rewrite_flag_paths
from iree_build.targets.backends import check_backends, device_flags, devices_for, uses_llvm_cpu
from iree_build.targets.host_cpu import resolve as resolve_cpu
from iree_build.targets.options import needs_cli
from iree_build.targets.toolchains import find_toolchain

from ..errors import IreeBuildError

Resolve = Callable[[str, str], str]
"""``resolve(path, origin)``: a path as the user wrote it -> the path the compiler reads;
``origin`` ("a compiler flag", "$IREE_COMPILEFLAGS") is for its error message."""


@dataclass(frozen=True)
class CompilePlan:
    """A module's compile: the final arguments (flag files still to expand) and what it reads."""

    output: str  # relative to the top folder
    backends: tuple[str, ...]
    devices: tuple[str, ...]  # HAL devices that can run it
    target_flags: tuple[str, ...]  # from the target: devices, CPU, preset options and flags
    extra_flags: tuple[str, ...]  # $IREE_COMPILEFLAGS, model, flags=, backend flags; paths rewritten
    reads: tuple[str, ...] = ()  # files the flags name, flag files included (compiler paths)
    dirs: tuple[str, ...] = ()  # folders the flags name (substitution sources)
    side_outputs: tuple[str, ...] = ()  # files the compile writes besides the output
    cli: bool = False  # only the iree-compile tool can run it
    summary: str = ""  # "llvm-cpu, cpu=znver3"
    toolchain: str = ""  # the preset it was planned from
    emulator: tuple[str, ...] = ()  # the preset's emulator: how its CPU code runs elsewhere

    @property
    def args(self) -> tuple[str, ...]:
        """The argument list, ``@file`` flag files unexpanded (iree-compile reads them so)."""
        return (*self.target_flags, *self.extra_flags)

    @property
    def flag_files(self) -> tuple[str, ...]:
        return tuple(f[1:] for f in self.extra_flags if f.startswith("@"))

    def flags(self, top: str = "", missing_ok: bool = False) -> tuple[str, ...]:
        """The final flags, flag files expanded (the in-process compiler does not read
        ``@file``). ``missing_ok`` keeps a flag file not made yet as ``@file``: a
        signature asked for before it is built (``scons -n``) then differs."""
        if not any(f.startswith("@") for f in self.extra_flags):
            return self.args
        out = list(self.target_flags)
        for flag in self.extra_flags:
            if not flag.startswith("@"):
                out.append(flag)
                continue
            path = os.path.join(top, flag[1:])
            if missing_ok and not os.path.exists(path):
                out.append(flag)
            else:
                out += read_flag_file(path)
        return tuple(out)

    @property
    def cpu_arch(self) -> str | None:
        """The CPU architecture its local code needs (None: any; vmvx runs everywhere)."""
        if "llvm-cpu" not in self.backends or "vmvx" in self.backends:
            return None
        for flag in self.target_flags:
            if flag.startswith("--iree-llvmcpu-target-triple="):
                return flag.split("=", 1)[1].split("-", 1)[0]
        return None


def _strings(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _target(
    output_for, toolchain, target_backends, cpu, cpu_features, triple, defaults, toolchain_dirs, registered
) -> dict:
    if toolchain is None and target_backends is None:
        toolchain = defaults.get("toolchain") or None
    if toolchain is not None:
        if target_backends is not None or cpu or cpu_features or triple:
            raise IreeBuildError(
                f"toolchain='{toolchain}' already says the targets; drop target_backends/cpu/"
                "cpu_features/triple, or write a preset that extends it"
            )
        tc = find_toolchain(str(toolchain), extra_dirs=toolchain_dirs, check_registered=False)
        tc.check_registered(registered)
        output = output_for(tc.output_suffix)
        target_flags = tc.flags(output)
        return dict(
            output=output,
            backends=tuple(tc.target_backends),
            devices=tuple(tc.devices),
            target_flags=tuple(target_flags),
            side_outputs=tuple(tc.side_outputs(output)),
            cli=tc.needs_cli or needs_cli({}, target_flags),
            summary=tc.summary(),
            toolchain=str(toolchain),
            emulator=tuple(tc.emulator),
        )
    backends = check_backends(
        _strings(target_backends) or _strings(defaults.get("target_backends")), registered
    )
    flags = device_flags(backends)
    summary = ", ".join(backends)
    if uses_llvm_cpu(backends):
        cpu_target = resolve_cpu(
            cpu or defaults.get("cpu"),
            cpu_features or defaults.get("cpu_features"),
            triple or defaults.get("triple"),
        )
        flags += cpu_target.flags()
        summary += ", " + cpu_target.summary()
    return dict(
        output=output_for(".vmfb"),
        backends=tuple(backends),
        devices=tuple(devices_for(backends)),
        target_flags=tuple(flags),
        summary=summary,
        cli=needs_cli({}, flags),  # a select of several devices needs a flag only the tool takes
    )


def plan_module(
    output_for: Callable[[str], str],
    *,
    resolve: Resolve,
    registered: Iterable[str],
    toolchain: str | None = None,
    target_backends: Sequence[str] | None = None,
    cpu: str | None = None,
    cpu_features: str | None = None,
    triple: str | None = None,
    defaults: Mapping[str, object] | None = None,
    toolchain_dirs: Iterable[str] = (),
    env_flags: Sequence[str] = (),
    model_flags: Sequence[str] = (),
    flags: Sequence[str] = (),
    backend_flags: Mapping[str, Sequence[str]] | None = None,
) -> CompilePlan:
    """The plan of one module; ``output_for(suffix)`` names its output (relative to the
    top folder) once the target says the suffix (``.vmfb``, ``.h`` for a vm-c module).

    ``defaults`` (``toolchain``, ``target_backends``, ``cpu``, ``cpu_features``,
    ``triple``) apply where the declaration says nothing; a declared toolchain with
    any other target argument is an error. Flags come in this order: the target's,
    ``env_flags`` ($IREE_COMPILEFLAGS), ``model_flags``, ``flags``, then
    ``backend_flags`` of the module's backends. Raises IreeBuildError.
    """
    target = _target(
        output_for,
        toolchain,
        target_backends,
        cpu,
        cpu_features,
        triple,
        defaults or {},
        list(toolchain_dirs),
        list(registered),
    )
    declared = declared_flags(model_flags, flags, backend_flags, target["backends"])
    for flag in declared:
        if not flag.startswith(("-", "@")):
            raise IreeBuildError(f"compiler flag {flag!r} does not start with '-' (or '@' for a flag file)")
    env_part = rewrite_flag_paths(_strings(env_flags), lambda p: resolve(p, "$IREE_COMPILEFLAGS"))
    own_part = rewrite_flag_paths(declared, lambda p: resolve(p, "a compiler flag"))
    return CompilePlan(
        extra_flags=(*env_part.flags, *own_part.flags),
        reads=tuple(dict.fromkeys([*env_part.files, *own_part.files])),
        dirs=tuple(dict.fromkeys([*env_part.dirs, *own_part.dirs])),
        **target,
    )


def declared_flags(
    model_flags: Sequence[str] | None = (),
    flags: Sequence[str] | None = (),
    backend_flags: Mapping[str, Sequence[str]] | None = None,
    backends: Sequence[str] = (),
) -> list[str]:
    """The flags a declaration adds itself (not $IREE_COMPILEFLAGS), as written."""
    out = [*_strings(model_flags), *_strings(flags)]
    for backend in backends:
        out += _strings((backend_flags or {}).get(backend))
    return out

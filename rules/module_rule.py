"""``iree_module``: compile an MLIR source into a ``.vmfb``.

The declaration is checked while the SConscript is read (backends registered,
CPU known, output not claimed twice); what the compile needs is passed to the
builder as override variables, so ``env.Clone()`` and per-call overrides work
the SCons way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import SCons.Builder
import SCons.Util

from iree_build.compiler_info import compiler_info
from iree_build.errors import IreeBuildError
from iree_build.host_cpu import resolve
from iree_build.scan import rewrite_flag_paths
from iree_build.targets import check_backends, device_flags, devices_for, uses_llvm_cpu
from iree_build.toolchains import find_toolchain

from . import compile_action, help_summary, options
from .arguments import checked
from .compile_action import COMPILE_ACTION
from .mlir_scanner import MLIR_SCANNER
from .registry import registry
from .where import declared_at, fail, source_folder

@dataclass(frozen=True)
class ModuleInfo:
    """What runs and tests need to know of a declared module."""

    backends: list[str]
    devices: list[str]  # HAL devices that can run it
    cpu_arch: str | None  # architecture its CPU code needs, when it has no portable variant
    parameters: tuple = ()  # archives it reads at run time (externalized ONNX weights)
    parameter_scope: str = "model"
    where: str = ""  # SConscript:line that declared it
    summary: str = ""  # its targets in words, "llvm-cpu, cpu=znver3"
    label: str = ""  # its output, from the top folder: "build/models/mlp.vmfb"
    folder: str = ""  # the declaring SConscript's source folder ("" = top)
    toolchain: str = ""  # the preset it was declared with, if any
    emulator: tuple = ()  # its preset's emulator: how its CPU code runs on another architecture


builder = SCons.Builder.Builder(
    action=COMPILE_ACTION,
    suffix=".vmfb",
    src_suffix=".mlir",
    single_source=True,
    source_scanner=MLIR_SCANNER,
)


def _flag_path_resolver(env, where_files: list):
    """Map a path in a flag (relative to the SConscript) to the compiler's view."""

    def resolve(path: str) -> str:
        node = env.Entry(path)
        if not (node.has_builder() or node.is_derived()):
            node = node.srcnode()
            if not node.exists():
                raise IreeBuildError(f"a compiler flag names '{path}', which does not exist "
                                     f"({node.get_internal_path()})")
        where_files.append(node)
        return node.get_internal_path()

    return resolve


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _source_node(node):
    """The file in the source tree, not its variant-dir twin, unless it is built.

    The compiler reads the source where it lies (no copy), the path embedded in
    the module is the checkout's, and SCons' explain names the real file.
    """
    if node.has_builder() or node.is_derived():
        return node
    return node.srcnode()


def toolchain_dirs(env) -> list[str]:
    """Project preset folders: ``$IREE_TOOLCHAIN_DIRS`` (default ``#toolchains``)."""
    dirs = [env.Dir(d).get_abspath() for d in env.Flatten([env.get("IREE_TOOLCHAIN_DIRS", [])])]
    return [d for d in dirs if os.path.isdir(d)]


def _target(env, toolchain, target_backends, cpu, cpu_features, triple):
    """(backends, devices, target flags for an output path, side outputs, suffix, cli, summary,
    the preset's emulator)."""
    if toolchain is None and target_backends is None:
        toolchain = options.option("iree-toolchain") or env.get("IREE_TOOLCHAIN") or None
    if toolchain is not None:
        if target_backends is not None or cpu or cpu_features or triple:
            raise IreeBuildError(
                f"toolchain='{toolchain}' already says the targets; drop target_backends/cpu/"
                "cpu_features/triple, or write a preset that extends it")
        tc = find_toolchain(str(toolchain), extra_dirs=toolchain_dirs(env))
        tc.check_registered()
        return (list(tc.target_backends), list(tc.devices), tc.flags, tc.side_outputs,
                tc.output_suffix, tc.needs_cli, tc.summary(), tc.emulator)
    backends = check_backends(
        _as_list(target_backends) or _as_list(env.get("IREE_TARGET_BACKENDS", ["llvm-cpu"])),
        compiler_info().targets,
    )
    flags = device_flags(backends)
    summary = ", ".join(backends)
    if uses_llvm_cpu(backends):
        cpu_target = resolve(cpu or env.get("IREE_CPU"), cpu_features or env.get("IREE_CPU_FEATURES"),
                             triple or env.get("IREE_TRIPLE"))
        flags += cpu_target.flags()
        summary += ", " + cpu_target.summary()
    return (backends, devices_for(backends), lambda out: list(flags), lambda out: [],
            ".vmfb", False, summary, ())


def _cpu_arch(backends: list[str], flags: list[str]) -> str | None:
    """The CPU architecture a module's local code needs (None: any; vmvx runs everywhere)."""
    if "llvm-cpu" not in backends or "vmvx" in backends:
        return None
    for flag in flags:
        if flag.startswith("--iree-llvmcpu-target-triple="):
            return flag.split("=", 1)[1].split("-", 1)[0]
    return None


def refuse_duplicate_flags(extra: Sequence[str], derived: Sequence[str], toolchain: str | None) -> None:
    """A flag in ``flags=`` that the rules already derive (from target_backends, cpu, triple
    or a preset) would be a silent second copy: one line naming both."""
    made = {str(f).split("=", 1)[0]: str(f) for f in derived}
    if "--iree-hal-target-device" in made:  # the older spelling of the same choice
        made["--iree-hal-target-backends"] = made["--iree-hal-target-device"]
    source = f"toolchain {toolchain!r}" if toolchain else "target_backends/cpu/cpu_features/triple"
    for flag in extra:
        name = str(flag).split("=", 1)[0]
        if name in made:
            raise IreeBuildError(f"flags: {flag} duplicates {made[name]}, which {source} already "
                                 f"sets; drop it from flags (or set it through {source})")


@checked("IreeModule")
def IreeModule(env, target, source, target_backends: Sequence[str] | None = None,
               cpu: str | None = None, cpu_features: str | None = None,
               triple: str | None = None, flags: Sequence[str] | None = None,
               toolchain: str | None = None, onnx_opset: int | None = None,
               externalize_params: bool = False, params_scope: str = "model", **kw):
    """Pseudo-builder: validate the declaration, then call the real builder.

    An ``.onnx`` source is imported first (``iree_import_onnx``), as its own step.
    """
    where = declared_at()
    params: tuple = ()
    if str(env.Flatten([source])[0]).endswith(".onnx"):
        from .onnx_rule import declare_import

        stem = SCons.Util.splitext(str(env.Flatten([target])[0]))[0]
        imported, policy = declare_import(
            env, stem, source, onnx_opset, externalize_params, params_scope,
            output=f"{stem}.imported.mlir", allow_failure=bool(kw.get("_IREE_ALLOW_FAILURE")))
        source, params = imported[0], tuple(imported[1:])
        flags = [*policy.compile_flags(_as_list(flags)), *_as_list(flags)]  # f64 models
    try:
        backends, devices, target_flags, side_outputs, suffix, cli, summary, emulator = _target(
            env, toolchain, target_backends, cpu, cpu_features, triple)
        extra = _as_list(flags)
        for flag in extra:
            if not flag.startswith(("-", "@")):
                raise IreeBuildError(f"compiler flag {flag!r} does not start with '-' (or '@' for a flag file)")
        flag_nodes: list = []
        rewritten = rewrite_flag_paths(extra, _flag_path_resolver(env, flag_nodes))
        outputs = [
            t if not isinstance(t, str) else env.File(SCons.Util.adjustixes(t, "", suffix))
            for t in env.Flatten([target])
        ]
        if len(outputs) != 1:
            raise IreeBuildError("a module has exactly one output; declare one module per call")
        out = outputs[0]
        flags_for_out = target_flags(out.get_internal_path())
        refuse_duplicate_flags(extra, flags_for_out, toolchain)
        side = [env.File("#" + p) for p in side_outputs(out.get_internal_path())]
        sources = [_source_node(n) for n in env.arg2nodes(source, env.File)]
        missing = [n for n in sources if not (n.has_builder() or n.is_derived() or n.exists())]
        if missing:
            raise IreeBuildError(f"source {missing[0].get_internal_path()} not found")
    except IreeBuildError as e:
        fail(str(e) if e.where else e.message, where)
    reg = registry(env)
    previous = reg.modules.get(out.get_abspath())
    if previous and previous.where != where:
        fail(f"{out} is already declared at {previous.where} [{previous.summary}]; "
             "give this module another name", where)
    preset = str(toolchain or options.option("iree-toolchain") or env.get("IREE_TOOLCHAIN") or "") \
        if target_backends is None else ""
    reg.modules[out.get_abspath()] = ModuleInfo(
        backends, devices, _cpu_arch(backends, flags_for_out), params, params_scope, where, summary,
        out.get_internal_path(), source_folder(env), preset, emulator)
    if preset:
        reg.presets.add(preset)
    help_summary.note_module(env)
    nodes = builder(
        env, [out, *side], sources,
        _IREE_TARGET_FLAGS=flags_for_out,
        _IREE_NEEDS_CLI=cli,
        IREE_COMPILEFLAGS=env.Flatten([env.get("IREE_COMPILEFLAGS", []), rewritten.flags]),
        _IREE_TARGET_SUMMARY=summary,
        **kw,
    )
    env.Clean(nodes, env.File(f"{out}.failed"))  # a failed compile's note (expected_failure)
    dir_files = [f for d in rewritten.dirs for f in env.Glob(f"#{d}/*")]
    if flag_nodes or dir_files:
        env.Depends(nodes, flag_nodes + dir_files)  # spec libraries, substitutions, search folders
    if not os.path.exists(out.get_abspath()):  # this build compiles it: get workers going now
        compile_action.prestart(env, reg)
    return nodes


@checked("iree_module")
def iree_module(name: str, src: str, target_backends: Sequence[str] | None = None,
                cpu: str | None = None, cpu_features: str | None = None,
                triple: str | None = None, flags: Sequence[str] | None = None,
                toolchain: str | None = None, onnx_opset: int | None = None,
                externalize_params: bool = False, params_scope: str = "model", env=None, **kw):
    """Declare ``name.vmfb`` (beside the calling SConscript, or in its variant dir)."""
    from . import default_environment

    env = env or default_environment()
    if not name or "/" in name:
        fail(f"module name {name!r} must be a plain name like 'mlp'")
    return IreeModule(env, name, src, target_backends=target_backends, cpu=cpu,
                      cpu_features=cpu_features, triple=triple, flags=flags,
                      toolchain=toolchain, onnx_opset=onnx_opset,
                      externalize_params=externalize_params, params_scope=params_scope, **kw)


def find_module(env, module) -> tuple[object, ModuleInfo]:
    """The ``.vmfb`` node a run or test names (a name, a path, or iree_module's result)."""
    if isinstance(module, (list, tuple)) and len(module) == 1:
        module = module[0]
    if isinstance(module, str):
        node = env.File(module if module.endswith(".vmfb") else module + ".vmfb")
    else:
        node = module
    info = registry(env).modules.get(node.get_abspath())
    if info is None:
        raise IreeBuildError(
            f"module '{module}' is not declared here; declare it with "
            f"iree_module(name='{getattr(module, 'name', module)}', ...) before its runs and tests"
        )
    return node, info

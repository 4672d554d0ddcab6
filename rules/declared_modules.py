"""What a build declared of its modules, as runs, tests and argument checks look it up.

Kept apart from ``module_rule`` (which declares modules) so that the argument checks
and the rules that use a module import this, not the rule that makes one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from iree_build.errors import IreeBuildError
from iree_build.validation import did_you_mean

from .registry import registry


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


def toolchain_dirs(env) -> list[str]:
    """Project preset folders: ``$IREE_TOOLCHAIN_DIRS`` (default ``#toolchains``)."""
    dirs = [env.Dir(d).get_abspath() for d in env.Flatten([env.get("IREE_TOOLCHAIN_DIRS", [])])]
    return [d for d in dirs if os.path.isdir(d)]


def find_module(env, module) -> tuple[object, ModuleInfo]:
    """The ``.vmfb`` node a run or test names (a name, a path, or iree_module's result)."""
    if isinstance(module, (list, tuple)) and len(module) == 1:
        module = module[0]
    if isinstance(module, str):
        node = env.File(module if module.endswith(".vmfb") else module + ".vmfb")
    else:
        node = module
    modules = registry(env).modules
    info = modules.get(node.get_abspath())
    if info is None:
        folder = os.path.dirname(node.get_abspath())
        here = [os.path.basename(p)[: -len(".vmfb")] for p in modules if os.path.dirname(p) == folder]
        hint = did_you_mean(module, here) if isinstance(module, str) else ""
        raise IreeBuildError(
            f"module '{module}' is not declared here{hint}; declare it with "
            f"iree_module(name='{getattr(module, 'name', module)}', ...) before its runs and tests"
        )
    return node, info

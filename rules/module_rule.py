"""``iree_module``: compile an MLIR source into a ``.vmfb``.

The declaration is checked while the SConscript is read (backends registered,
CPU known, output not claimed twice); what the compile needs is passed to the
builder as override variables, so ``env.Clone()`` and per-call overrides work
the SCons way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import SCons.Builder
import SCons.Util

from iree_build.compile.compiler_info import compiler_info
from iree_build.compile.plan import declared_flags, plan_module
from iree_build.errors import IreeBuildError

from . import compile_action, export_rule, help_summary, options
from .arguments import checked, env_last
from .compile_action import COMPILE_ACTION
from .declared_modules import ModuleInfo, toolchain_dirs
from .mlir_scanner import MLIR_SCANNER
from .registry import registry
from .where import declared_at, fail, source_folder

builder = SCons.Builder.Builder(
    action=COMPILE_ACTION,
    suffix=".vmfb",
    src_suffix=".mlir",
    single_source=True,
    source_scanner=MLIR_SCANNER,
)


def _flag_path_resolver(env, where_files: list):
    """Map a path in a flag (relative to the SConscript) to the compiler's view; a file
    another rule builds is fine (and built first), a missing one a declaration error."""

    def resolve(path: str, origin: str) -> str:
        node = env.Entry(path)
        if not (node.has_builder() or node.is_derived()):
            node = node.srcnode()
            if not node.exists():
                raise IreeBuildError(
                    f"{origin} names '{path}', which does not exist ({node.get_internal_path()})"
                )
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


def _defaults(env) -> dict:
    """What a declaration that names no target gets: the command line, then the environment."""
    return dict(
        toolchain=options.option("iree-toolchain") or env.get("IREE_TOOLCHAIN") or None,
        target_backends=env.get("IREE_TARGET_BACKENDS", ["llvm-cpu"]),
        cpu=env.get("IREE_CPU"),
        cpu_features=env.get("IREE_CPU_FEATURES"),
        triple=env.get("IREE_TRIPLE"),
    )


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
            raise IreeBuildError(
                f"flags: {flag} duplicates {made[name]}, which {source} already "
                f"sets; drop it from flags (or set it through {source})"
            )


@checked("IreeModule")
def IreeModule(
    env,
    target,
    source,
    target_backends: Sequence[str] | None = None,
    cpu: str | None = None,
    cpu_features: str | None = None,
    triple: str | None = None,
    flags: Sequence[str] | None = None,
    toolchain: str | None = None,
    onnx_opset: int | None = None,
    externalize_params: bool = False,
    params_scope: str = "model",
    **kw,
):
    """Pseudo-builder: validate the declaration, then call the real builder.

    An ``.onnx`` source is imported first (``iree_import_onnx``), as its own step.
    """
    where = declared_at()
    params: tuple = ()
    model_flags: list[str] = []
    backend_flags = kw.pop("_IREE_BACKEND_FLAGS", None)  # a check suite's flags for one backend
    if str(env.Flatten([source])[0]).endswith(".onnx"):
        from .onnx_rule import declare_import

        stem = SCons.Util.splitext(str(env.Flatten([target])[0]))[0]
        imported, policy = declare_import(
            env,
            stem,
            source,
            onnx_opset,
            externalize_params,
            params_scope,
            output=f"{stem}.imported.mlir",
            allow_failure=bool(kw.get("_IREE_ALLOW_FAILURE")),
        )
        source, params = imported[0], tuple(imported[1:])
        model_flags = policy.compile_flags(_as_list(flags))  # f64 models
    flag_nodes: list = []
    outputs: list = []

    def output_for(suffix: str) -> str:
        outputs.extend(
            t if not isinstance(t, str) else env.File(SCons.Util.adjustixes(t, "", suffix))
            for t in env.Flatten([target])
        )
        if len(outputs) != 1:
            raise IreeBuildError("a module has exactly one output; declare one module per call")
        return outputs[0].get_internal_path()

    defaults = _defaults(env)
    try:
        plan = plan_module(
            output_for,
            resolve=_flag_path_resolver(env, flag_nodes),
            registered=compiler_info().targets,
            toolchain=toolchain,
            target_backends=target_backends,
            cpu=cpu,
            cpu_features=cpu_features,
            triple=triple,
            defaults=defaults,
            toolchain_dirs=toolchain_dirs(env) if toolchain or defaults["toolchain"] else (),
            env_flags=env.Flatten([env.get("IREE_COMPILEFLAGS", [])]),
            model_flags=model_flags,
            flags=_as_list(flags),
            backend_flags=backend_flags,
        )
        refuse_duplicate_flags(
            declared_flags(model_flags, flags, backend_flags, plan.backends), plan.target_flags, toolchain
        )
        out = outputs[0]
        side = [env.File("#" + p) for p in plan.side_outputs]
        sources = [_source_node(n) for n in env.arg2nodes(source, env.File)]
        missing = [n for n in sources if not (n.has_builder() or n.is_derived() or n.exists())]
        if missing:
            raise IreeBuildError(f"source {missing[0].get_internal_path()} not found")
    except IreeBuildError as e:
        fail(str(e) if e.where else e.message, where)
    reg = registry(env)
    previous = reg.modules.get(out.get_abspath())
    if previous and previous.where != where:
        fail(
            f"{out} is already declared at {previous.where} [{previous.summary}]; "
            "give this module another name",
            where,
        )
    preset = plan.toolchain
    reg.modules[out.get_abspath()] = ModuleInfo(
        list(plan.backends),
        list(plan.devices),
        plan.cpu_arch,
        params,
        params_scope,
        where,
        plan.summary,
        plan.output,
        source_folder(env),
        preset,
        plan.emulator,
    )
    if preset:
        reg.presets.add(preset)
    help_summary.note_module(env)
    nodes = builder(env, [out, *side], sources, _IREE_PLAN=plan, _IREE_TARGET_SUMMARY=plan.summary, **kw)
    env.Clean(nodes, env.File(f"{out}.failed"))  # a failed compile's note (expected_failure)
    dir_files = [f for d in plan.dirs for f in env.Glob(f"#{d}/*")]
    if flag_nodes or dir_files:
        env.Depends(nodes, flag_nodes + dir_files)  # flag files, specs, substitutions, folders
        export_rule.read_first(env, [n for n in flag_nodes if n.has_builder()])
    if not os.path.exists(out.get_abspath()):  # this build compiles it: get workers going now
        compile_action.prestart(env, reg)
    return nodes


iree_module = env_last(
    IreeModule,
    "iree_module",
    """Declare ``name.vmfb`` (beside the calling SConscript, or in its variant dir).""",
    renamed={"target": "name", "source": "src"},
)

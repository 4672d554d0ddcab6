"""``iree_run``: call a module's function on a device and keep its outputs as ``.npy``.

The outputs are ordinary build targets: other rules (a test's expectations, a
later model stage) can use them, and they are rebuilt only when the module, an
input, the function or the device changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iree_build.errors import IreeBuildError
from iree_build.targets.backends import check_device
from iree_build.testing.emulation import lane_hardware, lane_label
from iree_build.testing.identity import runtime_version

from . import data_files
from .arguments import checked, env_last
from .declared_modules import find_module
from .emulators import emulator_for
from .explicit_action import ExplicitAction
from .registry import registry
from .run_flags import from_flagfile
from .where import declared_at, fail


@dataclass(frozen=True)
class DeclaredRun:
    device: str
    function: str
    where: str
    count: int
    inputs: tuple[str, ...]  # abspaths in the build tree
    parameters: tuple[str, ...]  # as the manifest names them: relative to the top folder
    parameter_scope: str
    data: str  # the literal inputs' hashes (data_files.signature)
    arch: str = ""  # CPU architecture the module's code needs on a local device ("" = any)
    emulator: tuple = ()  # how that code runs here when this machine is another architecture


def _key(env, target) -> DeclaredRun:
    return registry(env).runs[target[0].get_abspath()]


def _signature(target, source, env) -> str:
    run = _key(env, target)
    return (
        f"run: {run.function}\ndevice: {run.device}\noutputs: {run.count}\n"
        f"parameter scope: {run.parameter_scope}\nruntime: iree-base-runtime {runtime_version()}\n"
        f"hardware: {lane_hardware(run.device, run.arch, run.emulator)}\n{run.data}"
    )


def _run(target, source, env):
    from iree_build.testing.manifest import TestSpec
    from iree_build.testing.run_pool import default_run_pool

    run = _key(env, target)
    device, function, where, count = run.device, run.function, run.where, run.count
    module = source[0]
    top = env.Dir("#").get_abspath()
    data_files.ensure(env, (*run.inputs, *(os.path.join(top, p) for p in run.parameters)))
    spec = TestSpec(
        name=str(target[0]),
        base=str(target[0]),
        device=device,
        module=str(module),
        function=function,
        inputs=(),
        expected=(),
        rtol=0.0,
        atol=0.0,
        declared_at=where,
        result=str(target[0]),
        parameters=run.parameters,
        parameter_scope=run.parameter_scope,
        arch=run.arch,
        emulator=run.emulator,
    )
    # In a run worker: a crash in the call fails this target, not the build.
    reply = default_run_pool().invoke(
        spec,
        module.get_abspath(),
        list(run.inputs),
        [t.get_abspath() for t in target],
        env.Dir("#").get_abspath(),
    )
    if reply["ok"]:
        return 0
    if reply.get("message"):
        return reply["message"]
    n = reply["count"]
    return (
        f"{function} returned {n} output(s) but {count} were declared at {where}; "
        f"pass outputs={n} (or a list of {n} file names)"
    )


RUN_ACTION = ExplicitAction(_run, signature=_signature, cmdstr="$IREE_RUNCOMSTR")


@checked("iree_run")
def IreeRun(
    env,
    name: str,
    module,
    function: str | None = None,
    inputs: Sequence = (),
    device: str = "local-task",
    outputs: int | Sequence[str] = 1,
    parameters: Sequence = (),
    parameter_scope: str = "model",
    flagfile: Any = None,
) -> list:
    """Declare the outputs of one call; returns their nodes (``NAME.npy`` for one)."""
    where = declared_at()
    try:
        function, inputs, _, _, _ = from_flagfile(flagfile, function, inputs)
        module_node, info = find_module(env, module)
        check_device(device, info.backends, info.devices)
        if isinstance(outputs, int):  # a count >= 1 or .npy names: the schema's
            names = [f"{name}.npy"] if outputs == 1 else [f"{name}.output{i}.npy" for i in range(outputs)]
        else:
            names = [str(o) for o in outputs]
        input_nodes = [data_files.materialize(env, v, f"{name}.input{i}.npy") for i, v in enumerate(inputs)]
        param_nodes, parameter_scope = data_files.module_parameters(
            env, info, parameters, parameter_scope, name
        )
        arch = info.cpu_arch or "" if device in ("local-sync", "local-task") else ""
        emulator = emulator_for(env, arch, info.emulator)
    except IreeBuildError as e:
        fail(e.message, where)
    targets = [env.File(n) for n in names]
    registry(env).runs[targets[0].get_abspath()] = DeclaredRun(
        device,
        function or "",
        where,
        len(targets),
        tuple(n.get_abspath() for n in input_nodes),
        tuple(n.get_path() for n in param_nodes),
        parameter_scope,
        data_files.signature(env, [*input_nodes, *param_nodes]),
        arch,
        emulator,
    )
    sources = data_files.sources_for(env, targets, [module_node, *input_nodes, *param_nodes])
    return env.Command(
        targets,
        sources,
        RUN_ACTION,
        _IREE_RUN_WHAT=f"{function or 'its function'} on {lane_label(device, arch)}",
    )


iree_run = env_last(
    IreeRun,
    "iree_run",
    """Run ``module``'s ``function`` on ``device`` at build time; its outputs become files.""",
)

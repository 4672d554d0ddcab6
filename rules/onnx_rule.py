"""``iree_import_onnx``: an ONNX model as MLIR (and optionally a parameter archive).

The import is a build step of its own, cached like a compile: it reruns only
when the model, one of its external data files, the importer options or the
compiler change. ``iree_module(src="model.onnx")`` uses it implicitly.
"""

from __future__ import annotations

import atexit
from typing import Literal

import SCons.Scanner

from iree_build.compile.compiler_info import compiler_info
from iree_build.errors import IreeBuildError
from iree_build.onnx import policy as onnx_policy
from iree_build.onnx.importer import ImportRequest
from iree_build.onnx.policy import OnnxPolicy
from iree_build.onnx.policy_cache import PolicyCache, onnx_version
from iree_build.testing.manifest import FAILED_BUILD_SUFFIX

from .action_text import set_strfunction
from .arguments import checked, env_last
from .compile_action import run_step
from .explicit_action import ExplicitAction
from .registry import registry
from .where import declared_at, fail


def request_for(target, source, env) -> ImportRequest:
    params = str(target[1]) if env.get("_IREE_ONNX_EXTERNALIZE") else None
    return ImportRequest.with_policy(
        env["_IREE_ONNX_POLICY"],
        source=str(source[0].rfile()),
        output=str(target[0]),
        compiler=compiler_info().identity,
        params=params,
        params_scope=env.get("_IREE_ONNX_SCOPE", "model"),
        data_dir=source[0].rfile().dir.get_internal_path(),
        onnx_version=onnx_version(),
    )


def _policy_cache(env) -> PolicyCache:
    """Policies decided by earlier builds (``#.iree_onnx_policy.json``), saved when the build ends."""
    reg = registry(env)
    if reg.onnx_policies is None:
        reg.onnx_policies = PolicyCache(env.Dir("#").File(".iree_onnx_policy.json").get_abspath())
        atexit.register(reg.onnx_policies.save)
    return reg.onnx_policies


def _run(target, source, env):
    return run_step(request_for(target, source, env), target, env)


set_strfunction(_run, lambda target, source, env: request_for(target, source, env).command_line())

IMPORT_ACTION = ExplicitAction(
    _run,
    signature=lambda t, s, env: request_for(t, s, env).signature_text(),
    cmdstr="$IREE_IMPORTCOMSTR",
)


def external_data_files(path: str) -> list[str]:
    """Files an ONNX model keeps its large tensors in (``external_data`` locations)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    locations: list[str] = []

    def visit(graph) -> None:
        for tensor in graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                for entry in tensor.external_data:
                    if entry.key == "location" and entry.value not in locations:
                        locations.append(entry.value)
        for node in graph.node:
            for attr in node.attribute:
                if attr.g is not None and attr.HasField("g"):
                    visit(attr.g)

    visit(model.graph)
    return locations


def _scan_onnx(node, env, path):
    src = node.rfile()
    if not src.exists():
        return []
    try:
        names = external_data_files(src.get_abspath())
    except Exception:  # not readable as ONNX: the import step reports it properly
        return []
    return [src.dir.File(name) for name in names]


ONNX_SCANNER = SCons.Scanner.Scanner(function=_scan_onnx, name="IreeONNX", skeys=[".onnx"])


def declare_import(
    env,
    name: str,
    src,
    opset: int | Literal["own"] | None = None,
    externalize_params: bool = False,
    params_scope: str = "model",
    output: str | None = None,
    allow_failure: bool = False,
) -> tuple[list, OnnxPolicy]:
    """The import step and the opset policy chosen for the model (see ``onnx_policy``)."""
    where = declared_at()
    try:
        onnx_policy.require_onnx(f"importing {src}")
        source = env.File(src) if isinstance(src, str) else env.Flatten([src])[0]  # checked: the schema
        if source.has_builder() or source.is_derived():
            policy = onnx_policy.unknown(opset)
        else:
            source = source.srcnode()
            policy = _policy_cache(env).decide(source.get_abspath(), opset)
    except IreeBuildError as e:
        fail(e.message, where)
    targets = [env.File(output or f"{name}.mlir")]
    if externalize_params:
        targets.append(env.File(f"{name}.irpa"))
    nodes = env.Command(
        targets,
        source,
        IMPORT_ACTION,
        source_scanner=ONNX_SCANNER,
        _IREE_ONNX_POLICY=policy,
        _IREE_ONNX_SUMMARY=policy.summary(),
        _IREE_ONNX_EXTERNALIZE=bool(externalize_params),
        _IREE_ONNX_SCOPE=params_scope,
        _IREE_ALLOW_FAILURE=allow_failure,
    )
    env.Clean(nodes, [env.File(f"{targets[0]}{FAILED_BUILD_SUFFIX}")])
    return nodes, policy


@checked("iree_import_onnx")
def IreeImportOnnx(
    env,
    name: str,
    src,
    opset: int | Literal["own"] | None = None,
    externalize_params: bool = False,
    params_scope: str = "model",
) -> list:
    """Declare ``name.mlir`` (and ``name.irpa`` with externalized weights).

    ``opset``: None picks one from the model (``iree_build.onnx.policy``), a
    number upgrades to it, ``"own"`` keeps the model's.
    """
    return declare_import(env, name, src, opset, externalize_params, params_scope)[0]


iree_import_onnx = env_last(
    IreeImportOnnx,
    "iree_import_onnx",
    """Import an ONNX model into ``name.mlir`` with the compiler package's importer.""",
)

"""``--iree-export=cmake:DIR`` / ``bazel:DIR`` and ``--iree-commands``: the build, written out.

Both are build actions added to ``BUILD_TARGETS``: SCons reads every SConscript
before it builds, so when they run every module and test is declared. The
export's target scanner names the files SCons must make first (test data the
SConscripts computed, objects built by SCons): they are carried into the
export as data, never dropped. Commands come from the compile action's own
request (``compile_action.request_for``), so what is exported is exactly what
SCons runs.
"""

from __future__ import annotations

import os
import sys

import SCons.Builder
import SCons.Scanner
import SCons.Script

from iree_build.export import bazel, cmake
from iree_build.export.commands import COMMANDS_NAME, commands_json
from iree_build.export.model import Declarations, Step, Test
from iree_build.export.tree import INDEX_NAME, write_tree

from . import build_lock, compile_action, data_files, declarations, onnx_rule, options
from .action_text import set_strfunction
from .explicit_action import ExplicitAction
from .mlir_scanner import MLIR_SCANNER
from .registry import registry
from .where import fail

KINDS = ("cmake", "bazel")


def _path(node) -> str:
    """The path the build gives tools (relative to the top folder, else absolute)."""
    text = str(node).replace(os.sep, "/")
    return "" if text == "." else text


def _is_import(node) -> bool:
    return node.has_builder() and onnx_rule.IMPORT_ACTION in node.get_executor().get_action_list()


def _step_of(node, where: str) -> tuple[Step, list]:
    """A module's or an import's command, and the nodes it reads."""
    ex = node.get_executor()
    targets, sources, env = ex.get_all_targets(), ex.get_all_sources(), ex.get_build_env()
    src = sources[0]
    if _is_import(node):
        imp = onnx_rule.request_for(targets, sources, env)
        deps = onnx_rule.ONNX_SCANNER(src, env, ()) if src.rexists() else []
        args = imp.argv(imp.output, imp.params)
        source = imp.source
        tool = "iree-import-onnx"
    else:
        req = compile_action.request_for(targets, sources, env)
        deps = MLIR_SCANNER(src, env, ()) if src.rexists() else []
        args = [*req.flags, req.source, "-o", req.output]
        source = req.source
        tool = "iree-compile"
    read = [src, *dict.fromkeys([*deps, *node.depends])]
    step = Step(
        tool=tool,
        args=tuple(args),
        source=source,
        outputs=tuple(_path(t) for t in targets),
        inputs=tuple(_path(n) for n in read),
        declared_at=where,
    )
    return step, read


def _collect(env) -> tuple[Declarations, list]:
    """The declarations as plain data, and the nodes SCons must build for them."""
    from iree_build.compile.compiler_info import compiler_info

    decl = Declarations(
        top=env.Dir("#").get_abspath(), python=sys.executable, compiler_identity=compiler_info().identity
    )
    generated: set[str] = set()
    read: list = []
    for module in declarations.module_nodes(env):
        where = declarations.module_where(env, module)
        src = module.get_executor().get_all_sources()[0]
        if _is_import(src) and src.get_abspath() not in generated:
            step, nodes = _step_of(src, where)
            decl.steps.append(step)
            decl.copied_sources.update(step.inputs[1:])  # the onnx package refuses linked data files
            read += nodes
            generated.update(t.get_abspath() for t in src.get_executor().get_all_targets())
        step, nodes = _step_of(module, where)
        decl.flag_files |= bool(compile_action.plan_of(module.get_executor().get_build_env()).flag_files)
        decl.steps.append(step)
        read += nodes
        generated.update(t.get_abspath() for t in module.get_executor().get_all_targets())

    def path(node) -> str:  # a staged file is not derived: its str() would be its source's path
        return node.get_path().replace(os.sep, "/") if data_files.is_staged(env, node) else _path(node)

    for t in declarations.tests(env):
        files = [t.module, *t.inputs, *t.expected, *t.parameters]
        read += files
        labels = tuple(dict.fromkeys([t.device, *declarations.test_tags(t)]))
        decl.tests.append(
            Test(
                name=t.name,
                device=t.device,
                labels=labels,
                files=tuple(dict.fromkeys(path(n) for n in files)),
                declared_at=t.declared_at,
                folder=_path(t.result.dir),
                skip=t.skip,
            )
        )
    if decl.tests:
        decl.build_dir = _path(declarations.build_dir(env))
        decl.manifest_text = declarations.manifest_text(env)
    data = [
        n
        for n in dict.fromkeys(read)
        if (n.has_builder() or n.is_derived() or data_files.is_staged(env, n))
        and n.get_abspath() not in generated
    ]
    decl.data = {path(n): n.get_abspath() for n in data}
    # What SCons must make first: built files, and the stages that write the staged ones.
    first = [n for n in data if not data_files.is_staged(env, n)]
    first += list(
        {
            id(s): s for s in (data_files.stage_of(env, n) for n in data if data_files.is_staged(env, n))
        }.values()
    )
    return decl, first


def _data_scan(node, env, path) -> list:
    """The export's dependencies: files SCons makes that the export carries as data."""
    return _collect(env)[1]


def read_first(env, nodes) -> None:
    """Files other rules make that ``--iree-commands`` reads (flag files it expands): made
    before it runs (an alias cannot scan for them as the export's file does)."""
    if nodes and options.option("iree-commands"):
        env.Depends(env.Alias("iree-commands"), nodes)


def _notes(decl: Declarations, env) -> list[str]:
    """What does not carry over as it was declared, one line each."""
    notes = []
    if decl.data:
        names = sorted(decl.data)
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        notes.append(
            f"{len(names)} file(s) the SConscripts computed or SCons built are carried as data "
            f"(reference functions and literal values as the .npy they produced; export "
            f"again after changing them): {shown}"
        )
    if decl.flag_files:
        notes.append(
            "flag files (@FILE) are expanded into the exported commands: export again after editing one"
        )
    runs = declarations.run_count(env)
    if runs:
        notes.append(f"{runs} iree_run call(s) are not exported; outputs that tests read are carried as data")
    return notes


def _export(target, source, env):
    kind, folder = _parse(options.option("iree-export"))
    folder = os.path.join(env.Dir("#").get_abspath(), folder)
    decl, _ = _collect(env)
    decl.compiler = _compiler_path()
    notes = _notes(decl, env)
    if kind == "cmake":
        texts = cmake.cmake_files(decl, folder)
        copies = {f"{cmake.DATA_DIR}/{rel}": path for rel, path in decl.data.items()}
        if decl.tests:
            texts[f"{cmake.DATA_DIR}/{decl.manifest_path()}"] = decl.manifest_text
        links = {}
    else:
        texts = bazel.bazel_files(decl)
        copies = dict(decl.data)
        if decl.tests:
            texts[decl.manifest_path()] = decl.manifest_text
        links = {}
        for rel in decl.sources():
            (copies if rel in decl.copied_sources else links)[rel] = os.path.join(decl.top, rel)
    changed = write_tree(folder, kind, texts, copies, links, notes)
    print(
        f"IREE export {kind}: {len(decl.steps)} command(s), {len(decl.tests)} test(s) -> "
        f"{os.path.relpath(folder)} ({len(changed)} file(s) changed)"
    )
    for note in notes:
        print(f"IREE export note: {note}")
    sys.stdout.flush()
    return 0


def _compiler_path() -> str:
    """The native iree-compile of the compiler package the build uses."""
    from iree.compiler.tools.binaries import find_tool

    return os.path.realpath(find_tool("iree-compile"))


def _commands(target, source, env):
    decl, _ = _collect(env)
    path = os.path.join(declarations.build_dir(env).get_abspath(), COMMANDS_NAME)
    from iree_build.util.atomic import atomic_write_text

    atomic_write_text(path, commands_json(decl))
    print(
        f"IREE commands: {os.path.relpath(path)} ({len(decl.steps)} command(s); run each in "
        f"{os.path.relpath(decl.top)})"
    )
    sys.stdout.flush()
    return 0


set_strfunction(_export, None)
set_strfunction(_commands, None)
EXPORT_ACTION = ExplicitAction(_export, signature=lambda t, s, env: "iree export", cmdstr="")
COMMANDS_ACTION = ExplicitAction(_commands, signature=lambda t, s, env: "iree commands", cmdstr="")
_builder = SCons.Builder.Builder(
    action=EXPORT_ACTION, target_scanner=SCons.Scanner.Scanner(function=_data_scan, name="IreeExportData")
)


def _parse(value: str) -> tuple[str, str]:
    kind, folder = _split(value)
    if not kind:
        fail(_bad_export(value), "command line")
    return kind, folder


def _split(value: str) -> tuple[str, str]:
    """(kind, folder) of ``--iree-export=KIND:DIR``, ("", "") when it is not that."""
    kind, sep, folder = (value or "").partition(":")
    return (kind, folder) if sep and kind in KINDS and folder else ("", "")


def _bad_export(value: str) -> str:
    return f"--iree-export={value}: expected cmake:DIR or bazel:DIR"


def set_up(env) -> None:
    """Add the export and the command list to what this run builds, when asked (once a build)."""
    if not registry(env).once("export set-up"):
        return
    spec = options.option("iree-export")
    if spec:
        _, folder = _split(spec)
        if not folder:  # said at the first declaration: the tool's set-up never exits
            build_lock.defer(env, _bad_export(spec), "command line")
            return
        node = _builder(env, env.Dir("#").Dir(folder).File(INDEX_NAME), [])
        env.AlwaysBuild(node)
        SCons.Script.BUILD_TARGETS.append(node[0])
    if options.option("iree-commands"):
        node = env.Alias("iree-commands", [], COMMANDS_ACTION)
        env.AlwaysBuild(node)
        SCons.Script.BUILD_TARGETS.append(node[0])

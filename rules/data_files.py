"""Test data in the build tree: literals written as ``.npy``, source files copied.

Everything a test reads ends up beside its module in the build folder, so the
built tree plus its manifest is all another machine needs to run the tests.

The files are *staged*: one action per declaring folder (its ``.iree_data.json``
index) writes all of that folder's literals and copies, instead of one SCons
target per file. A project with 500 tests would otherwise carry 500 more targets
that every no-op build checks (measured: +30% on a no-op of plain SCons). What a
consumer's result depends on stays exact: a copied file's *source* is a source
of the test (SCons hashes it), a literal's content hash is in the consumer's
action signature, and the stage is an order-only prerequisite (``Requires``), so
adding a test elsewhere in the folder reruns nothing.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported when data is written, not for every build
    import numpy as np

import SCons.Util

from iree_build import validation
from iree_build.errors import IreeBuildError
from iree_build.onnx.tensor_proto import read_tensor_proto
from iree_build.util.atomic import atomic_write_bytes, atomic_write_text, remove_dead_temps, temp_path_for

from .action_text import set_strfunction
from .explicit_action import ExplicitAction
from .registry import registry

STAGE_NAME = ".iree_data.json"


@dataclass
class Staged:
    """One data file of the build tree and where its bytes come from."""

    source: str = ""  # a copy: the source file's abspath
    array: Any = None  # a literal: the array to write
    digest: str = ""  # a literal: dtype, shape and content hash (iree_build.values.arrays.describe)
    stage: Any = None  # the index node of the stage that writes it

    def what(self, top: str) -> str:
        return self.digest if self.source == "" else "copy of " + _below(self.source, top)

    def bring_up_to_date(self, path: str) -> None:
        """Write the file unless it already holds these bytes (a no-op when nothing changed)."""
        if self.source == "":
            from iree_build.values.arrays import npy_bytes

            data = npy_bytes(self.array)
            try:
                if Path(path).read_bytes() == data:
                    return
            except OSError:
                pass
            atomic_write_bytes(path, data)
            return
        if _same_bytes(self.source, path):
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
        try:  # hard-link when possible (parameter archives can be gigabytes), else copy
            os.link(self.source, tmp)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            atomic_write_bytes(path, Path(self.source).read_bytes())


def _same_bytes(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


@dataclass
class Stage:
    """The staged data files of one declaring folder, written by one action."""

    node: Any  # the folder's index file (``.iree_data.json``)
    files: dict[str, Staged]  # abspath -> what goes there
    always: bool = False  # a file is missing: run it this build (it rewrites only what differs)
    signature: str | None = None  # made once a build, when SCons first asks (all declared by then)


def _stage_of(env, target) -> Stage:
    return registry(env).stages[target[0].dir.get_abspath()]


def _stage_signature(target, source, env) -> str:
    """Every staged file and what it holds. SCons asks for it twice a build (the action's
    text and its signature) and thousands of files make it slow: it is made once, when the
    build first asks, which is after every SConscript was read."""
    stage = _stage_of(env, target)
    if stage.signature is None:
        top = env.Dir("#").get_abspath()
        stage.signature = "\n".join(
            f"{_below(p, top)} <- {e.what(top)}" for p, e in sorted(stage.files.items())
        )
    return stage.signature


def _below(path: str, top: str) -> str:
    """``path`` relative to ``top`` (``os.path.relpath``, without its cost for a path inside)."""
    return path[len(top) + 1 :] if path.startswith(top + os.sep) else os.path.relpath(path, top)


def _write_stage(target, source, env):
    remove_dead_temps(target[0].dir.get_abspath(), "")  # what a killed build left half-written
    stage = _stage_of(env, target)
    top = env.Dir("#").get_abspath()
    for path, entry in stage.files.items():
        entry.bring_up_to_date(path)
    index = {
        os.path.basename(p)
        if os.path.dirname(p) == target[0].dir.get_abspath()
        else os.path.relpath(p, target[0].dir.get_abspath()): e.what(top)
        for p, e in sorted(stage.files.items())
    }
    atomic_write_text(str(target[0]), json.dumps(index, indent=1) + "\n")
    return 0


set_strfunction(_write_stage, None)
STAGE_ACTION = ExplicitAction(_write_stage, signature=_stage_signature, cmdstr="")


def _stage(env, twin, entry: Staged):
    """Put ``twin`` in its declaring folder's stage; the same file named twice is one entry."""
    reg = registry(env)
    path = twin.get_abspath()
    known = reg.staged.get(path)
    if known is not None:
        if (known.source, known.digest) != (entry.source, entry.digest):
            raise IreeBuildError(f"{twin} is declared twice with different contents")
        return twin
    if twin.has_builder():
        raise IreeBuildError(f"{twin} is already built by another rule; give the data another name")
    folder = env.Dir(".")
    stage = reg.stages.get(folder.get_abspath())
    if stage is None:
        node = folder.File(STAGE_NAME)
        env.Command(node, [], STAGE_ACTION)
        env.NoCache(node)
        stage = reg.stages[folder.get_abspath()] = Stage(node, {})
    if not stage.always and not os.path.exists(path):  # new, or deleted since: restage all
        stage.always = True
        env.AlwaysBuild(stage.node)
    entry.stage = stage.node
    stage.files[path] = entry
    reg.staged[path] = entry
    if entry.source:
        stage.node.add_dependency([env.fs.File(entry.source)])
    env.Clean(stage.node, twin)
    # The twin is written by the stage, unknown to SCons as a target: a folder built as a
    # target must not visit it (one node less per file on every no-op), and SCons'
    # variant-dir duplication must not take it for a stale copy of a missing source
    # (it would delete it).
    twin.duplicate = 0
    top = env.fs.Top
    d = twin.dir
    while d is not None:
        d.add_ignore([twin])
        d = None if d is top else d.up()
    return twin


def _from_tensor_proto(target, source, env):
    from iree_build.values.arrays import npy_bytes

    try:
        array = read_tensor_proto(str(source[0]))
    except IreeBuildError as e:
        return e.message
    atomic_write_bytes(str(target[0]), npy_bytes(array))
    return 0


set_strfunction(_from_tensor_proto, None)
TENSOR_PROTO_ACTION = ExplicitAction(
    _from_tensor_proto, signature=lambda t, s, env: "TensorProto to npy", cmdstr=""
)


def _from_iree_value(target, source, env):
    from iree_build.values.arrays import npy_bytes

    value = registry(env).converted[target[0].get_abspath()]
    try:
        array = read_iree_value(value, source[0])
    except IreeBuildError as e:
        return e.message
    atomic_write_bytes(str(target[0]), npy_bytes(array))
    return 0


def read_iree_value(value: Any, node) -> np.ndarray:
    """The array an IREE file value (``4xi8=@x.bin``, a second ``@x.npy``) names, or one line."""
    from iree_build.values.iree_syntax import read_file_value

    try:
        return read_file_value(value, node.get_abspath())
    except (OSError, ValueError) as e:
        raise IreeBuildError(f"{value.text}: {node.get_internal_path()} {e}") from None


set_strfunction(_from_iree_value, None)
IREE_VALUE_ACTION = ExplicitAction(
    _from_iree_value,
    cmdstr="",
    signature=lambda t, s, env: "IREE value " + registry(env).converted[t[0].get_abspath()].describe(),
)


def _local(env, path: str) -> str:
    """A flag file's absolute path as the SConscript would write it (so that a variant
    dir maps it into the build tree), when it lies under the SConscript's folder."""
    if not os.path.isabs(path):
        return path
    here = env.Dir(".").srcnode().get_abspath()
    rel = os.path.relpath(path, here)
    return path if rel.startswith("..") else rel


def _iree_value(env, value: Any, target_name: str):
    """The build-tree node of a value in IREE's syntax: a literal is staged, a file converted."""
    if value.is_literal:
        from iree_build.values.arrays import describe, to_array

        array = to_array(value.array)
        return _stage(env, env.File(target_name), Staged(array=array, digest=describe(array)))
    path = _local(env, value.file)
    if value.element is None and value.npy_index == 0:
        return materialize(env, path, target_name, (".npy",))
    src = env.File(path)
    if not (src.has_builder() or src.is_derived()):
        src = src.srcnode()
        if not src.exists():
            raise IreeBuildError(f"{value.text}: data file {src.get_internal_path()} not found")
        read_iree_value(value, src)  # a wrong size is a declaration error
    target = env.File(target_name)
    registry(env).converted[target.get_abspath()] = value
    env.Command(target, src, IREE_VALUE_ACTION)
    return target


def _single_node(value: Any):
    """The node in what a builder returned (a one-element NodeList), else None."""
    if hasattr(value, "get_abspath"):
        return value
    if SCons.Util.is_List(value) and len(value) == 1 and hasattr(value[0], "get_abspath"):
        return value[0]
    return None


def may_be_iree_value(value: Any) -> bool:
    """Could be a value in IREE's syntax (``TYPE=...``, ``@file`` or ``4xf32``): only then is
    its parser (and numpy with it) imported; a plain path never is one, unless it starts
    with a digit and holds an ``x`` (the parser then says it is none)."""
    return isinstance(value, str) and (
        value.startswith("@") or "=" in value or (value[:1].isdigit() and "x" in value)
    )


def meant_as_iree_value(value: Any) -> bool:
    """Not a data file's name but IREE's syntax, maybe written wrong (``'?xf32=1'``,
    ``'-1xf32'``): its parser is then the one to say what is wrong with it."""
    return (
        isinstance(value, str)
        and not value.endswith((".npy", ".pb"))
        and ("=" in value or _DIMS_FIRST.match(value) is not None)
    )


_DIMS_FIRST = re.compile(r"[-?\d]+x")  # what starts as a shape does ('-1x', '?x', '4x ')


def is_file_reference(value: Any) -> bool:
    return isinstance(value, (str, Path)) or _single_node(value) is not None


def materialize(env, value: Any, target_name: str, suffixes: tuple[str, ...] = (".npy", ".pb")):
    """The node of ``value``'s file inside the build tree, named ``target_name`` if written.

    ``value`` is a path to a ``.npy`` file (or a node another rule builds), or a
    literal (number, nested list, numpy array), or a value in IREE's syntax
    (:class:`iree_build.values.iree_syntax.IreeValue`). A source file under a variant dir is
    staged to its twin there, once, whichever tests read it. Consumers declare their
    targets with :func:`sources_for`, which maps staged files to what they come from.
    """
    if not is_file_reference(value) or may_be_iree_value(value):
        from iree_build.values.iree_syntax import IreeValue, is_iree_value, parse  # imports numpy

        if is_iree_value(value):
            value = parse(value)
        if isinstance(value, IreeValue):
            return _iree_value(env, value, target_name)
    if is_file_reference(value):
        node = _single_node(value) or value
        if isinstance(node, (str, Path)):
            text = str(node)
            validation.suffix(text, suffixes, "data file")
            node = env.File(text)
        built = node.has_builder() or node.is_derived()
        if built:
            return node
        if node.get_abspath() in registry(env).staged:
            return node  # staged by an earlier declaration
        src = node.srcnode()
        if not src.exists():
            raise IreeBuildError(f"data file {src.get_internal_path()} not found")
        if str(node).endswith(".pb"):  # converted once, at build time, into the build tree
            target = env.File(target_name)
            env.Command(target, src, TENSOR_PROTO_ACTION)
            return target
        if src is node:
            return node  # no variant dir: the file already lies in the build tree
        return _stage(env, node, Staged(source=src.get_abspath()))
    from iree_build.values.arrays import describe, to_array

    array = to_array(value)
    return _stage(env, env.File(target_name), Staged(array=array, digest=describe(array)))


def sources_for(env, targets: list, nodes: list) -> list:
    """The SCons sources of ``targets``, which read the data files ``nodes``.

    A staged copy contributes its source file, a staged literal nothing (its hash is
    in :func:`signature`); every stage involved must have run first (order-only).
    """
    staged = registry(env).staged
    sources, before = [], {}
    for node in nodes:
        entry = staged.get(node.get_abspath())
        if entry is None:
            sources.append(node)
            continue
        if entry.source:
            sources.append(env.fs.File(entry.source))
        before[id(entry.stage)] = entry.stage
    if before:
        for target in targets:
            target.add_prerequisite(list(before.values()))
    return sources


def signature(env, nodes: list) -> str:
    """The literal data among ``nodes``, for a consumer's action signature."""
    staged = registry(env).staged
    lines = [
        f"data {n.name}: {staged[p].digest}"
        for n in nodes
        if (p := n.get_abspath()) in staged and not staged[p].source
    ]
    return "\n".join(lines)


def ensure(env, paths) -> None:
    """Rewrite staged files that went missing since their stage ran (deleted by hand)."""
    staged = registry(env).staged
    for path in paths:
        entry = staged.get(path)
        if entry is not None and not os.path.exists(path):
            entry.bring_up_to_date(path)


def is_staged(env, node) -> bool:
    return node.get_abspath() in registry(env).staged


def stage_of(env, node):
    """The index node of the stage that writes the staged file ``node``."""
    return registry(env).staged[node.get_abspath()].stage


def load_now(env, node) -> np.ndarray:
    """Read an existing source ``.npy`` while the SConscript is read (reference functions)."""
    path = node.get_abspath()
    entry = registry(env).staged.get(path)
    if entry is not None and not entry.source:
        return entry.array
    converted = registry(env).converted.get(path)
    if converted is not None and node.sources and node.sources[0].srcnode().exists():
        return read_iree_value(converted, node.sources[0].srcnode())
    if entry is None and node.has_builder():
        if node.get_executor().get_action_list()[0] is TENSOR_PROTO_ACTION:
            return read_tensor_proto(node.sources[0].get_abspath())
        raise IreeBuildError(
            f"{node} is built by another rule; a reference function needs inputs that "
            "exist when the SConscript is read (give expected outputs as files instead)"
        )
    source = env.fs.File(entry.source) if entry is not None else node.srcnode()
    from iree_build.values.arrays import load_npy

    try:
        return load_npy(source.get_abspath())
    except (OSError, ValueError) as e:  # a pickled object array, a truncated file ...
        raise IreeBuildError(f"cannot read {source.get_internal_path()} as a .npy array: {e}") from None
    except MemoryError:
        raise IreeBuildError(
            f"cannot read {source.get_internal_path()}: the array it holds does not fit in memory"
        ) from None


PARAMETER_SUFFIXES = (".irpa", ".safetensors", ".gguf")


def parameter_nodes(env, files, prefix: str) -> list:
    """Parameter archives a run or test loads, placed in the build tree (checked: the schema)."""
    files = [files] if isinstance(files, (str, Path)) else list(files or [])
    nodes = []
    for i, f in enumerate(files):
        name = Path(str(f)).name if isinstance(f, (str, Path)) else f"params{i}"
        nodes.append(materialize(env, f, f"{prefix}.{name}", PARAMETER_SUFFIXES))
    return nodes


def module_parameters(env, info, files, scope: str, prefix: str) -> tuple[list, str]:
    """What a run, test or benchmark loads: the module's own archives (an ONNX model's
    externalized weights) and those given, and their scope (the module's unless one is given)."""
    nodes = list(info.parameters) + parameter_nodes(env, files, prefix)
    return nodes, info.parameter_scope if info.parameters and scope == "model" else scope

"""Test data in the build tree: literals written as ``.npy``, source files copied.

Everything a test reads ends up beside its module in the build folder, so the
built tree plus its manifest is all another machine needs to run the tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported when data is written, not for every build
    import numpy as np

import SCons.Util

from iree_build import validation
from iree_build.atomic import atomic_write_bytes, temp_path_for
from iree_build.errors import IreeBuildError

from .explicit_action import ExplicitAction

# target path -> the array to write there; filled while SConscripts are read.
_literals: dict[str, np.ndarray] = {}
# build-tree data path -> the source file it is copied or converted from.
_copies: dict[str, str] = {}


def _write_literal(target, source, env):
    from iree_build.test_values import npy_bytes

    atomic_write_bytes(str(target[0]), npy_bytes(_literals[target[0].get_abspath()]))
    return 0


def _copy(target, source, env):
    """Hard-link when possible (parameter archives can be gigabytes), else copy."""
    dest, src = Path(str(target[0])), Path(str(source[0]))
    tmp = temp_path_for(dest)
    try:
        os.link(src, tmp)
        os.replace(tmp, dest)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write_bytes(dest, src.read_bytes())
    return 0


def tensor_proto_array(path: str) -> np.ndarray:
    """An ONNX ``TensorProto`` file (``input_0.pb``, as shipped beside ONNX models)."""
    import numpy as np

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise IreeBuildError(f"reading {path} needs the onnx package: pip install onnx") from None
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return np.ascontiguousarray(numpy_helper.to_array(tensor))


def _from_tensor_proto(target, source, env):
    from iree_build.test_values import npy_bytes

    atomic_write_bytes(str(target[0]), npy_bytes(tensor_proto_array(str(source[0]))))
    return 0


_write_literal.strfunction = None
_copy.strfunction = None
_from_tensor_proto.strfunction = None
TENSOR_PROTO_ACTION = ExplicitAction(_from_tensor_proto, signature=lambda t, s, env: "TensorProto to npy",
                                     cmdstr="")

def _describe(array) -> str:
    from iree_build.test_values import describe

    return describe(array)


LITERAL_ACTION = ExplicitAction(
    _write_literal,
    signature=lambda t, s, env: "literal " + _describe(_literals[t[0].get_abspath()]),
    cmdstr="",
)
COPY_ACTION = ExplicitAction(_copy, signature=lambda t, s, env: "copy", cmdstr="")


def _single_node(value: Any):
    """The node in what a builder returned (a one-element NodeList), else None."""
    if hasattr(value, "get_abspath"):
        return value
    if SCons.Util.is_List(value) and len(value) == 1 and hasattr(value[0], "get_abspath"):
        return value[0]
    return None


def is_file_reference(value: Any) -> bool:
    return isinstance(value, (str, Path)) or _single_node(value) is not None


def materialize(env, value: Any, target_name: str, suffixes: tuple[str, ...] = (".npy", ".pb")):
    """A node for ``value`` inside the build tree, named ``target_name`` if written.

    A source file under a variant dir is copied once to its twin there and shared
    by every test that reads it (one build target, not one per test).

    ``value`` is a path to a ``.npy`` file (or a node another rule builds), or a
    literal (number, nested list, numpy array).
    """
    if is_file_reference(value):
        node = _single_node(value) or value
        if isinstance(node, (str, Path)):
            text = str(node)
            validation.suffix(text, suffixes, "data file")
            node = env.File(text)
        built = node.has_builder() or node.is_derived()
        src = node if built else node.srcnode()
        if not built and not src.exists():
            raise IreeBuildError(f"data file {src.get_internal_path()} not found")
        if str(node).endswith(".pb"):  # converted once, at build time, into the build tree
            target = env.File(target_name)
            _copies[target.get_abspath()] = src.get_abspath()  # read from there, if needed now
            env.Command(target, src, TENSOR_PROTO_ACTION)
            return target
        if built:
            return node
        if src is node:
            return node  # no variant dir: the file already lies in the build tree
        # Its twin in the build tree, copied once, whichever tests read it.
        _copies[node.get_abspath()] = src.get_abspath()
        env.Command(node, src, COPY_ACTION)
        return node
    from iree_build.test_values import to_array

    array = to_array(value)
    target = env.File(target_name)
    _literals[target.get_abspath()] = array
    env.Command(target, [], LITERAL_ACTION)
    return target


def load_now(node) -> np.ndarray:
    """Read an existing source ``.npy`` while the SConscript is read (reference functions)."""
    path = node.get_abspath()
    if path in _literals:
        return _literals[path]
    if node.has_builder() and path not in _copies:
        raise IreeBuildError(
            f"{node} is built by another rule; a reference function needs inputs that "
            "exist when the SConscript is read (give expected outputs as files instead)"
        )
    source = node.File(_copies[path]) if path in _copies else node.srcnode()
    if str(source).endswith(".pb"):
        return tensor_proto_array(source.get_abspath())
    import numpy as np

    try:
        return np.load(source.get_abspath(), allow_pickle=False)
    except (OSError, ValueError) as e:  # a pickled object array, a truncated file ...
        raise IreeBuildError(f"cannot read {source.get_internal_path()} as a .npy array: {e}") from None


PARAMETER_SUFFIXES = (".irpa", ".safetensors", ".gguf")


def parameter_nodes(env, files, prefix: str) -> list:
    """Parameter archives a run or test loads, placed in the build tree."""
    files = [files] if isinstance(files, (str, Path)) else list(files or [])
    nodes = []
    for i, f in enumerate(files):
        if not is_file_reference(f):
            raise IreeBuildError(f"parameters must be file paths, not {f!r:.60}")
        name = Path(str(f)).name if isinstance(f, (str, Path)) else f"params{i}"
        nodes.append(materialize(env, f, f"{prefix}.{name}", PARAMETER_SUFFIXES))
    return nodes

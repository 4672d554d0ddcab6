"""Implicit dependencies of MLIR sources: the executable objects they link in.

Like SWIG's scanner for ``%include``: read the source, name the files it refers
to, and let SCons track them (edit one, the module rebuilds; delete one, SCons
says which file is missing and which target needed it).
"""

from __future__ import annotations

import os

import SCons.Scanner

from iree_build.compile.scan import object_paths


def objects_in(node) -> list[str]:
    """Executable object paths named in an MLIR source (read once per build)."""
    memo = getattr(node.attributes, "iree_objects", None)
    if memo is None:
        if not node.rexists():  # a source still to be built (an ONNX import): scan it later
            return []
        data = node.rfile().get_contents()  # bytes: most sources name no object, decode only those that do
        memo = object_paths(data.decode("utf-8", "replace")) if b"#hal.executable.object" in data else []
        node.attributes.iree_objects = memo
    return memo


def _scan_mlir(node, env, path):
    """Implicit dependencies of an MLIR source: the executable objects it links."""
    paths = objects_in(node)
    if not paths:
        return []
    # The compiler runs in the top folder and resolves relative paths there; a file
    # another rule builds there is that node, before it exists. The source's own
    # folder is searched too, so a misplaced object is still tracked.
    top, here = env.Dir("#"), node.rfile().dir
    found = []
    for p in paths:
        candidates = [env.File(p)] if os.path.isabs(p) else [top.File(p), here.File(p)]
        # A missing object becomes a dependency SCons reports as "not found".
        found.append(
            next((c for c in candidates if c.has_builder() or c.is_derived() or c.rexists()), candidates[0])
        )
    return found


MLIR_SCANNER = SCons.Scanner.Scanner(function=_scan_mlir, name="IreeMLIR", skeys=[".mlir"])

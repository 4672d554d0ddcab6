"""The exact command line of every module, as a ``compile_commands.json``-like file.

``scons --iree-commands`` writes ``iree_compile_commands.json`` beside the test
manifest: one entry per compile (and per ONNX import) with the folder to run it
in and the arguments the build passes to the compiler, toolchain presets, host
CPU and flag files already expanded. Paste one, add
``--mlir-print-ir-after-all``, and the compile runs outside the build with the
same bytes (the build compiles through the library; the tool gives the same
module for the same flags and source path).
"""

from __future__ import annotations

import json
import shlex

from iree_build.export.model import Declarations, Step

COMMANDS_NAME = "iree_compile_commands.json"


def entry(step: Step, directory: str) -> dict:
    """One command: clang's compile_commands keys (directory, file, arguments, output), plus ours."""
    return {
        "directory": directory,
        "file": step.source,
        "output": step.output,
        "arguments": step.argv(),
        "command": shlex.join(step.argv()),
        "side_outputs": list(step.outputs[1:]),
        "depends": list(step.inputs[1:]),
        "declared_at": step.declared_at,
    }


def commands_json(decl: Declarations) -> str:
    """The file's text: a JSON list, imports before the compiles that read them."""
    return json.dumps([entry(s, decl.top) for s in decl.steps], indent=2) + "\n"

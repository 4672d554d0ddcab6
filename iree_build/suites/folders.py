"""Test folders as IREE's test-suite generators write them.

One folder per test, holding one ``.mlir`` (``model.mlir``) and a
``run_module_io_flags.txt`` naming the inputs and expected outputs (``.bin``
files beside it). A test's name is its folder's path under the suite's root
(``onnx/node/generated/test_abs``), which is how the configurations list them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from iree_build.errors import IreeBuildError

FLAGFILE = "run_module_io_flags.txt"


@dataclass(frozen=True)
class TestFolder:
    """One generated test: its name, its source and its flag file (absolute paths)."""

    __test__ = False  # not a pytest class

    name: str
    source: str
    flagfile: str


def find_tests(root: str) -> list[TestFolder]:
    """Every test folder under ``root``, in name order; a folder with a flag file but not
    exactly one ``.mlir`` is an error naming it."""
    tests = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if FLAGFILE not in files:
            continue
        sources = sorted(f for f in files if f.endswith(".mlir"))
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        if len(sources) != 1:
            preferred = [f for f in sources if f == "model.mlir"]
            if len(preferred) != 1:
                raise IreeBuildError(
                    f"test folder {rel} holds {len(sources)} .mlir files "
                    f"({', '.join(sources) or 'none'}); a test folder holds one"
                )
            sources = preferred
        tests.append(TestFolder(rel, os.path.join(folder, sources[0]), os.path.join(folder, FLAGFILE)))
    return tests

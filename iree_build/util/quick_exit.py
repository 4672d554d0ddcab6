"""A command's exit without the interpreter's last garbage collection.

At exit CPython collects every cycle it still tracks (SCons' node graph, the module
state of big libraries): time spent only to hand memory back that the system takes
back anyway. Every file is closed and every other exit hook has run by then.
"""

from __future__ import annotations

import gc
import sys


def skip_final_collection() -> None:
    """No cyclic collection from now on, the last one at exit included; not where
    ``iree.runtime`` is loaded, whose bindings report the objects left alive as leaks."""
    if any(m.startswith("iree._runtime") for m in sys.modules):
        return
    gc.disable()
    gc.freeze()

"""IREE rules for SCons.

One line in an SConstruct loads them::

    from iree_rules import *

after which ``iree_module`` (and ``env.IreeModule`` on any environment that has
the ``iree`` tool) are at hand in the SConstruct and in every SConscript it
reads, also under ``VariantDir``/``variant_dir``.
"""

from __future__ import annotations

import atexit
import os
import threading

from .iree import exists, generate
from .check_rule import iree_check_test_suite
from .module_rule import iree_module
from .onnx_rule import iree_import_onnx
from .onnx_suite_rule import iree_onnx_test_suite
from .run_rule import iree_run
from .test_rule import iree_test
from .test_suite_rule import iree_test_suite
from .bench_rule import iree_benchmark

TOOLPATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site_tools")  # holds iree_tool.py

__all__ = ["iree_module", "iree_import_onnx", "iree_run", "iree_test", "iree_check_test_suite",
           "iree_benchmark", "iree_onnx_test_suite", "iree_test_suite", "IreeEnvironment"]

_default_env = None
_lock = threading.Lock()


def default_environment():
    """The environment the free functions use: SCons' default one with the tool loaded."""
    global _default_env
    with _lock:
        if _default_env is None:
            from SCons.Script import DefaultEnvironment

            _default_env = DefaultEnvironment()
            generate(_default_env)
            from . import build_lock

            build_lock.before_declaration()  # made for a declaration: the tool's problems, the lock
        return _default_env


def IreeEnvironment(**kw):
    """An ``Environment`` with SCons' default tools and the ``iree`` tool."""
    from SCons.Script import Environment

    tools = kw.pop("tools", ["default"])
    return Environment(tools=[*tools, generate], **kw)


def _publish_to_sconscripts() -> None:
    """Make the rule functions globals of every SConscript read from now on.

    SCons seeds each SConscript's globals from one dict (built from
    ``SCons.Script``); adding our names there is what makes them "at hand".
    """
    import sys

    import SCons.Script

    sconscript = sys.modules["SCons.Script.SConscript"]  # the module, not the function
    names = {name: globals()[name] for name in __all__}
    for name, value in names.items():
        setattr(SCons.Script, name, value)
    if sconscript.GlobalDict is not None:
        sconscript.GlobalDict.update(names)


_publish_to_sconscripts()


def _declare_test_target() -> None:
    """``scons test`` in a project that declares nothing yet still gets its one line."""
    import SCons.Script

    if "test" in SCons.Script.COMMAND_LINE_TARGETS:
        default_environment()


_declare_test_target()


def _no_final_collection() -> None:
    """The last exit hook: skip the interpreter's cyclic garbage collection of everything.

    At exit CPython collects every cycle it still tracks: SCons' node graph, and the
    module state of ``distributed`` when a cluster was used (measured: 0.24 s of a
    process' exit just for having imported it). Every file is closed and every other
    exit hook has run by then; the operating system takes back the memory.
    """
    import gc
    import sys

    if any(m.startswith("iree._runtime") for m in sys.modules):
        return  # its bindings report objects still alive at exit as leaks: collect as usual
    gc.disable()
    gc.freeze()


atexit.register(_no_final_collection)  # registered first among ours, so it runs last

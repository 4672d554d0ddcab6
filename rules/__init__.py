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

from iree_build.util.quick_exit import skip_final_collection

from .default_env import default_environment as default_environment
from .free_functions import (
    iree_benchmark,
    iree_check_test_suite,
    iree_import_onnx,
    iree_module,
    iree_onnx_test_suite,
    iree_run,
    iree_test,
    iree_test_suite,
)
from .iree import exists as exists
from .iree import generate

TOOLPATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site_tools")  # holds iree_tool.py

__all__ = [
    "iree_module",
    "iree_import_onnx",
    "iree_run",
    "iree_test",
    "iree_check_test_suite",
    "iree_benchmark",
    "iree_onnx_test_suite",
    "iree_test_suite",
    "IreeEnvironment",
]


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


atexit.register(
    skip_final_collection
)  # registered first among ours, so it runs last: SCons' node graph is not collected

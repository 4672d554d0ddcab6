"""The environment the free functions (``iree_module(...)`` in an SConscript) use.

SCons' default environment with the tool loaded, made at the first declaration
(which also takes the tree's lock and says the tool's deferred problems).
"""

from __future__ import annotations

from .iree import generate
from .registry import registry


def default_environment():
    """SCons' default environment with the ``iree`` tool (loaded once a build)."""
    from SCons.Script import DefaultEnvironment

    env = DefaultEnvironment()
    if registry(env).once("default environment"):
        generate(env)
        from . import build_lock

        build_lock.before_declaration()  # made for a declaration: the tool's problems, the lock
    return env

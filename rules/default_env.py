"""The environment the free functions (``iree_module(...)`` in an SConscript) use.

SCons' default environment with the tool loaded, made at the first declaration
(which also takes the tree's lock and says the tool's deferred problems).
"""

from __future__ import annotations

import threading

from .iree import generate

_lock = threading.Lock()
_made: list = []  # the one default environment of this process, once made


def default_environment():
    """SCons' default environment with the ``iree`` tool."""
    with _lock:
        if not _made:
            from SCons.Script import DefaultEnvironment

            env = DefaultEnvironment()
            generate(env)
            _made.append(env)
            from . import build_lock

            build_lock.before_declaration()  # made for a declaration: the tool's problems, the lock
        return _made[0]

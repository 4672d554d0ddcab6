"""Read access to what the rules declared, for exports and ``--iree-commands``.

Everything comes from the build's registry (:mod:`rules.registry`); this file is
the exports' one view of it.
"""

from __future__ import annotations

from typing import Any

from . import test_rule
from .registry import registry


def module_nodes(env) -> list:
    """The ``.vmfb`` (or ``.h``) node of every declared module, in declaration order."""
    return [env.fs.File(path) for path in registry(env).modules]


def module_where(env, node) -> str:
    """``SConscript:line`` that declared the module."""
    info = registry(env).modules.get(node.get_abspath())
    return info.where if info else ""


def tests(env) -> list[test_rule.DeclaredTest]:
    """Every declared test (one per device), in declaration order."""
    return list(registry(env).tests)


def test_tags(test: test_rule.DeclaredTest) -> tuple[str, ...]:
    """The test's declared tags."""
    return tuple(test.tags)


def run_count(env) -> int:
    """How many ``iree_run`` calls were declared (they are not exported)."""
    return len(registry(env).runs)


def build_dir(env) -> Any:
    """The folder of the test manifest (a Dir node); without tests, the first
    module's build folder, as the manifest would be placed."""
    reg = registry(env)
    if reg.build_dir is not None:
        return reg.build_dir
    modules = module_nodes(env)
    if not modules:
        return env.Dir("#")
    return test_rule.build_dir(env, modules[0])


def manifest_text(env) -> str:
    """The test manifest, as the SCons build writes it."""
    return test_rule._manifest_text(None, None, env)

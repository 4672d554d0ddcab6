"""Read access to what the rules declared: the one place that knows where it is kept.

Exports and ``--iree-commands`` read modules, tests and the build folder
through these functions only; when the registries move (one registry object per
build instead of module globals), only this file changes.
"""

from __future__ import annotations

from typing import Any

import SCons.Node.FS

from . import module_rule, run_rule, test_rule


def module_nodes() -> list:
    """The ``.vmfb`` (or ``.h``) node of every declared module, in declaration order."""
    fs = SCons.Node.FS.get_default_fs()
    return [fs.File(path) for path in module_rule.declared_modules]


def module_where(node) -> str:
    """``SConscript:line`` that declared the module."""
    info = module_rule.declared_modules.get(node.get_abspath())
    return info.where if info else ""


def tests() -> list[test_rule.DeclaredTest]:
    """Every declared test (one per device), in declaration order."""
    return list(test_rule._tests)


def test_tags(test: test_rule.DeclaredTest) -> tuple[str, ...]:
    """The test's declared tags (none until tests take ``tags=``)."""
    return tuple(getattr(test, "tags", ()) or ())


def run_count() -> int:
    """How many ``iree_run`` calls were declared (they are not exported)."""
    return len(run_rule._runs)


def build_dir(env) -> Any:
    """The folder of the test manifest (a Dir node); without tests, the first
    module's build folder, as the manifest would be placed."""
    if test_rule._build_dir is not None:
        return test_rule._build_dir
    modules = module_nodes()
    if not modules:
        return env.Dir("#")
    return test_rule.build_dir(env, modules[0])


def manifest_text() -> str:
    """The test manifest, as the SCons build writes it."""
    return test_rule._manifest_text(None, None, None)

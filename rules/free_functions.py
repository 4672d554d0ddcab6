"""The rules as free functions of every SConscript: each rule on the default environment.

``iree_test(name=..., ...)`` is ``test_rule.iree_test`` with ``env`` filled in (an
``env=`` given wins). Kept here, not in the rule modules, so that no rule module
imports the package that imports it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import (
    bench_rule,
    check_rule,
    module_rule,
    onnx_rule,
    onnx_suite_rule,
    run_rule,
    test_rule,
    test_suite_rule,
)
from .default_env import default_environment


def _on_default_environment(rule: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(rule)
    def free(*args: Any, env: Any = None, **kw: Any) -> Any:
        return rule(*args, env=default_environment() if env is None else env, **kw)

    return free


iree_module = _on_default_environment(module_rule.iree_module)
iree_import_onnx = _on_default_environment(onnx_rule.iree_import_onnx)
iree_run = _on_default_environment(run_rule.iree_run)
iree_test = _on_default_environment(test_rule.iree_test)
iree_check_test_suite = _on_default_environment(check_rule.iree_check_test_suite)
iree_benchmark = _on_default_environment(bench_rule.iree_benchmark)
iree_onnx_test_suite = _on_default_environment(onnx_suite_rule.iree_onnx_test_suite)
iree_test_suite = _on_default_environment(test_suite_rule.iree_test_suite)

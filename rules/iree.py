"""SCons tool ``iree``: builders and variables for IREE modules and tests.

Entry point: ``generate(env)``. Load it with ``from iree_rules import *`` (which
also makes ``iree_module`` & co. free functions in every SConscript), with
``Environment(tools=["default", iree_rules.generate])``, or with
``Environment(tools=["default", "iree_tool"], toolpath=[iree_rules.TOOLPATH])``.
User-set variables are never overwritten (``SetDefault``).
"""

from __future__ import annotations

from . import check_rule, cluster_backend, module_rule, onnx_rule, options, run_rule, test_rule


def generate(env) -> None:
    options.register()
    env.SetDefault(
        IREE_TARGET_BACKENDS=["llvm-cpu"],
        IREE_CPU="generic",
        IREE_CPU_FEATURES="",
        IREE_TRIPLE="",
        IREE_COMPILEFLAGS=[],
        IREE_COMPILECOMSTR="IREE compile ${SOURCE.srcpath} -> $TARGET [$_IREE_TARGET_SUMMARY]",
        IREE_TEST_DEVICES=["local-task"],
        IREE_TOOLCHAIN="",
        IREE_TOOLCHAIN_DIRS=["#toolchains"],
        IREE_TESTCOMSTR="",
        IREE_RUNCOMSTR="IREE run $_IREE_RUN_WHAT -> $TARGETS",
        IREE_IMPORTCOMSTR="IREE import ${SOURCE.srcpath} -> $TARGETS",
        **cluster_backend.defaults(),  # IREE_CLUSTER and its TLS files, from the environment
    )
    if options.option("iree-verbose"):
        env["IREE_COMPILECOMSTR"] = ""
        env["IREE_IMPORTCOMSTR"] = ""
    for name, method in _METHODS.items():
        env.AddMethod(method, name)
    cluster_backend.check(env)


def _iree_module(env, name, src, **kw):
    return module_rule.iree_module(name, src, env=env, **kw)


# Builder-style names and the rule names, as methods of an environment.
_METHODS = {
    "IreeModule": module_rule.IreeModule, "iree_module": _iree_module,
    "IreeImportOnnx": onnx_rule.IreeImportOnnx, "iree_import_onnx": onnx_rule.IreeImportOnnx,
    "IreeRun": run_rule.IreeRun, "iree_run": run_rule.IreeRun,
    "IreeTest": test_rule.IreeTest, "iree_test": test_rule.IreeTest,
    "IreeCheckTestSuite": check_rule.IreeCheckTestSuite,
    "iree_check_test_suite": check_rule.IreeCheckTestSuite,
}


def exists(env) -> bool:
    """The compiler package is installed (found, not loaded: the workers load it)."""
    import importlib.util

    return importlib.util.find_spec("iree.compiler") is not None

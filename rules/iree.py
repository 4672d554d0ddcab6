"""SCons tool ``iree``: builders and variables for IREE modules and tests.

Entry point: ``generate(env)``. Load it with ``from iree_rules import *`` (which
also makes ``iree_module`` & co. free functions in every SConscript) or with
``Environment(tools=["default", "iree"], toolpath=[iree_rules.TOOLPATH])``.
User-set variables are never overwritten (``SetDefault``).
"""

from __future__ import annotations

from . import check_rule, module_rule, onnx_rule, options, run_rule, test_rule


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
    )
    if options.option("iree-verbose"):
        env["IREE_COMPILECOMSTR"] = ""
        env["IREE_IMPORTCOMSTR"] = ""
    env.AddMethod(module_rule.IreeModule, "IreeModule")
    env.AddMethod(lambda e, name, src, **kw: module_rule.iree_module(name, src, env=e, **kw),
                  "iree_module")
    env.AddMethod(test_rule.IreeTest, "IreeTest")
    env.AddMethod(run_rule.IreeRun, "IreeRun")
    env.AddMethod(onnx_rule.IreeImportOnnx, "IreeImportOnnx")
    env.AddMethod(lambda e, name, *a, **kw: onnx_rule.IreeImportOnnx(e, name, *a, **kw),
                  "iree_import_onnx")
    env.AddMethod(check_rule.IreeCheckTestSuite, "IreeCheckTestSuite")
    env.AddMethod(lambda e, name, *a, **kw: check_rule.IreeCheckTestSuite(e, name, *a, **kw),
                  "iree_check_test_suite")
    env.AddMethod(lambda e, name, *a, **kw: run_rule.IreeRun(e, name, *a, **kw), "iree_run")
    env.AddMethod(lambda e, name, *a, **kw: test_rule.IreeTest(e, name, *a, **kw), "iree_test")


def exists(env) -> bool:
    try:
        import iree.compiler  # noqa: F401  (the worker needs it; loading is cheap to check)
    except ImportError:
        return False
    return True

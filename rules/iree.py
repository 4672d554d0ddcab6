"""SCons tool ``iree``: builders and variables for IREE modules and tests.

Entry point: ``generate(env)``. Load it with ``from iree_rules import *`` (which
also makes ``iree_module`` & co. free functions in every SConscript), with
``Environment(tools=["default", iree_rules.generate])``, or with
``Environment(tools=["default", "iree_tool"], toolpath=[iree_rules.TOOLPATH])``.
User-set variables are never overwritten (``SetDefault``).
"""

from __future__ import annotations

from . import (
    bench_rule,
    build_lock,
    check_rule,
    cleanup,
    cluster_backend,
    export_rule,
    module_rule,
    onnx_rule,
    onnx_suite_rule,
    options,
    run_rule,
    sconsign_db,
    test_rule,
    test_suite_rule,
)
from .cache_dir import VerifiedCacheDir


def generate(env) -> None:
    from iree_build.util.interrupt import watch

    options.register()
    watch()  # Ctrl-C/SIGTERM reach the actions that wait (compiles, tests, the cluster)
    sconsign_db.install()  # a full disk at its end is one line
    _lock_tree(env)
    test_rule.declare_test_alias(env)
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
        IREE_IMPORTCOMSTR="IREE import ${SOURCE.srcpath} -> $TARGETS [$_IREE_ONNX_SUMMARY]",
        CACHEDIR_CLASS=VerifiedCacheDir,  # a shared CacheDir's entries are checked before use
        **cluster_backend.defaults(),  # IREE_CLUSTER and its TLS files, from the environment
    )
    if options.option("iree-verbose"):
        env["IREE_COMPILECOMSTR"] = ""
        env["IREE_IMPORTCOMSTR"] = ""
    for name, method in _METHODS.items():
        env.AddMethod(method, name)
    export_rule.set_up(env)
    cleanup.set_up(env)  # scons -c: results, reports, plots, temporaries too


def _lock_tree(env) -> None:
    """Refuse a second build in a tree that is building (dry runs and help touch nothing),
    at the first rule declaration: ``generate`` neither exits nor touches the network (a
    cluster is first reached by the first action that uses it)."""
    from SCons.Script import GetOption

    if GetOption("help") or GetOption("no_exec") or GetOption("question"):
        return
    build_lock.want(env, env.Dir("#").get_abspath())


def _iree_module(env, *args, **kw):
    return module_rule.iree_module(*args, env=env, **kw)  # arguments checked there


# Builder-style names and the rule names, as methods of an environment.
_METHODS = {
    "IreeModule": module_rule.IreeModule,
    "iree_module": _iree_module,
    "IreeImportOnnx": onnx_rule.IreeImportOnnx,
    "iree_import_onnx": onnx_rule.IreeImportOnnx,
    "IreeRun": run_rule.IreeRun,
    "iree_run": run_rule.IreeRun,
    "IreeTest": test_rule.IreeTest,
    "iree_test": test_rule.IreeTest,
    "IreeCheckTestSuite": check_rule.IreeCheckTestSuite,
    "iree_check_test_suite": check_rule.IreeCheckTestSuite,
    "IreeBenchmark": bench_rule.IreeBenchmark,
    "iree_benchmark": bench_rule.IreeBenchmark,
    "IreeTestSuite": test_suite_rule.IreeTestSuite,
    "iree_test_suite": test_suite_rule.IreeTestSuite,
    "IreeOnnxTestSuite": onnx_suite_rule.IreeOnnxTestSuite,
    "iree_onnx_test_suite": onnx_suite_rule.IreeOnnxTestSuite,
}


def exists(env) -> bool:
    """The compiler package is installed (found, not loaded: the workers load it)."""
    import importlib.util

    return importlib.util.find_spec("iree.compiler") is not None

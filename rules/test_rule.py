"""``iree_test``: run a module's function on HAL devices and check its outputs.

Each (test, device) is a build target: a result file that depends on the module,
the input and expected data, and the test's parameters. SCons' own up-to-date
check is the test cache (an unchanged test is not rerun), ``-j`` runs CPU tests
in parallel, and tests on one GPU are serialized with a ``SideEffect``. The test
itself runs through ``iree_build.testing``, the same code the standalone runner
(``python -m iree_build test BUILD_DIR``) uses on machines without SCons.
"""

from __future__ import annotations

import atexit
import fnmatch
import functools
import os
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import SCons.Node
import SCons.Script

from iree_build.atomic import atomic_write_text
from iree_build.errors import IreeBuildError
from iree_build.targets import check_device

from . import cluster_backend, data_files, options
from .explicit_action import ExplicitAction
from .module_rule import find_module
from .where import declared_at, fail

MANIFEST_NAME = "iree_tests.json"
REPORT_NAME = "iree_test_results.xml"


@dataclass
class DeclaredTest:
    name: str
    base: str
    device: str
    module: Any  # node
    function: str
    inputs: list  # nodes
    expected: list  # nodes
    rtol: float
    atol: float
    declared_at: str
    result: Any  # node
    selected: bool
    parameters: list  # nodes
    parameter_scope: str
    arch: str  # CPU architecture the module's code needs on a local device ("" = any)
    kind: str = "call"  # or "check": every case of a check file
    xfail: str = ""
    skip: str = ""


_tests: list[DeclaredTest] = []
_by_result: dict[str, DeclaredTest] = {}
_ran: dict[str, Any] = {}  # name -> TestResult, for tests run by this process
_ran_lock = threading.Lock()
_print_lock = threading.Lock()
_build_dir: Any = None  # Dir node: where the manifest and report go
_summary_registered = False


@functools.lru_cache(maxsize=1)
def runtime_version() -> str:
    """Part of every run's and test's signature: a runtime upgrade reruns them."""
    try:
        return metadata.version("iree-base-runtime")
    except metadata.PackageNotFoundError:
        return "unknown"


_hasher = None  # one per build: each file is hashed once, after it was built


def _file_hasher():
    global _hasher
    if _hasher is None:
        from iree_build.testing.runner import FileHasher

        _hasher = FileHasher()
    return _hasher


def build_dir(env, first_module) -> Any:
    """The folder that holds the manifest: ``$IREE_BUILD_DIR`` if set, else the
    variant dir of the first tested module (``build/``) or the top folder."""
    global _build_dir
    if _build_dir is None:
        if env.get("IREE_BUILD_DIR"):
            _build_dir = env.Dir(env["IREE_BUILD_DIR"])
        else:
            top = env.Dir("#")
            rel = Path(first_module.get_internal_path())
            head = env.Dir("#" + rel.parts[0]) if len(rel.parts) > 1 else top
            _build_dir = head if head.srcnode() is not head else top
    return _build_dir


def _rel(node) -> str:
    return os.path.relpath(node.get_abspath(), _build_dir.get_abspath()).replace(os.sep, "/")


def spec_of(test: DeclaredTest):
    from iree_build.testing.manifest import TestSpec

    return TestSpec(
        name=test.name, base=test.base, device=test.device, module=_rel(test.module),
        function=test.function, inputs=tuple(_rel(n) for n in test.inputs),
        expected=tuple(_rel(n) for n in test.expected), rtol=test.rtol, atol=test.atol,
        declared_at=test.declared_at, result=_rel(test.result),
        parameters=tuple(_rel(n) for n in test.parameters), parameter_scope=test.parameter_scope,
        arch=test.arch, kind=test.kind, xfail=test.xfail, skip=test.skip,
    )


def _signature(target, source, env) -> str:
    t = _by_result[target[0].get_abspath()]
    return "\n".join([
        f"test: {t.name}", f"function: {t.function}", f"device: {t.device}",
        f"rtol: {t.rtol!r}", f"atol: {t.atol!r}", f"parameter scope: {t.parameter_scope}",
        f"kind: {t.kind}", f"expected failure: {t.xfail}", f"skip: {t.skip}",
        f"runtime: iree-base-runtime {runtime_version()}",
    ])


def _say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _run(target, source, env):
    from iree_build.testing.devices import default_pool
    from iree_build.testing.execute import run_test
    from iree_build.testing.results import result_line, write_result
    from iree_build.testing.runner import device_identity, test_signature

    test = _by_result[target[0].get_abspath()]
    spec = spec_of(test)
    base = _build_dir.get_abspath()
    result = cluster_backend.run_test(env, spec, base, _file_hasher())  # None: no cluster
    if result is None:
        pool = default_pool()
        signature = test_signature(spec, base, _file_hasher(), device_identity(spec, pool))
        result = run_test(spec, base, pool, signature or "")
    with _ran_lock:
        _ran[test.name] = result
    _say(result_line(result))
    path = Path(target[0].get_abspath())
    if result.status == "passed":
        write_result(result, path)
        return 0
    path.unlink(missing_ok=True)  # never recorded as up to date: rerun next time
    if result.status == "skipped":
        if options.option("iree-require-devices"):
            return f"test {test.name} could not run and --iree-require-devices is set: {result.message}"
        return 0
    return f"test {test.name} failed"


_run.strfunction = None  # the PASS/FAIL/SKIP line is the progress line
TEST_ACTION = ExplicitAction(_run, signature=_signature, cmdstr="$IREE_TESTCOMSTR")


def _manifest_text(target, source, env) -> str:
    from iree_build.testing.manifest import manifest_json

    return manifest_json([spec_of(t) for t in _tests])


def _write_manifest(target, source, env):
    atomic_write_text(str(target[0]), _manifest_text(target, source, env))
    return 0


_write_manifest.strfunction = None
MANIFEST_ACTION = ExplicitAction(_write_manifest, signature=_manifest_text, cmdstr="")


def _selected(name: str, device: str) -> bool:
    devices = [d.strip() for d in (options.option("iree-devices") or "").split(",") if d.strip()]
    pattern = options.option("iree-test-filter") or ""
    if devices and device not in devices:
        return False
    return not pattern or fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(
        name, pattern.replace("[", "[[]")
    )


def _expected_nodes(env, name, expected, inputs, input_nodes, where) -> list:
    if callable(expected):
        arrays = [data_files.load_now(n) for n in input_nodes]
        try:
            values = expected(*arrays)
        except Exception as e:  # the user's reference function: report where it was declared
            raise IreeBuildError(f"the reference function for {name} raised {type(e).__name__}: {e}")
        expected = list(values) if isinstance(values, (tuple, list)) else [values]
    return [data_files.materialize(env, v, f"{name}.expected{i}.npy") for i, v in enumerate(expected)]


def IreeTest(env, name: str, module, function: str | None = None, inputs: Sequence = (),
             expected: Sequence | Callable | None = None, devices: Sequence[str] | None = None,
             rtol: float = 1e-5, atol: float = 1e-6, parameters: Sequence = (),
             parameter_scope: str = "model") -> list:
    """Declare one test per device; returns the result nodes."""
    where = declared_at()
    try:
        if not name or "/" in name or "[" in name:
            raise IreeBuildError(f"test name {name!r} must be a plain name like 'mlp_test'")
        module_node, info = find_module(env, module)
        devices = [devices] if isinstance(devices, str) else list(devices or env.get("IREE_TEST_DEVICES", ["local-task"]))
        if not devices:
            raise IreeBuildError("devices is empty: name at least one HAL device, e.g. ['local-task']")
        for device in devices:
            check_device(device, info.backends, info.devices)
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (list, tuple)):
            raise IreeBuildError("inputs must be a list (of .npy paths or values)")
        input_nodes = [data_files.materialize(env, v, f"{name}.input{i}.npy") for i, v in enumerate(inputs)]
        expected_nodes = _expected_nodes(env, name, expected if expected is not None else [],
                                         inputs, input_nodes, where)
        param_nodes = list(info.parameters) + data_files.parameter_nodes(env, parameters, name)
        if info.parameters and parameter_scope == "model":
            parameter_scope = info.parameter_scope
        if float(rtol) < 0 or float(atol) < 0:
            raise IreeBuildError("rtol and atol must not be negative")
        bdir = build_dir(env, module_node)
        for node in [module_node, *input_nodes, *expected_nodes, *param_nodes]:
            if not node.get_abspath().startswith(bdir.get_abspath() + os.sep):
                raise IreeBuildError(
                    f"{node} lies outside the test folder {bdir.get_internal_path()}; "
                    "keep tests in one variant dir or set IREE_BUILD_DIR"
                )
    except IreeBuildError as e:
        fail(e.message, where)

    nodes = []
    for device in devices:
        full = f"{name}[{device}]"
        test = DeclaredTest(full, name, device, module_node, function or "", input_nodes, expected_nodes,
                            float(rtol), float(atol), where, env.File(f"{name}.{device}.result.json"),
                            _selected(full, device), param_nodes, parameter_scope,
                            info.cpu_arch or "" if device in ("local-sync", "local-task") else "")
        nodes.append(register(env, test, [module_node, *input_nodes, *expected_nodes, *param_nodes]))
    return nodes


def register(env, test: DeclaredTest, sources: list):
    """Make one declared test a build target, in the manifest and under ``scons test``."""
    global _summary_registered
    if any(t.name == test.name and t.result.dir is test.result.dir for t in _tests):
        fail(f"test {test.name} is already declared", test.declared_at)
    build_dir(env, test.module)
    result = test.result
    _tests.append(test)
    _by_result[result.get_abspath()] = test
    env.Command(result, sources, TEST_ACTION)
    if test.device not in ("local-sync", "local-task"):  # one test at a time on a GPU
        lock = env.File(f"#.iree_device_{test.device}.lock")
        env.SideEffect(lock, result)
        env.Ignore(env.Dir("#"), lock)  # else a plain `scons` would build it, and so run the test
    d = result.dir
    while d is not None:  # keep tests out of a plain `scons` (directories build their contents)
        env.Ignore(d, result)
        d = None if d is env.Dir("#") else d.up()
    if options.option("iree-retest"):
        env.AlwaysBuild(result)
    if test.selected:
        env.Alias("test", result)
    options.add_help("test", f"{test.name}  [{test.declared_at}]")

    manifest = env.File(_build_dir.File(MANIFEST_NAME))
    if not getattr(manifest.attributes, "iree_declared", False):
        manifest.attributes.iree_declared = True
        env.Command(manifest, [], MANIFEST_ACTION)
        env.Alias("test", manifest)
        env.Clean("test", [manifest, _build_dir.File(REPORT_NAME)])
    if not _summary_registered and "test" in SCons.Script.COMMAND_LINE_TARGETS:
        _summary_registered = True
        atexit.register(_summary)
    return result


def iree_test(name: str, module, function: str | None = None, inputs: Sequence = (),
              expected: Sequence | Callable | None = None, devices: Sequence[str] | None = None,
              rtol: float = 1e-5, atol: float = 1e-6, parameters: Sequence = (),
              parameter_scope: str = "model", env=None) -> list:
    """Declare a test of ``module``'s ``function``, one per device (``name[device]``)."""
    from . import default_environment

    return IreeTest(env or default_environment(), name, module, function, inputs=inputs,
                    expected=expected, devices=devices, rtol=rtol, atol=atol,
                    parameters=parameters, parameter_scope=parameter_scope)


def _summary() -> None:
    """After the build: every selected test's outcome, one closing line, the JUnit file."""
    from iree_build.testing.results import (TestResult, flatten, read_result, summary_line,
                                            write_junit)

    if SCons.Script.GetOption("clean") or SCons.Script.GetOption("no_exec"):
        return
    results = []
    cached = 0
    for test in (t for t in _tests if t.selected):
        ran = _ran.get(test.name)
        state = test.result.get_state()
        if ran is not None:
            if ran.status == "skipped" and options.option("iree-require-devices"):
                ran = TestResult(ran.name, "failed", ran.message, ran.time_ms, ran.device, ran.signature, ran.base)
            results.append(ran)
        elif state == SCons.Node.up_to_date:
            stored = read_result(test.result.get_abspath()) or TestResult(
                test.name, "passed", "up to date", device=test.device, base=test.base)
            stored.cached = True
            cached += len(flatten([stored]))
            results.append(stored)
        elif state == SCons.Node.failed:
            results.append(TestResult(test.name, "failed", "its module or data failed to build",
                                      device=test.device, base=test.base))
        else:
            results.append(TestResult(test.name, "skipped", "not run: the build stopped earlier (use -k)",
                                      device=test.device, base=test.base))
    if not results:
        return
    for r in results:
        if r.status == "failed" and r.name not in _ran:
            _say(f"FAIL {r.name} ({r.message})")
        elif r.status == "skipped" and r.name not in _ran:
            _say(f"SKIP {r.name} ({r.message})")
    report = _build_dir.File(REPORT_NAME).get_abspath()
    try:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        write_junit(results, report)
    except OSError as e:
        _say(f"could not write the JUnit report {report}: {e}")
    ran = sum(1 for r in flatten(list(_ran.values())) if r.status != "skipped")
    _say(f"{ran} test{'s' if ran != 1 else ''} run, {cached} up to date; JUnit report: "
         f"{os.path.relpath(report)}")
    _say(summary_line(results))

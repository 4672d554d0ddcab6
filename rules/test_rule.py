"""``iree_test``: run a module's function on HAL devices and check its outputs.

Each (test, device) is a build target: a result file that depends on the module,
the input and expected data, and the test's parameters. SCons' own up-to-date
check is the test cache (an unchanged test is not rerun), ``-j`` runs CPU tests
in parallel, and GPU tests take a free lane of the run pool (one per GPU, one test at a
time each). The test
itself runs through ``iree_build.testing``, the same code the standalone runner
(``python -m iree_build test BUILD_DIR``) uses on machines without SCons.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import SCons.Node
import SCons.Script

from iree_build.errors import IreeBuildError
from iree_build.targets.backends import check_device
from iree_build.testing.device_names import file_part
from iree_build.testing.emulation import lane_hardware, lane_label
from iree_build.testing.identity import runtime_version
from iree_build.testing.selection import Selection, check_devices
from iree_build.util.atomic import atomic_write_text, os_error_text, remove_dead_temps, temp_path_for
from iree_build.util.interrupt import STOP_SIGNALS, interrupted, stop_noticed, which_signal

from . import cluster_backend, data_files, help_summary, options
from .action_text import set_strfunction
from .arguments import checked, env_last
from .declared_modules import find_module
from .emulators import emulator_for
from .explicit_action import ExplicitAction
from .read_ahead import ReadAhead
from .read_ahead import wanted as read_ahead_wanted
from .registry import Registry, registry
from .run_flags import from_flagfile
from .where import declared_at, fail, source_folder

if TYPE_CHECKING:  # numpy comes with it; a build that runs no test never needs it
    from iree_build.testing.compare import Tol

MANIFEST_NAME = "iree_tests.json"
Reason = str | Mapping[str, str] | None  # xfail/skip: for every device, or per device
COMPARISON = "2"  # 2: IREE's own comparison when no tolerance is declared
REPORT_NAME = "iree_test_results.xml"


@dataclass
class DeclaredTest:
    """One (test, device) as declared; ``register`` gives it its label and its place."""

    short: str  # the name as declared: "smoke", or "suite/ops/add.mlir" for a check file
    label: str  # what goes in brackets: the device, "llvm-cpu:local-task", ...
    device: str
    module: Any  # node
    function: str
    inputs: list  # nodes
    expected: list  # nodes
    rtol: Tol  # None: as iree-run-module compares; or one per output
    atol: Tol
    declared_at: str
    result: Any  # node
    parameters: list  # nodes
    parameter_scope: str
    arch: str  # CPU architecture the module's code needs on a local device ("" = any)
    kind: str = "call"  # or "check": every case of a check file
    xfail: str = ""
    skip: str = ""
    timeout: float = 0.0  # seconds per call (check case); 0: the runner's default
    tags: tuple[str, ...] = ()
    folder: str = ""  # the declaring SConscript's source folder, from the top ("" = top)
    base: str = ""  # the path-qualified name without the device: "models/mlp:smoke"
    name: str = ""  # the label: "models/mlp:smoke[cuda]"
    selected: bool = True
    spec: Any = None  # its TestSpec, once made (spec_of)
    compare: dict = field(default_factory=dict)  # IREE threshold overrides (a flag file's)
    emulator: tuple = ()  # how `arch` code runs on a machine of another architecture


def build_dir(env, first_module) -> Any:
    """The folder that holds the manifest: ``$IREE_BUILD_DIR`` if set, else the top
    folder of the variant tree of the first tested module (``build/``), or the top."""
    reg = registry(env)
    if reg.build_dir is None:
        if env.get("IREE_BUILD_DIR"):
            reg.build_dir = env.Dir(env["IREE_BUILD_DIR"])
        else:
            # The top folder of the variant tree the module is built in ("build" for
            # build/cpu/models/...), so that every configuration's tests share one manifest.
            top = env.Dir("#")
            rel = Path(first_module.get_internal_path())
            in_variant = first_module.dir.srcnode() is not first_module.dir
            reg.build_dir = env.Dir("#" + rel.parts[0]) if in_variant and len(rel.parts) > 1 else top
    return reg.build_dir


def spec_of(test: DeclaredTest, reg: Registry):
    """The test as the runner knows it (made once: the manifest and the run share it)."""
    if test.spec is None:
        test.spec = _make_spec(test, reg)
    return test.spec


def _tuple(tol: Tol) -> float | None | tuple[float | None, ...]:
    """A per-output tolerance list as the manifest keeps it (a tuple)."""
    return tol if tol is None or isinstance(tol, (int, float)) else tuple(tol)


def _make_spec(test: DeclaredTest, reg: Registry):
    from iree_build.testing.manifest import TestSpec

    rel = reg.rel
    return TestSpec(
        name=test.name,
        base=test.base,
        device=test.device,
        module=rel(test.module),
        function=test.function,
        inputs=tuple(rel(n) for n in test.inputs),
        expected=tuple(rel(n) for n in test.expected),
        rtol=_tuple(test.rtol),
        atol=_tuple(test.atol),
        declared_at=test.declared_at,
        result=rel(test.result),
        parameters=tuple(rel(n) for n in test.parameters),
        parameter_scope=test.parameter_scope,
        arch=test.arch,
        kind=test.kind,
        xfail=test.xfail,
        skip=test.skip,
        timeout=test.timeout,
        tags=test.tags,
        folder=test.folder,
        compare=dict(test.compare),
        emulator=tuple(test.emulator),
    )


def _test_of(env, target) -> tuple[DeclaredTest, Registry]:
    reg = registry(env)
    return reg.by_result[target[0].get_abspath()], reg


def command_line_devices() -> tuple[str, ...]:
    """``--iree-devices`` as a list (``cuda://1``: that GPU's lane only)."""
    return tuple(d.strip() for d in (options.option("iree-devices") or "").split(",") if d.strip())


def device_lanes() -> dict[str, int]:
    """``--iree-device-lanes`` (else ``$IREE_DEVICE_LANES``): lanes per GPU driver."""
    from iree_build.testing.device_names import parse_lane_counts

    text = options.option("iree-device-lanes") or os.environ.get("IREE_DEVICE_LANES", "")
    try:
        return parse_lane_counts(text, "--iree-device-lanes")
    except ValueError as e:
        raise IreeBuildError(str(e)) from None


def _signature(target, source, env) -> str:
    t, _ = _test_of(env, target)
    return "\n".join(
        [
            f"test: {t.name}",
            f"function: {t.function}",
            f"device: {t.device}",
            f"rtol: {t.rtol!r}",
            f"atol: {t.atol!r}",
            f"parameter scope: {t.parameter_scope}",
            f"kind: {t.kind}",
            f"expected failure: {t.xfail}",
            f"skip: {t.skip}",
            f"timeout: {t.timeout!r}",
            f"runtime: iree-base-runtime {runtime_version()}",
            f"comparison: {COMPARISON} {sorted(t.compare.items())}",
            # a shared CacheDir serves results to this hardware only; an emulated lane's
            # hardware names the emulated architecture and the emulator's version
            f"hardware: {lane_hardware(t.device, t.arch, t.emulator)}",
            data_files.signature(env, [*t.inputs, *t.expected, *t.parameters]),
        ]
    )


def _say(reg: Registry, line: str) -> None:
    with reg.print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _run(target, source, env):
    from iree_build.testing.results import device_required, result_line, write_result

    test, reg = _test_of(env, target)
    if reg.once("sweep results"):
        _sweep_dead_results(reg)
    ahead = _read_ahead(env, reg)
    result = ahead.take(test) if ahead is not None else None
    if result is None:
        _restage(env, test)
        spec = spec_of(test, reg)

        def run():
            outcome = cluster_backend.run_test(env, spec, reg.build_dir.get_abspath(), reg.hasher())
            return outcome if outcome is not None else _run_locally(test, reg)  # None: no cluster

        result = ahead.local(test, run) if ahead is not None else run()
    if options.option("iree-require-devices"):  # a failure, said as the standalone runner says it
        result = device_required(result)
    with reg.ran_lock:
        reg.ran[test.name] = result
    if not (_stopped(result) and stop_noticed()):  # the stop's, not the test's: said once, at the end
        _say(reg, result_line(result))
    path = Path(target[0].get_abspath())
    if result.status == "passed":
        try:
            os.replace(temp_path_for(path), path)  # written by the run worker
        except FileNotFoundError:
            write_result(result, path)
        return 0
    path.unlink(missing_ok=True)  # never recorded as up to date: rerun next time
    if result.message.startswith("device required: "):
        reason = result.message[len("device required: ") :]
        return f"test {test.name} could not run and --iree-require-devices is set: {reason}"
    if result.status == "skipped":
        return 0
    return f"test {test.name} {_FAILED_WORDS.get(result.status, 'failed')}"


_FAILED_WORDS = {"crashed": "crashed", "timeout": "timed out"}


def _restage(env, test: DeclaredTest) -> None:
    data_files.ensure(env, (n.get_abspath() for n in (*test.inputs, *test.expected, *test.parameters)))


def _run_locally(test: DeclaredTest, reg: Registry):
    """The test's outcome from a run worker of this machine (any thread). A passed call's
    result file is written by the worker, beside its place under a temporary name, into
    the inode of the result it replaces (a result is precious: SCons leaves it for us):
    creating a file costs about as much as a small test, and this process' time is
    what SCons' own bookkeeping needs."""
    from iree_build.testing.run_pool import default_run_pool
    from iree_build.testing.runner import device_identity
    from iree_build.testing.signature import test_signature

    spec = spec_of(test, reg)
    base = reg.build_dir.get_abspath()
    pool = default_run_pool()
    with reg.ran_lock:
        if reg.once("lanes"):  # before this build's first test takes a GPU lane
            pool.configure_lanes(device_lanes(), command_line_devices())
    hardware = device_identity(spec)
    if spec.kind == "call":
        return pool.run_test(
            spec,
            base,
            "",
            _timeout_override(),
            hardware=hardware,
            result_file=str(temp_path_for(test.result.get_abspath())),
            replaces=test.result.get_abspath(),
        )
    signature = test_signature(spec, base, reg.hasher(), hardware)
    return pool.run_test(spec, base, signature or "", _timeout_override())


def _run_batch(tests: list, reg: Registry):
    """The outcomes of CPU function calls run back to back in one run worker (one request),
    in their order; passed results are written beside their places, as by _run_locally."""
    from iree_build.testing.run_pool import default_run_pool
    from iree_build.testing.runner import device_identity

    specs = [spec_of(t, reg) for t in tests]
    for i, result, _ in default_run_pool().run_batch(
        specs,
        reg.build_dir.get_abspath(),
        [device_identity(s) for s in specs],
        [str(temp_path_for(t.result.get_abspath())) for t in tests],
        retest=True,
        timeout=_timeout_override(),
        passed_only=True,
    ):
        yield tests[i], result


def _sweep_dead_results(reg: Registry) -> None:
    """Results that a run worker wrote for a build killed before it renamed them: one
    listing per folder of selected tests, once per build that runs a test."""
    for folder in {t.result.dir.get_abspath() for t in reg.tests if t.selected}:
        remove_dead_temps(folder, "")


def _drop_ahead(test: DeclaredTest) -> None:
    """A test run ahead whose action never ran (the build stopped): no file of it stays."""
    temp_path_for(test.result.get_abspath()).unlink(missing_ok=True)


def _read_ahead(env, reg: Registry) -> ReadAhead | None:
    """The build's read-ahead, made by the first test action (of any job thread)."""
    with reg.setup_lock:
        if reg.read_ahead is None:
            reg.read_ahead = (
                ReadAhead(
                    reg.tests,
                    lambda t: _restage(env, t),
                    lambda ts: _run_batch(ts, reg),
                    _drop_ahead,
                    SCons.Script.GetOption("num_jobs"),
                )
                if read_ahead_wanted()
                else False
            )
    return reg.read_ahead or None


def _timeout_override() -> float | None:
    value = options.option("iree-test-timeout")
    return float(value) if value else None


set_strfunction(_run, None)  # the PASS/FAIL/SKIP line is the progress line
TEST_ACTION = ExplicitAction(_run, signature=_signature, cmdstr="$IREE_TESTCOMSTR")


def _manifest_text(target, source, env) -> str:
    reg = registry(env)
    return reg.manifest_text(lambda t: spec_of(t, reg))


def _write_manifest(target, source, env):
    remove_dead_temps(target[0].dir.get_abspath(), "")  # a killed build's manifest, report, data
    atomic_write_text(str(target[0]), _manifest_text(target, source, env))
    return 0


set_strfunction(_write_manifest, None)
MANIFEST_ACTION = ExplicitAction(_write_manifest, signature=_manifest_text, cmdstr="")


def _looks_whole(path: str) -> bool:
    """A manifest as this build writes it, by its first and last bytes (cheap: no parse on
    every build); a missing one is SCons' to build anyway."""
    from iree_build.testing.manifest import FORMAT

    head = f'{{\n  "format": "{FORMAT}",\n'.encode()
    try:
        with open(path, "rb") as f:
            start = f.read(len(head))
            f.seek(max(0, os.fstat(f.fileno()).st_size - 2))
            end = f.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return start == head and end == b"}\n"


def command_line_selection(env) -> Selection:
    """What ``--iree-devices``, ``--iree-test-filter``, ``--iree-test-tags`` and folder
    targets beside ``test`` (``scons test models/mlp``) ask for."""
    reg = registry(env)
    if reg.selection is None:
        top = env.Dir("#").get_abspath()
        devices = command_line_devices()
        folders = tuple(
            os.path.normpath(t).replace(os.sep, "/")
            for t in SCons.Script.COMMAND_LINE_TARGETS
            if t not in ("test", "bench") and os.path.isdir(os.path.join(top, t))
        )
        try:
            reg.selection = Selection(
                devices=devices,
                pattern=options.option("iree-test-filter") or "",
                tags=options.option("iree-test-tags") or "",
                folders=folders,
            )
        except IreeBuildError as e:
            fail(f"--iree-test-tags: {e.message}", "command line")
        try:
            named = (x.device for x in reg.tests)  # those declared so far; the known ones always
            check_devices(devices, named, IreeBuildError, "--iree-devices")
            device_lanes()  # a bad value is one line now, not at the first GPU test
        except IreeBuildError as e:
            fail(e.message, "command line")
    return reg.selection


def module_on_devices(env, module, devices) -> tuple[Any, Any, list[str]]:
    """The module a test or benchmark names, and the devices it runs on (default
    ``$IREE_TEST_DEVICES``), each one checked against the module's targets."""
    module_node, info = find_module(env, module)
    devices = (
        [devices]
        if isinstance(devices, str)
        else list(devices or env.get("IREE_TEST_DEVICES", ["local-task"]))
    )
    if not devices:
        raise IreeBuildError("devices is empty: name at least one HAL device, e.g. ['local-task']")
    for device in devices:
        check_device(device, info.backends, info.devices)
    return module_node, info, devices


def _expected_nodes(env, name, expected, inputs, input_nodes, where) -> list:
    if callable(expected):
        arrays = [data_files.load_now(env, n) for n in input_nodes]
        try:
            values = expected(*arrays)
        except Exception as e:  # the user's reference function: report where it was declared
            raise IreeBuildError(
                f"the reference function for {name} raised {type(e).__name__}: {e}"
            ) from None
        expected = list(values) if isinstance(values, (tuple, list)) else [values]
        for i, value in enumerate(expected):  # a string would be taken for a file's name
            if value is None or isinstance(value, (str, bytes, dict)):
                raise IreeBuildError(
                    f"the reference function for {name} returned {value!r:.60} as output {i}; "
                    "return numpy arrays or numbers"
                )
    return [data_files.materialize(env, v, f"{name}.expected{i}.npy") for i, v in enumerate(expected)]


@checked("iree_test")
def IreeTest(
    env,
    name: str,
    module,
    function: str | None = None,
    inputs: Sequence = (),
    expected: Sequence | Callable | None = None,
    devices: Sequence[str] | None = None,
    rtol: Tol = None,
    atol: Tol = None,
    parameters: Sequence = (),
    parameter_scope: str = "model",
    timeout: float | None = None,
    tags: Sequence[str] = (),
    flagfile: Any = None,
    xfail: Reason = None,
    skip: Reason = None,
) -> list:
    """Declare one test per device; returns the result nodes (arguments checked by the schema)."""
    where = declared_at()
    return declare_call_test(
        env,
        name,
        name,
        module,
        function,
        inputs,
        expected,
        devices,
        rtol,
        atol,
        parameters,
        parameter_scope,
        timeout,
        tags,
        flagfile,
        xfail,
        skip,
        where,
    )


def declare_call_test(
    env,
    short: str,
    stem: str,
    module,
    function: str | None,
    inputs: Sequence,
    expected: Sequence | Callable | None,
    devices: Sequence[str] | None,
    rtol: Tol,
    atol: Tol,
    parameters: Sequence,
    parameter_scope: str,
    timeout: float | None,
    tags: Sequence[str],
    flagfile: Any,
    xfail: Reason,
    skip: Reason,
    where: str,
) -> list:
    """One test per device of a function call, labelled ``short[device]``; its files are
    named from ``stem``. ``iree_test`` and the folder suite (``iree_test_suite``) share it."""
    try:
        function, inputs, expected, devices, compare = from_flagfile(
            flagfile, function, inputs, expected, devices
        )
        module_node, info, devices = module_on_devices(env, module, devices)
        _refuse_declared_twice(env, module_node, short, devices)  # before its data is staged
        input_nodes = [data_files.materialize(env, v, f"{stem}.input{i}.npy") for i, v in enumerate(inputs)]
        expected_nodes = _expected_nodes(
            env, stem, expected if expected is not None else [], inputs, input_nodes, where
        )
        param_nodes, parameter_scope = data_files.module_parameters(
            env, info, parameters, parameter_scope, stem
        )
        for what, tol in (("rtol", rtol), ("atol", atol)):
            if isinstance(tol, tuple) and len(tol) != len(expected_nodes):
                raise IreeBuildError(
                    f"{what} has {len(tol)} entries for {len(expected_nodes)} expected "
                    "output(s); give one per output, or one number for all"
                )
        _check_reasons(devices, xfail, skip)  # the devices may come from the module: not the schema's
        bdir = build_dir(env, module_node)
        for node in [module_node, *input_nodes, *expected_nodes, *param_nodes]:
            if not node.get_abspath().startswith(bdir.get_abspath() + os.sep):
                folder = bdir.get_internal_path()
                raise IreeBuildError(
                    f"{node} lies outside the test folder "
                    f"{'(the top folder, where the SConstruct is)' if folder == '.' else folder}; "
                    "keep tests in one variant dir or set IREE_BUILD_DIR"
                )
    except IreeBuildError as e:
        fail(str(e) if e.where else e.message, where)

    nodes = []
    for device in devices:
        test = DeclaredTest(
            short,
            device,
            device,
            module_node,
            function or "",
            input_nodes,
            expected_nodes,
            rtol,
            atol,
            where,
            env.File(f"{stem}.{file_part(device)}.result.json"),
            param_nodes,
            parameter_scope,
            info.cpu_arch or "" if device in ("local-sync", "local-task") else "",
            timeout=float(timeout or 0.0),
            tags=tuple(tags),
            xfail=_for_device(xfail, device),
            skip=_for_device(skip, device),
            compare=compare,
        )
        nodes.append(register(env, test, [module_node, *input_nodes, *expected_nodes, *param_nodes]))
    return nodes


def _check_reasons(devices: Sequence[str], *reasons: Reason) -> None:
    for reason in reasons:
        if isinstance(reason, Mapping):
            extra = [d for d in reason if d not in devices]
            if extra:
                raise IreeBuildError(
                    f"xfail/skip names device {extra[0]!r}, which the test does not "
                    f"run on; its devices: {', '.join(devices)}"
                )


def _for_device(reason: Reason, device: str) -> str:
    if isinstance(reason, Mapping):
        return reason.get(device, "")
    return reason or ""


def _refuse_declared_twice(env, module_node, name: str, labels: Sequence[str]) -> None:
    reg = registry(env)
    build_dir(env, module_node)
    folder = reg.label_folder(env.Dir("."))
    for label in labels:
        full = f"{folder}:{name}[{label}]" if folder else f"{name}[{label}]"
        if full in reg.names:
            raise IreeBuildError(f"test {full} is already declared in this folder")


def register(env, test: DeclaredTest, sources: list):
    """Make one declared test a build target, in the manifest and under ``scons test``."""
    reg = registry(env)
    build_dir(env, test.module)
    folder = reg.label_folder(env.Dir("."))
    test.folder = source_folder(env)
    if test.arch:  # another architecture's code runs on an emulated lane: "[local-task@aarch64]"
        info = reg.modules.get(test.module.get_abspath())
        try:
            test.emulator = emulator_for(env, test.arch, info.emulator if info else ())
        except IreeBuildError as e:
            fail(e.message, test.declared_at)
        test.label = lane_label(test.label, test.arch)
    test.base = f"{folder}:{test.short}" if folder else test.short
    test.name = f"{test.base}[{test.label}]"
    if test.name in reg.names:
        fail(f"test {test.name} is already declared in this folder", test.declared_at)
    reg.names.add(test.name)
    test.selected = command_line_selection(env).matches(
        test.name,
        test.device,
        test.tags,
        (test.folder, env.Dir(".").get_internal_path().replace(os.sep, "/")),
        test.arch,
    )
    result = test.result
    reg.tests.append(test)
    reg.by_result[result.get_abspath()] = test
    env.Command(result, data_files.sources_for(env, [result], sources), TEST_ACTION)
    result.set_precious()  # not deleted before its test runs: the new result reuses its inode
    # GPU tests are not serialized here: the run pool gives each a free lane (one per GPU,
    # one test at a time each), so a host's GPUs run side by side.
    # Keep tests out of a plain `scons` (directories build their contents). The node calls
    # are what env.Ignore/env.Alias do, less their argument conversion: declaring hundreds
    # of tests is on every no-op build's path.
    top = env.Dir("#")
    d = result.dir
    while d is not None:
        d.add_ignore([result])
        d = None if d is top else d.up()
    if options.option("iree-retest"):
        env.AlwaysBuild(result)
    if test.selected:
        if reg.test_alias is None:
            reg.test_alias = env.Alias("test")[0]
        reg.test_alias.add_dependency([result])
    help_summary.note_test(env, test)

    manifest = env.File(reg.build_dir.File(MANIFEST_NAME))
    if reg.once("manifest"):
        env.Command(manifest, [], MANIFEST_ACTION)
        if not _looks_whole(manifest.get_abspath()):
            env.AlwaysBuild(manifest)  # edited by hand into something else: SCons would keep it
        env.Alias("test", manifest)
        env.Clean("test", [manifest, reg.build_dir.File(REPORT_NAME)])
    if "test" in SCons.Script.COMMAND_LINE_TARGETS:
        if reg.once("summary"):
            atexit.register(_summary, reg)
        if test.selected and _will_run(result) and reg.once("prestart"):
            from iree_build.report.publish import Publication
            from iree_build.testing.run_pool import default_run_pool

            default_run_pool().prestart()  # its imports overlap reading the SConscripts
            reg.publication = Publication(reg.build_dir.get_abspath())  # reads the history meanwhile
    return result


def declare_test_alias(env) -> None:
    """``scons test`` always names something: with no test declared (or none selected)
    it says so in one line, instead of SCons' "Do not know how to make File target"."""
    if "test" not in SCons.Script.COMMAND_LINE_TARGETS:
        return
    reg = registry(env)
    if reg.once("alias"):
        reg.test_alias = env.Alias("test", [])[0]
        atexit.register(_nothing_to_test, reg)


def _nothing_to_test(reg: Registry) -> None:
    if any(SCons.Script.GetOption(o) for o in ("clean", "help", "question")):
        return
    if reg.test_alias.get_state() == SCons.Node.no_state:
        return  # the build never started (a declaration error stopped it)
    if not reg.tests:
        _say(reg, "scons: no tests are declared here (iree_test, iree_check_test_suite); nothing to test")
    elif not any(t.selected for t in reg.tests):
        _say(
            reg,
            f"scons: none of the {len(reg.tests)} declared tests matches --iree-devices, "
            "--iree-test-filter, --iree-test-tags or the folders named; nothing to test",
        )


def _will_run(result) -> bool:
    """A cheap guess that this build runs a test (its result is missing, or --iree-retest):
    then the run workers' fork server is started early; a no-op build starts nothing."""
    if any(SCons.Script.GetOption(o) for o in ("no_exec", "clean", "question")):
        return False
    return bool(options.option("iree-retest")) or not os.path.exists(result.get_abspath())


iree_test = env_last(
    IreeTest,
    "iree_test",
    """Declare a test of ``module``'s ``function``, one per device (``name[device]``).""",
)


def _page(reg: Registry, results: list):
    """The results page; a cached pass shows the margin its stored result recorded."""
    from iree_build.report.publish import publish_tests
    from iree_build.testing.results import read_result

    shown = []
    by_name = {t.name: t for t in reg.tests}
    for r in results:
        if r.cached and not r.cases and r.status == "passed":
            test = by_name.get(r.name)
            stored = read_result(test.result.get_abspath()) if test is not None else None
            if stored is not None:
                r.margins, r.expected_failure = stored.margins, stored.expected_failure
        shown.append(r)
    if reg.publication is not None:
        return reg.publication.publish(shown)
    return publish_tests(reg.build_dir.get_abspath(), shown)


def _summary(reg: Registry) -> None:
    """After the build: every selected test's outcome, one closing line, the JUnit file."""
    from iree_build.testing.manifest import failed_build_note
    from iree_build.testing.results import (
        TestResult,
        flatten,
        read_result,
        result_line,
        summary_line,
        write_junit,
    )
    from iree_build.testing.summary import failure_lines

    if any(SCons.Script.GetOption(o) for o in ("clean", "no_exec", "question")):
        return  # nothing ran: no lines, no report
    if reg.test_alias is not None and reg.test_alias.get_state() == SCons.Node.no_state:
        return  # the build never started (a declaration error stopped it): its one line says why
    results = []
    cached = 0
    for test in (t for t in reg.tests if t.selected):
        ran = reg.ran.get(test.name)
        state = test.result.get_state()
        if ran is not None:
            if ran.status == "skipped" and options.option("iree-require-devices"):
                ran = TestResult(
                    ran.name, "failed", ran.message, ran.time_ms, ran.device, ran.signature, ran.base
                )
            results.append(ran)
        elif state in (SCons.Node.up_to_date, SCons.Node.executed):
            # Up to date, or "executed" without running: retrieved from CacheDir (only
            # passed results are kept, and their signature names this machine's hardware).
            # Only a check file's stored result is read (its cases are counted): SCons
            # already knows the others passed.
            stored = (read_result(test.result.get_abspath()) if test.kind == "check" else None) or TestResult(
                test.name, "passed", "up to date", device=test.device, base=test.base
            )
            stored.cached = True
            cached += len(flatten([stored]))
            results.append(stored)
            if state != SCons.Node.up_to_date:
                _say(reg, result_line(stored))
        elif state == SCons.Node.failed:
            note = failed_build_note(test.module.get_abspath())
            why = (
                f"module {test.module.name} did not build: {note}"
                if note
                else "its module or data failed to build"
            )
            results.append(TestResult(test.name, "failed", why, device=test.device, base=test.base))
        else:
            results.append(
                TestResult(
                    test.name,
                    "skipped",
                    "not run: the build stopped earlier (use -k)",
                    device=test.device,
                    base=test.base,
                )
            )
    if not results:
        return
    cut: list = []
    # What the stop cut short or kept from running is no outcome: not counted.
    if interrupted() or (any(_stopped(r) for r in results) and stop_noticed()):
        cut = [r for r in results if _cut_short(r, reg)]
        results = [r for r in results if r not in cut]
    for r in results:
        if r.status == "failed" and r.name not in reg.ran:
            _say(reg, f"FAIL {r.name} ({r.message})")
        elif r.status == "skipped" and r.name not in reg.ran:
            _say(reg, f"SKIP {r.name} ({r.message})")
    report = reg.build_dir.File(REPORT_NAME).get_abspath()
    # What a build killed while it wrote these reports left (every other temporary is swept
    # where it is rebuilt; a build that runs nothing rebuilds no manifest and no result).
    remove_dead_temps(os.path.dirname(report), "")
    where = f"; JUnit report: {os.path.relpath(report)}"
    try:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        write_junit(results, report)
    except OSError as e:
        _say(reg, f"could not write the JUnit report {os.path.relpath(report)}: {os_error_text(e)}")
        where = "; no JUnit report"
    else:
        try:
            where += "; page: " + os.path.relpath(_page(reg, results))
        except OSError as e:
            _say(reg, f"could not write the results page: {os_error_text(e)}")
    ran = sum(1 for r in flatten([r for r in reg.ran.values() if r not in cut]) if r.status != "skipped")
    _say(reg, f"{ran} test{'s' if ran != 1 else ''} run, {cached} up to date{where}")
    if cut:
        _say(
            reg,
            f"INTERRUPTED ({which_signal() or 'stopped'}): {len(cut)} test{'s' if len(cut) != 1 else ''} "
            "cut short or not run, not counted: "
            + ", ".join(r.name for r in cut[:5])
            + (", ..." if len(cut) > 5 else ""),
        )
    for line in failure_lines(results, reg.failed_steps):
        _say(reg, line)
    _say(reg, summary_line(results))


def _stopped(result) -> bool:
    """Its worker died of a stop signal (SIGINT, SIGTERM, SIGHUP), in the test or in one of
    a check file's cases: most likely sent to the whole process group, this build included."""
    return _ended_by(result, ("SIGINT", "SIGTERM", "SIGHUP"))


def _cut_short(result, reg: Registry) -> bool:
    """After Ctrl-C/SIGTERM: whether a test's outcome is the interruption's, not its own:
    not run, its module's build stopped, or its worker killed by the stop."""
    if result.name not in reg.ran:
        return result.status != "passed" and (
            "did not build" not in result.message or "interrupted" in result.message
        )
    return _ended_by(result, ("interrupted", *STOP_SIGNALS))


def _ended_by(result, words: tuple[str, ...]) -> bool:
    """The test, or one of a check file's cases, crashed or erred with one of ``words`` in
    its message (a check file whose case the stop cut short is the stop's, too)."""
    return any(
        r.status in ("crashed", "error") and any(word in r.message for word in words)
        for r in (result, *result.cases)
    )

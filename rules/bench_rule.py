"""``iree_benchmark``: measure a module's function on HAL devices under ``scons bench``.

Each (benchmark, device) is a target, ``NAME.DEVICE.bench.json``, that is
always rebuilt and never taken from a cache (a measurement is not a cached
fact) and never built by a plain ``scons``. It runs alone: its action passes
the build's action gate exclusively (:mod:`.action_gate`: no compile, test or
other benchmark of this build runs meanwhile, on any device) and shares a
per-device ``SideEffect`` lock with the device's other benchmarks. The measuring is
:mod:`iree_build.bench`, the code ``python -m iree_build bench BUILD_DIR``
runs on machines without SCons; the declarations go into
``iree_benchmarks.json`` beside the test manifest for that.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import SCons.Node
import SCons.Script

from iree_build.bench.spec import (
    MANIFEST_NAME,
    BenchSpec,
    ValueInput,
    is_value_input,
    manifest_json,
    min_time_text,
)
from iree_build.errors import IreeBuildError
from iree_build.testing.device_names import file_part
from iree_build.testing.emulation import lane_label
from iree_build.util.atomic import atomic_write_text

from . import data_files, help_summary, options
from .action_text import set_strfunction
from .arguments import checked, env_last
from .emulators import emulator_for
from .explicit_action import ExplicitAction
from .registry import Registry, registry
from .run_flags import from_flagfile
from .test_rule import build_dir, command_line_selection, module_on_devices
from .where import declared_at, fail, source_folder


@dataclass
class DeclaredBenchmark:
    spec: BenchSpec  # paths relative to the build folder
    result: Any  # node
    selected: bool


def _baseline(reg: Registry) -> dict[str, Any] | None:
    """The run named by ``--iree-bench-baseline``, read once (one-line error if unusable)."""
    path = options.option("iree-bench-baseline")
    if not path:
        return None
    if "baseline" not in reg.bench_state:
        from iree_build.bench.record import load_run

        full = os.path.join(SCons.Script.GetLaunchDir(), path)
        try:
            reg.bench_state["baseline"] = load_run(full)
        except IreeBuildError as e:
            fail(e.message, f"--iree-bench-baseline={path}")
    return reg.bench_state["baseline"]


def _say(reg: Registry, line: str) -> None:
    with reg.print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _run(target, source, env):
    from iree_build.bench.compare import is_regression
    from iree_build.bench.runner import lines_for, run_benchmark

    reg = registry(env)
    bench = reg.bench_by_result[target[0].get_abspath()]
    base = reg.build_dir.get_abspath()
    data_files.ensure(
        env,
        (os.path.join(base, p) for p in (*bench.spec.inputs, *bench.spec.parameters) if isinstance(p, str)),
    )
    result = run_benchmark(bench.spec, reg.build_dir.get_abspath(), _baseline(reg))
    with reg.ran_lock:
        reg.bench_ran[bench.spec.name] = result
    for line in lines_for(result):
        _say(reg, line)
    if result.status == "failed":
        return f"benchmark {bench.spec.name} failed"
    if result.status == "skipped" and options.option("iree-require-devices"):
        return (
            f"benchmark {bench.spec.name} could not run and --iree-require-devices is set: {result.message}"
        )
    if is_regression(result):
        return f"benchmark {bench.spec.name} is slower than the baseline"
    return 0


set_strfunction(_run, None)  # the BENCH line is the progress line
BENCH_ACTION = ExplicitAction(
    _run,
    signature=lambda t, s, env: "benchmark " + registry(env).bench_by_result[t[0].get_abspath()].spec.name,
    cmdstr="",
    exclusive=True,
)


def _manifest_text(target, source, env) -> str:
    return manifest_json([b.spec for b in registry(env).benchmarks])


def _write_manifest(target, source, env):
    atomic_write_text(str(target[0]), _manifest_text(target, source, env))
    return 0


set_strfunction(_write_manifest, None)
MANIFEST_ACTION = ExplicitAction(_write_manifest, signature=_manifest_text, cmdstr="")


@checked("iree_benchmark")
def IreeBenchmark(
    env,
    name: str,
    module,
    function: str | None = None,
    inputs: Sequence = (),
    devices: Sequence[str] | None = None,
    repetitions: int = 5,
    min_time: float | str = 0.5,
    warmup: float = 0.1,
    flops: float | None = None,
    bytes: float | None = None,
    threshold: float = 0.10,
    tags: Sequence[str] = (),
    parameters: Sequence = (),
    parameter_scope: str = "model",
    flagfile: Any = None,
) -> list:
    """Declare one benchmark per device (``NAME[device]``); returns the result nodes."""
    where = declared_at()
    try:
        function, inputs, _, _, _ = from_flagfile(flagfile, function, inputs)
        module_node, info, devices = module_on_devices(env, module, devices)
        if not isinstance(inputs, (list, tuple)):  # (`bytes` is an argument here)
            raise IreeBuildError(
                "inputs must be a list (of .npy paths, values, or IREE inputs like '4096x4096xf32=1')"
            )
        try:
            min_time = min_time_text(min_time)  # the numbers are the schema's; min_time is the spec's
        except ValueError as e:
            raise IreeBuildError(str(e)) from None
        tags = tuple(tags)
        declared = [_bench_input(env, v, f"{name}.input{i}.npy") for i, v in enumerate(inputs)]
        input_nodes = [n for n in declared if not isinstance(n, ValueInput)]
        param_nodes, parameter_scope = data_files.module_parameters(
            env, info, parameters, parameter_scope, name
        )
        bdir = build_dir(env, module_node)
        reg = registry(env)
        for node in [module_node, *input_nodes, *param_nodes]:
            if not node.get_abspath().startswith(bdir.get_abspath() + os.sep):
                raise IreeBuildError(
                    f"{node} lies outside the build folder {bdir.get_internal_path()}; "
                    "keep benchmarks in one variant dir or set IREE_BUILD_DIR"
                )
    except IreeBuildError as e:
        fail(e.message, where)

    nodes = []
    rel = reg.rel
    for device in devices:
        result = env.File(f"{name}.{file_part(device)}.bench.json")
        folder = reg.label_folder(env.Dir("."))
        base = f"{folder}:{name}" if folder else name
        arch = info.cpu_arch or "" if device in ("local-sync", "local-task") else ""
        try:
            emulator = emulator_for(env, arch, info.emulator)
        except IreeBuildError as e:
            fail(e.message, where)
        spec = BenchSpec(
            name=f"{base}[{lane_label(device, arch)}]",
            base=base,
            device=device,
            module=rel(module_node),
            function=function or "",
            result=rel(result),
            inputs=tuple(i if isinstance(i, ValueInput) else rel(i) for i in declared),
            declared_at=where,
            repetitions=repetitions,
            min_time=min_time,
            warmup=float(warmup),
            flops=None if flops is None else float(flops),
            bytes=None if bytes is None else float(bytes),
            threshold=float(threshold),
            tags=tags,
            parameters=tuple(rel(n) for n in param_nodes),
            parameter_scope=parameter_scope,
            arch=arch,
            emulator=emulator,
        )
        selected = command_line_selection(env).matches(
            spec.name,
            device,
            spec.tags,
            (source_folder(env), env.Dir(".").get_internal_path().replace(os.sep, "/")),
            arch,
        )
        nodes.append(
            _register(
                env, DeclaredBenchmark(spec, result, selected), [module_node, *input_nodes, *param_nodes]
            )
        )
    return nodes


def _bench_input(env, value: Any, target_name: str):
    """A literal in IREE's syntax is made by the benchmark tool itself (no file to carry);
    anything else is a data file in the build tree."""
    from iree_build.values.iree_syntax import IreeValue, is_iree_value, parse

    if is_iree_value(value):
        value = parse(value)
    if isinstance(value, IreeValue) and value.is_literal and is_value_input(value.text):
        return ValueInput(value.text)
    return data_files.materialize(env, value, target_name)


def _register(env, bench: DeclaredBenchmark, sources: list):
    """Make one declared benchmark a target under ``scons bench`` and in the manifest."""
    reg = registry(env)
    if any(b.spec.name == bench.spec.name for b in reg.benchmarks):
        fail(f"benchmark {bench.spec.name} is already declared in this folder", bench.spec.declared_at)
    result = bench.result
    reg.benchmarks.append(bench)
    reg.bench_by_result[result.get_abspath()] = bench
    env.Command(result, data_files.sources_for(env, [result], sources), BENCH_ACTION)
    env.AlwaysBuild(result)
    env.NoCache(result)
    lock = env.File(f"#.iree_device_{file_part(bench.spec.device)}.lock")
    env.SideEffect(lock, result)
    env.Ignore(env.Dir("#"), lock)
    d = result.dir
    while d is not None:  # a plain `scons` builds folders' contents: not benchmarks
        env.Ignore(d, result)
        d = None if d is env.Dir("#") else d.up()
    if bench.selected:
        env.Alias("bench", result)
    help_summary.note_test(env, bench)

    manifest = env.File(reg.build_dir.File(MANIFEST_NAME))
    if reg.once("bench manifest"):
        env.Command(manifest, [], MANIFEST_ACTION)
        env.Alias("bench", manifest)
    _baseline(reg)  # read now: a bad baseline file stops the build before anything is measured
    if "bench" in SCons.Script.COMMAND_LINE_TARGETS and reg.once("bench summary"):
        # Imported now, not in the exit hook: at exit, Python refuses the thread
        # machinery (concurrent.futures) the runner's modules load.
        from iree_build.bench import runner  # noqa: F401
        from iree_build.bench.record import now

        reg.bench_state["started"] = now()
        atexit.register(_summary, reg)
    return result


iree_benchmark = env_last(
    IreeBenchmark,
    "iree_benchmark",
    """Declare a benchmark of ``module``'s ``function`` (default: its only export, as for a
    test), one per device (``name[device]``).""",
)


def _summary(reg: Registry) -> None:
    """After the build: benchmarks that could not run, the run's files, the report line."""
    from iree_build.bench.record import BenchResult
    from iree_build.bench.runner import finish_run

    if SCons.Script.GetOption("clean") or SCons.Script.GetOption("no_exec"):
        return
    results = []
    for bench in (b for b in reg.benchmarks if b.selected):
        ran = reg.bench_ran.get(bench.spec.name)
        if ran is None:
            failed = bench.result.get_state() == SCons.Node.failed
            ran = BenchResult(
                bench.spec.name,
                bench.spec.base,
                bench.spec.device,
                "failed" if failed else "skipped",
                "its module or data failed to build"
                if failed
                else "not run: the build stopped earlier (use -k)",
            )
            _say(reg, f"{'FAIL' if failed else 'SKIP'} {ran.name} ({ran.message})")
        results.append(ran)
    if not results:
        return
    save = options.option("iree-bench-save")
    save = os.path.join(SCons.Script.GetLaunchDir(), save) if save else None
    try:
        for line in finish_run(
            results,
            reg.build_dir.get_abspath(),
            reg.bench_state["started"],
            save,
            reg.bench_state.get("baseline"),
        ):
            _say(reg, line)
    except OSError as e:
        _say(reg, f"could not keep the benchmark run: {e}")

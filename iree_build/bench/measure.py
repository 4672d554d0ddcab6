"""One measurement: run ``iree-benchmark-module`` and read its JSON.

The tool (Google Benchmark inside the runtime wheel) creates the device, loads
the module and uploads the inputs *before* it starts timing; the timed loop
holds only the calls (``iree_vm_invoke`` of the function, which waits for the
device and allocates the outputs). Each repetition reports the mean time per
call over its iterations; we read those from ``--benchmark_format=json``
(``run_type == "iteration"`` entries), never from the console text.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iree_build.bench.spec import BenchSpec, ValueInput
from iree_build.errors import IreeBuildError
from iree_build.testing.devices import canonical_device, runtime_error_text
from iree_build.testing.emulation import Lane
from iree_build.testing.manifest import resolve

TOOL = "iree-benchmark-module"
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


class BenchError(IreeBuildError):
    """The benchmark could not be measured; the message is one line."""


@dataclass(frozen=True)
class Measurement:
    """What one run of the tool gave: per-repetition times and its context."""

    times_ms: tuple[float, ...]  # mean wall time per call, one per repetition
    cpu_times_ms: tuple[float, ...]  # process CPU time per call (all threads)
    iterations: tuple[int, ...]  # calls per repetition
    context: dict[str, Any]  # Google Benchmark's context (host, CPUs, library version)
    command: tuple[str, ...]


def find_tool() -> str:
    """The native ``iree-benchmark-module`` of the installed runtime package.

    The binary inside the package, not the console-script wrapper on PATH: it is
    there even when the wheel was installed with ``pip --target`` (no scripts).
    """
    spec = importlib.util.find_spec("iree._runtime_libs")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        exe = Path(folder) / TOOL
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    found = shutil.which(TOOL)
    if found:
        return found
    raise BenchError(f"{TOOL} not found: install iree-base-runtime (it ships the tool)")


def command(spec: BenchSpec, base_dir: str | os.PathLike[str], tool: str) -> list[str]:
    """The tool's command line for ``spec`` (paths resolved inside ``base_dir``)."""
    args = [tool, f"--module={resolve(base_dir, spec.module)}", f"--device={canonical_device(spec.device)}"]
    if spec.function:
        args.append(f"--function={spec.function}")
    args += [
        f"--input={i.text}" if isinstance(i, ValueInput) else f"--input=@{resolve(base_dir, i)}"
        for i in spec.inputs
    ]
    args += [f"--parameters={spec.parameter_scope}={resolve(base_dir, p)}" for p in spec.parameters]
    args += [
        "--benchmark_format=json",
        f"--benchmark_repetitions={spec.repetitions}",
        f"--benchmark_min_time={spec.min_time}",
        f"--benchmark_min_warmup_time={spec.warmup:g}",
        "--benchmark_enable_random_interleaving=false",
    ]
    return args


def _first_line(*texts: str) -> str:
    """The first non-empty line of the first text that has one (JSON output is no message)."""
    for text in texts:
        if (text or "").lstrip().startswith("{"):
            continue
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()[:400]
    return ""


def _signal_name(number: int) -> str:
    """``SIGILL`` reads better than 4 (and says: code built for a CPU this one is not)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def parse_output(
    stdout: str, repetitions: int
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...], dict[str, Any]]:
    """Per-repetition times (ms) from the tool's JSON; BenchError if it is not usable."""
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError:
        raise BenchError(f"{TOOL} printed no JSON: {_first_line(stdout) or 'empty output'}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise BenchError(f"{TOOL} JSON has no 'benchmarks' list")
    runs = [b for b in doc["benchmarks"] if isinstance(b, dict) and b.get("run_type") == "iteration"]
    errors = [str(b.get("error_message", "")) for b in runs if b.get("error_occurred")]
    if errors:
        raise BenchError(f"{TOOL} reported an error: {runtime_error_text(Exception(errors[0]))}")
    if len(runs) != repetitions:
        raise BenchError(f"{TOOL} gave {len(runs)} repetition(s), expected {repetitions}")
    try:
        times = tuple(float(b["real_time"]) * _UNIT_MS[b["time_unit"]] for b in runs)
        cpu = tuple(float(b["cpu_time"]) * _UNIT_MS[b["time_unit"]] for b in runs)
        iterations = tuple(int(b["iterations"]) for b in runs)
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{TOOL} JSON entry lacks a usable field: {exc}") from None
    context = doc["context"] if isinstance(doc.get("context"), dict) else {}
    return times, cpu, iterations, context


def measure(
    spec: BenchSpec,
    base_dir: str | os.PathLike[str],
    timeout: float | None = None,
    tool: str | None = None,
    lane: Lane | None = None,
) -> Measurement:
    """Run the benchmark once (all its repetitions) in a child process; with an emulated
    ``lane``, that architecture's tool under its emulator."""
    if lane is not None:
        emulated = lane.command(TOOL)
        args = [*emulated[:-1], *command(spec, base_dir, emulated[-1])]
    else:
        args = command(spec, base_dir, tool or find_tool())
    files = [spec.module, *(i for i in spec.inputs if isinstance(i, str)), *spec.parameters]
    for path in (resolve(base_dir, f) for f in files):
        if not path.is_file():
            raise BenchError(f"{path} is missing (build it first)")
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{TOOL} took longer than {timeout:g} s") from None
    except OSError as exc:
        raise BenchError(f"cannot start {TOOL}: {exc}") from None
    if proc.returncode != 0:
        try:  # an error inside the timed loop still comes as JSON, with its message
            parse_output(proc.stdout, spec.repetitions)
        except BenchError as exc:
            if "reported an error" in exc.message:
                raise
        why = runtime_error_text(Exception(_first_line(proc.stderr, proc.stdout) or "no message"))
        code = proc.returncode if proc.returncode >= 0 else _signal_name(-proc.returncode)
        raise BenchError(f"{TOOL} failed ({code}): {why}")
    times, cpu, iterations, context = parse_output(proc.stdout, spec.repetitions)
    return Measurement(times, cpu, iterations, context, tuple(args))

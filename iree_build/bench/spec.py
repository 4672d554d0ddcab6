"""The benchmark manifest, ``iree_benchmarks.json``, beside the test manifest.

A sibling file rather than a list inside ``iree_tests.json``: the two formats
then evolve separately (the test manifest is being reshaped), a build with
benchmarks and no tests needs no test manifest, and an older test runner never
meets an unknown key. Paths are relative to the manifest's folder and may not
leave it (the checks of :mod:`iree_build.testing.manifest`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from iree_build.errors import IreeBuildError
from iree_build.testing.manifest import check_relative_path, manifest_error
from iree_build.testing.selection import check_tag
from iree_build.util.atomic import atomic_write_text

FORMAT = "iree_build.benchmarks/1"
MANIFEST_NAME = "iree_benchmarks.json"

_MIN_TIME = re.compile(r"(\d+(\.\d*)?|\.\d+)s|[1-9]\d*x")
_VALUE = re.compile(r"(\d+x)*(i|si|ui|f|bf)\d+=[^\n]*")


@dataclass(frozen=True)
class ValueInput:
    """An input in IREE's tool syntax, made by the tool itself: ``4096x4096xf32=1``.

    Large benchmark inputs whose values do not matter (a matmul's time does not
    depend on them) need no file in the build tree to be carried to the device.
    """

    text: str

    def to_json(self) -> dict[str, str]:
        return {"value": self.text}


def is_value_input(text: object) -> bool:
    """``"4096x4096xf32=1"``, ``"f32=0.5"``, ``"2x2xi32=1 2 3 4"``: IREE's --input= syntax."""
    return isinstance(text, str) and _VALUE.fullmatch(text) is not None


def _input(raw: Any) -> str | ValueInput:
    if isinstance(raw, dict) and set(raw) == {"value"} and is_value_input(raw["value"]):
        return ValueInput(raw["value"])
    if isinstance(raw, dict):
        raise ValueError(f"input {raw!r:.60} is not {{'value': 'SHAPExTYPE=VALUE'}}")
    return check_relative_path(raw)


@dataclass(frozen=True)
class BenchSpec:
    """One declared benchmark on one device; paths relative to the manifest dir."""

    name: str  # "mm[local-task]"
    base: str  # "mm"
    device: str
    module: str
    function: str
    inputs: tuple[str | ValueInput, ...]  # a file (relative path) or a value the tool makes
    result: str  # this benchmark's latest result file
    declared_at: str
    repetitions: int = 5
    min_time: str = "0.5s"  # Google Benchmark's --benchmark_min_time: "0.5s" or "100x"
    warmup: float = 0.1  # seconds run before measuring (--benchmark_min_warmup_time)
    flops: float | None = None  # work of one call, for GFLOP/s
    bytes: float | None = None  # bytes one call moves, for GB/s
    threshold: float = 0.10  # slower than the baseline by more than this fraction: regression
    tags: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    parameter_scope: str = "model"
    arch: str = ""  # CPU architecture the module's code needs on a local device ("" = any)
    emulator: tuple[str, ...] = ()  # how that code runs on a machine of another architecture

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}
        doc["inputs"] = [i.to_json() if isinstance(i, ValueInput) else i for i in self.inputs]
        return doc


def min_time_text(value: Any) -> str:
    """``min_time=`` as Google Benchmark spells it: seconds (0.5 -> "0.5s") or "100x"."""
    if isinstance(value, bool):
        raise ValueError(f"min_time must be seconds (a number) or 'Nx' iterations, not {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"min_time must be more than 0 seconds, not {value!r}")
        return f"{float(value):g}s"
    if (
        isinstance(value, str)
        and _MIN_TIME.fullmatch(value)
        and (value.endswith("x") or float(value[:-1]) > 0)
    ):
        return value
    raise ValueError(f"min_time must be seconds (0.5 or '0.5s') or iterations ('100x'), not {value!r}")


def check_numbers(repetitions: Any, warmup: Any, flops: Any, nbytes: Any, threshold: Any) -> None:
    """The numeric arguments of a benchmark; ValueError with one line naming the argument."""
    if isinstance(repetitions, bool) or not isinstance(repetitions, int) or repetitions < 1:
        raise ValueError(f"repetitions must be a whole number >= 1, not {repetitions!r}")
    for key, value, allow_none in (
        ("warmup", warmup, False),
        ("flops", flops, True),
        ("bytes", nbytes, True),
        ("threshold", threshold, False),
    ):
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{key} must be a number, not {value!r}")
        if value < 0 or (key in ("flops", "bytes") and value == 0):
            raise ValueError(
                f"{key} must be {'more than' if key in ('flops', 'bytes') else 'at least'} 0, not {value!r}"
            )


_fail = manifest_error


def _parse(path: Path, index: int, raw: Any) -> BenchSpec:
    if not isinstance(raw, dict):
        raise _fail(path, f"benchmarks[{index}] is not an object")
    label = raw.get("name") if isinstance(raw.get("name"), str) else f"benchmarks[{index}]"
    known = {f.name for f in fields(BenchSpec)}
    required = ("name", "base", "device", "module", "function", "inputs", "result", "declared_at")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _fail(path, f"benchmark {label!r} is missing key(s): {', '.join(missing)}")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(path, f"benchmark {label!r} has unknown key(s): {', '.join(unknown)}")
    try:
        for key in ("name", "base", "device", "function", "declared_at", "parameter_scope", "arch"):
            if key in raw and not isinstance(raw[key], str):
                raise ValueError(f"{key!r} must be a string")
        for key in ("inputs", "parameters", "tags", "emulator"):
            if not isinstance(raw.get(key, []), list):
                raise ValueError(f"{key!r} must be a list")
        values = dict(raw)
        values["module"] = check_relative_path(raw["module"])
        values["result"] = check_relative_path(raw["result"])
        values["inputs"] = tuple(_input(p) for p in raw["inputs"])
        values["parameters"] = tuple(check_relative_path(p) for p in raw.get("parameters", []))
        values["tags"] = tuple(check_tag(t) for t in raw.get("tags", []))
        if not all(isinstance(w, str) and w for w in raw.get("emulator", [])):
            raise ValueError("'emulator' must be a list of words (the emulator's command)")
        values["emulator"] = tuple(raw.get("emulator", []))
        values["min_time"] = min_time_text(raw.get("min_time", "0.5s"))
        check_numbers(
            raw.get("repetitions", 5),
            raw.get("warmup", 0.1),
            raw.get("flops"),
            raw.get("bytes"),
            raw.get("threshold", 0.1),
        )
    except (ValueError, IreeBuildError) as exc:  # IreeBuildError: a bad tag
        raise _fail(path, f"benchmark {label!r}: {exc}") from None
    return BenchSpec(**values)


def load_benchmarks(path: str | os.PathLike[str]) -> list[BenchSpec]:
    """Read and check a benchmark manifest; every problem is one ManifestError line."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(p, "no benchmark manifest here (run scons in the project first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(p, f"cannot read the benchmark manifest: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _fail(p, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise _fail(p, "not a benchmark manifest (JSON nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(p, f"not a benchmark manifest (expected format {FORMAT!r})")
    if not isinstance(data.get("benchmarks"), list):
        raise _fail(p, "missing key 'benchmarks' (a list)")
    specs = [_parse(p, i, raw) for i, raw in enumerate(data["benchmarks"])]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise _fail(p, f"duplicate benchmark name {spec.name!r}")
        seen.add(spec.name)
    return specs


def manifest_json(specs: list[BenchSpec]) -> str:
    """The manifest text (stable, so an unchanged declaration rewrites nothing)."""
    return json.dumps({"format": FORMAT, "benchmarks": [s.to_json() for s in specs]}, indent=2) + "\n"


def save_benchmarks(path: str | os.PathLike[str], specs: list[BenchSpec]) -> None:
    atomic_write_text(path, manifest_json(specs))

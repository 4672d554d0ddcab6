"""Test folders in the layout of ONNX's backend tests and model zoo.

::

    test_Conv2d/
      model.onnx                 (or the folder's only *.onnx)
      data.json                  (optional: {"rtol": ..., "atol": ...})
      test_data_set_0/input_0.pb input_1.pb ... output_0.pb ...
      test_data_set_1/...

Read by ``iree_onnx_test_suite`` while the SConscript is read (file names only,
plus the small ``data.json``); the tensors are converted at build time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from iree_build.errors import IreeBuildError

# The tolerances of ONNX's backend test runner (onnx.backend.test.loader), which a
# folder's data.json may override.
ONNX_RTOL, ONNX_ATOL = 1e-3, 1e-7
_DATA_SET = re.compile(r"^test_data_set_(\d+)$")
_TENSOR = re.compile(r"^(input|output)_(\d+)\.pb$")


@dataclass(frozen=True)
class DataSet:
    name: str  # test_data_set_0
    inputs: tuple[Path, ...]
    outputs: tuple[Path, ...]


@dataclass(frozen=True)
class OnnxCase:
    label: str  # the folder's name: unique within a suite, part of test names
    folder: Path
    model: Path
    data_sets: tuple[DataSet, ...]
    rtol: float | None  # from data.json (None: not given there)
    atol: float | None


def _numbered(folder: Path, kind: str) -> tuple[Path, ...]:
    found = {}
    for entry in folder.iterdir():
        m = _TENSOR.match(entry.name)
        if m and m.group(1) == kind:
            found[int(m.group(2))] = entry
    if sorted(found) != list(range(len(found))):
        missing = next(i for i in range(len(found)) if i not in found)
        raise IreeBuildError(f"{folder} has {kind}s up to {kind}_{max(found)}.pb but no {kind}_{missing}.pb")
    return tuple(found[i] for i in range(len(found)))


def _model_in(folder: Path) -> Path:
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    models = sorted(p for p in folder.glob("*.onnx") if p.is_file())
    if len(models) == 1:
        return models[0]
    if not models:
        raise IreeBuildError(f"{folder} holds no .onnx model (expected model.onnx beside test_data_set_0/)")
    raise IreeBuildError(
        f"{folder} holds several models ({', '.join(p.name for p in models)}); "
        "name it model.onnx or give the .onnx file itself"
    )


def _tolerances(folder: Path) -> tuple[float | None, float | None]:
    path = folder / "data.json"
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise IreeBuildError(f"cannot read {path} as JSON: {e}") from None
    values = []
    for key in ("rtol", "atol"):
        value = data.get(key) if isinstance(data, dict) else None
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise IreeBuildError(f"{path}: {key} must be a non-negative number, not {value!r}")
        values.append(None if value is None else float(value))
    return values[0], values[1]


def find_case(path: Path) -> OnnxCase:
    """The case a suite source names: a case folder, or the ``.onnx`` file inside one."""
    if path.is_file() and path.suffix == ".onnx":
        folder, model = path.parent, path
    elif path.is_dir():
        folder = path
        model = _model_in(folder)
    elif path.exists():
        raise IreeBuildError(f"{path} is neither a model folder nor an .onnx file")
    else:
        raise IreeBuildError(f"{path} not found")
    numbered = []
    for entry in folder.iterdir():
        m = _DATA_SET.match(entry.name)
        if m and entry.is_dir():
            numbered.append((int(m.group(1)), entry))
    if not numbered:
        raise IreeBuildError(f"{folder} has no test_data_set_N folder beside {model.name}")
    data_sets = tuple(
        DataSet(d.name, _numbered(d, "input"), _numbered(d, "output")) for _, d in sorted(numbered)
    )
    rtol, atol = _tolerances(folder)
    return OnnxCase(folder.name, folder, model, data_sets, rtol, atol)

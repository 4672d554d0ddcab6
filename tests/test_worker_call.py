"""The run worker's per-test path, made cheap (issue 24), still does what it did.

Each shortcut is checked against the long way round on real files, a real module
and real run workers: a data file read once gives the signature scons and the
runner compute, the reply carries the result file's JSON, a link out of the build
folder is refused however often the path is asked for, a file changed between two
runs is seen, one ``check`` module per device keeps each call's checks apart, and
the one-pass comparison gives the verdicts and margins of the two-pass one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from iree_build.testing import compare, manifest, signature
from iree_build.testing.check_module import CheckModules
from iree_build.testing.devices import DevicePool
from iree_build.testing.execute import run_test
from iree_build.testing.results import TestResult, indented_json, result_json
from iree_build.testing.run_pool import RunPool
from iree_build.values.arrays import load_npy, npy_bytes

IREE_COMPILE = shutil.which("iree-compile", path=str(Path(sys.executable).parent)) or shutil.which(
    "iree-compile"
)
MLIR = """
func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %r = arith.addf %a, %b : tensor<4xf32>
  return %r : tensor<4xf32>
}
func.func @same(%a: tensor<4xi32>, %b: tensor<4xi32>) -> tensor<4xi32> {
  check.expect_eq(%a, %b) : tensor<4xi32>
  return %a : tensor<4xi32>
}
"""
CPU_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=generic",
]


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if IREE_COMPILE is None:
        pytest.fail("iree-compile not found next to the test interpreter")
    out = tmp_path_factory.mktemp("worker_call")
    (out / "m.mlir").write_text(MLIR)
    done = subprocess.run(
        [IREE_COMPILE, *CPU_FLAGS, str(out / "m.mlir"), "-o", str(out / "m.vmfb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out / "m.vmfb"


def _entry(
    root: Path, name: str, function: str, inputs: list[np.ndarray], expected: list[np.ndarray]
) -> dict:
    files: dict[str, list[str]] = {"inputs": [], "expected": []}
    for key, arrays in (("inputs", inputs), ("expected", expected)):
        for i, array in enumerate(arrays):
            rel = f"{name}.{key}{i}.npy"
            (root / rel).write_bytes(npy_bytes(array))
            files[key].append(rel)
    return {
        "name": f"{name}[local-task]",
        "base": name,
        "device": "local-task",
        "module": "m.vmfb",
        "function": function,
        "inputs": files["inputs"],
        "expected": files["expected"],
        "rtol": 1e-5,
        "atol": 1e-6,
        "declared_at": "test:1",
        "result": f"{name}.result.json",
    }


@pytest.fixture
def tree(tmp_path: Path, module: Path) -> Path:
    shutil.copy(module, tmp_path / "m.vmfb")
    return tmp_path


X = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
Y = np.array([0.5, 0.25, -1.0, 8.0], np.float32)


def _batch(pool: RunPool, root: Path, entries: list[dict], run: str) -> list[TestResult]:
    specs = [manifest.spec_from_json(e) for e in entries]
    files = [str(root / e["result"]) for e in entries]
    return [
        result
        for _, result, _ in pool.run_batch(specs, str(root), ["hw"] * len(specs), files, retest=True, run=run)
    ]


def test_a_batch_writes_the_file_it_replies_with_signed_as_everyone_signs(tree: Path) -> None:
    entries = [
        _entry(tree, "ok", "add", [X, Y], [X + Y]),
        _entry(tree, "wrong", "add", [X, Y], [X - Y]),
    ]
    pool = RunPool(keep_spare=False)
    try:
        results = _batch(pool, tree, entries, "run-1")
    finally:
        pool.close()
    assert [r.status for r in results] == ["passed", "failed"]
    for entry, result in zip(entries, results, strict=True):
        text = (tree / entry["result"]).read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n"  # the file's format as before
        assert json.loads(text) == result.to_json()  # the reply is the file's JSON
        spec = manifest.spec_from_json(entry)
        # the signature of a fresh hasher that reads each file as a stream (scons, the runner)
        assert result.signature == signature.test_signature(spec, tree, signature.FileHasher(), "hw")
    assert results[0].margins and results[0].margins[0]["max_abs"] == 0.0


def test_a_file_changed_between_two_runs_is_seen_by_the_same_worker(tree: Path) -> None:
    entry = _entry(tree, "t", "add", [X, Y], [X + Y])
    pool = RunPool(keep_spare=False)
    try:
        first = _batch(pool, tree, [entry], "run-1")
        (tree / entry["expected"][0]).write_bytes(npy_bytes(X * 3))
        second = _batch(pool, tree, [entry], "run-2")
    finally:
        pool.close()
    assert first[0].status == "passed"
    assert second[0].status == "failed", second[0].message
    assert first[0].signature != second[0].signature


def test_a_link_out_of_the_folder_is_refused_every_time_it_is_asked_for(tree: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "x.npy").write_bytes(npy_bytes(X))
    (tree / "x.npy").symlink_to(outside / "x.npy")
    (tree / "sub").mkdir()
    (tree / "sub" / "in.npy").write_bytes(npy_bytes(X))
    (tree / "inner.npy").symlink_to(tree / "sub" / "in.npy")
    hasher = signature.FileHasher()
    for _ in range(2):
        with pytest.raises(manifest.PathEscapeError):
            hasher.resolve(tree, "x.npy")
        assert hasher.resolve(tree, "inner.npy") == tree / "inner.npy"  # a link that stays inside
        assert hasher.resolve(tree, "sub/in.npy") == tree / "sub" / "in.npy"
    # a folder seen plain, later a link out, in a new run (a new hasher): refused
    shutil.rmtree(tree / "sub")
    (tree / "sub").symlink_to(outside)
    (outside / "in.npy").write_bytes(npy_bytes(X))
    with pytest.raises(manifest.PathEscapeError):
        signature.FileHasher().resolve(tree, "sub/in.npy")
    # and a test reading it is an error of one line, in run_test as in the worker
    entry = _entry(tree, "t", "add", [X, Y], [X + Y])
    entry["inputs"][0] = "x.npy"
    spec = manifest.spec_from_json(entry)
    result = run_test(spec, tree, DevicePool(), files=signature.FileHasher())
    assert result.status == "error" and "leads outside" in result.message


def test_one_check_module_per_device_keeps_each_calls_checks_apart(tree: Path) -> None:
    same = np.array([1, 2, 3, 4], np.int32)
    other = np.array([1, 2, 3, 5], np.int32)
    good = manifest.spec_from_json(_entry(tree, "good", "same", [same, same], [same]))
    bad = manifest.spec_from_json(_entry(tree, "bad", "same", [same, other], [same]))
    pool, checks, hasher = DevicePool(), CheckModules(), signature.FileHasher(retain=1 << 20)
    statuses = []
    for spec in (bad, good, bad, good):
        data: dict[str, bytes] = {}
        sig = signature.test_signature(spec, tree, hasher, "hw", data) or ""
        result = run_test(spec, tree, pool, sig, files=hasher, data=data, checks=checks)
        statuses.append(result.status)
        if result.status != "passed":
            assert "1 of 1 checks failed" in result.message, result.message
    assert statuses == ["error", "passed", "error", "passed"]
    # the same verdicts without the shared module
    assert [run_test(s, tree, pool).status for s in (bad, good)] == ["error", "passed"]


def test_data_read_once_hashes_and_loads_as_read_twice(tmp_path: Path) -> None:
    arrays = [
        X,
        np.arange(40000, dtype=np.float32),  # beyond the small-file reader
        np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16),
        np.array(7, np.int64),
    ]
    hasher = signature.FileHasher(retain=1 << 20)
    for i, array in enumerate(arrays):
        path = tmp_path / f"a{i}.npy"
        path.write_bytes(npy_bytes(array))
        keep: dict[str, bytes] = {}
        digest = hasher.digest_keeping(path, keep)
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
        loaded = load_npy(path, keep[str(path)])
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(signature.KEEP_BYTES + 1))
    keep = {}
    assert hasher.digest_keeping(big, keep) == hashlib.sha256(big.read_bytes()).hexdigest()
    assert keep == {}  # too big to hold: read again when loaded
    assert hasher.retained(big) is None
    module = tmp_path / "m.bin"
    module.write_bytes(b"module bytes")
    assert hasher.digest(module, retain=True) == hashlib.sha256(b"module bytes").hexdigest()
    assert hasher.retained(module) == b"module bytes"
    params = tmp_path / "p.irpa"
    params.write_bytes(b"weights")
    assert hasher.digest(params) == hashlib.sha256(b"weights").hexdigest()
    assert hasher.retained(params) is None  # only what is asked to be kept
    small = signature.FileHasher(retain=4)  # beyond its allowance: hashed, not kept
    assert small.digest(module, retain=True) == hashlib.sha256(b"module bytes").hexdigest()
    assert small.retained(module) is None
    # bad files say what is wrong with them from their bytes as from their path
    for name, data in (("trunc.npy", npy_bytes(np.arange(100, dtype=np.float32))[:-8]), ("pickle.npy", b"")):
        if name == "pickle.npy":
            path = tmp_path / name
            np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            data = path.read_bytes()
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError) as from_path:
            load_npy(tmp_path / name)
        with pytest.raises(ValueError) as from_bytes:
            load_npy(tmp_path / name, data)
        assert str(from_path.value) == str(from_bytes.value)


def _cases() -> list[tuple[np.ndarray, np.ndarray, float | None, float | None, dict]]:
    rng = np.random.default_rng(1)
    f = rng.standard_normal(16).astype(np.float32)
    near = (f + np.float32(1e-7)).astype(np.float32)
    nan = np.array([np.nan, 1.0, np.inf, -np.inf], np.float32)
    return [
        (f, f.copy(), 1e-5, 1e-6, {}),
        (f, near, 1e-5, 1e-6, {}),
        (f, near, None, None, {}),
        (f, f + 1, 1e-5, 1e-6, {}),
        (nan, nan.copy(), 1e-5, 1e-6, {}),
        (np.array([-0.0], np.float32), np.array([0.0], np.float32), 0.0, 0.0, {}),
        (f.astype(np.float16), f.astype(np.float16), None, None, {}),
        (f.astype(np.float64), (f + 1e-9).astype(np.float64), 1e-5, 0.0, {}),
        (f.astype(ml_dtypes.bfloat16), f.astype(ml_dtypes.bfloat16), None, None, {}),
        (np.arange(4, dtype=np.int32), np.arange(4, dtype=np.int32), 1e-5, 1e-6, {}),
        (np.arange(4, dtype=np.int32), np.arange(1, 5, dtype=np.int32), None, None, {}),
        (f[:4] + 1j * f[4:8], f[:4] + 1j * f[4:8], None, None, {}),
        (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), 1e-5, 1e-6, {}),
        (f, f.reshape(4, 4), 1e-5, 1e-6, {}),
        (f, f.astype(np.float64), 1e-5, 1e-6, {}),
        (f, near, None, None, {"exact": 1.0}),
        (f, near, None, None, {"f32": 1e-3}),
    ]


def _two_pass_margins(actual, expected, rtol, atol, overrides) -> list[dict]:
    """The margins the long way (every output widened and measured, no shortcut for an
    exact match): what the one pass must give for a passing test."""
    out = []
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        a = compare._native(np.asarray(a))
        e = compare.resolve_opaque(compare._native(np.asarray(e)), a.dtype)
        if a.shape != e.shape or a.dtype != e.dtype or e.size == 0:
            continue
        tol = compare.tolerance_for(e.dtype, compare.pick(rtol, i), compare.pick(atol, i), overrides)
        if tol.mode == "approximate":
            wide = compare._compute_type(e.dtype)
            out.append(compare._approximate_margin(i, a, e, a.astype(wide), e.astype(wide), tol))
        else:
            out.append({"output": i, "mode": tol.mode})
    return out


@pytest.mark.parametrize("case", range(len(_cases())))
def test_one_pass_margins_are_the_long_ways(case: int) -> None:
    actual, expected, rtol, atol, overrides = _cases()[case]
    for outputs, wanted in (([actual], [expected]), ([actual, actual], [actual, expected]), ([actual], [])):
        message, margins = compare.judge_outputs("t", outputs, wanted, rtol, atol, overrides)
        if message is None:
            assert margins == _two_pass_margins(outputs, wanted, rtol, atol, overrides)
        else:
            assert margins == [] and message.startswith("t: ")


def test_results_are_encoded_as_json_indents_them() -> None:
    case = TestResult("f[x]", "failed", 'm\u00e9\n"q"', 1.5, "local-task", "s", details="d\x00")
    whole = TestResult(
        "f",
        "passed",
        time_ms=float("nan"),
        cases=[case],
        margins=[{"output": 0, "mode": "approximate", "max_abs": 1e-7, "used": float("inf")}],
        lane="cuda://1",
        started=1.0,
    )
    for result in (whole, case, TestResult("e", "error")):
        assert result_json(result) == json.dumps(result.to_json(), indent=2) + "\n"
    odd = [
        {"a": [], "b": {}, "c": [1, [2, {}]], "d": None, "e": True, "f": 10**20, "g": -0.0},
        {1: "a", 2.5: "b", None: "c", "x": [[]], "y": ""},
        [[], {}, [[]], [1, 2.5, "\u00e9", None, float("-inf")]],
        {"x": {"y": {"z": [1.0, {"q": "r"}, []]}}},
        np.float64(2.0),
    ]
    for value in odd:
        assert indented_json(value) == json.dumps(value, indent=2)

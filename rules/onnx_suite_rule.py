"""``iree_onnx_test_suite``: folders of ONNX models with their test data, as tests.

Each source is a folder in the layout ONNX's backend tests and model zoo share
(``iree_build.onnx.cases``): one module per model, imported with the automatic
opset policy (``iree_build.onnx.policy``), and one test per ``test_data_set_N``
and device, named ``SUITE/FOLDER[device]`` (``SUITE/FOLDER/test_data_set_N[device]``
when the folder has several). ``xfail`` and ``skip`` take entries as
``iree_check_test_suite`` does, matched against the folder's name (or
``FOLDER/test_data_set_N``); a model whose tests are expected to fail may also
fail to import or compile: its tests then report that failure.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

from iree_build.errors import IreeBuildError
from iree_build.onnx.cases import ONNX_ATOL, ONNX_RTOL, OnnxCase, find_case
from iree_build.targets.backends import BACKENDS, check_device
from iree_build.testing.device_names import file_part
from iree_build.testing.manifest import FAILED_BUILD_SUFFIX

from . import data_files, module_rule
from .arguments import checked, env_last
from .check_rule import Entry, _match
from .registry import registry
from .test_rule import DeclaredTest, build_dir, register
from .where import declared_at, fail

_LOCAL = ("local-sync", "local-task")


def _cases(env, srcs) -> list[OnnxCase]:
    cases: dict[str, OnnxCase] = {}
    for src in env.Flatten([srcs]):
        named = isinstance(src, (str, Path))
        path = Path((env.Entry(str(src)) if named else src).srcnode().get_abspath())
        if not named and path.suffix != ".onnx" and not path.is_dir():
            continue  # a Glob also finds READMEs and this suite's own outputs
        case = find_case(path)
        if case.label in cases and cases[case.label].folder != case.folder:
            raise IreeBuildError(
                f"two model folders are named {case.label} ({cases[case.label].folder} "
                f"and {case.folder}); put them in separate suites"
            )
        cases[case.label] = case
    if not cases:
        raise IreeBuildError("the suite has no sources (srcs matched no folder?)")
    return list(cases.values())


def _tolerance(value, from_folder, default, what: str) -> float:
    chosen = value if value is not None else from_folder if from_folder is not None else default
    if isinstance(chosen, bool) or not isinstance(chosen, (int, float)) or chosen < 0:
        raise IreeBuildError(f"{what} must be a non-negative number, not {chosen!r}")
    return float(chosen)


def _entry(entries, label: str, data_set: str, backends: list[str], device: str, what: str) -> str:
    """The reason of the first entry matching the folder (or folder/data set) on this device."""
    for backend in backends:
        for key in (label, f"{label}/{data_set}"):
            reason = _match(entries, key, backend, device, what)
            if reason:
                return reason
    return ""


def _names_case(entries, case: OnnxCase) -> bool:
    """Whether an entry's folder pattern matches the case (on whichever backend and device)."""
    keys = [case.label, *(f"{case.label}/{d.name}" for d in case.data_sets)]
    patterns = [entry if isinstance(entry, str) else entry[0] for entry in entries]
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns for key in keys)


@checked("iree_onnx_test_suite")
def IreeOnnxTestSuite(
    env,
    name: str,
    srcs,
    target_backends: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    flags: Sequence[str] | None = None,
    toolchain: str | None = None,
    onnx_opset: int | str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    xfail: Sequence[Entry] = (),
    skip: Sequence[Entry] = (),
) -> list:
    """Declare the suite's modules and tests; returns the test result nodes."""
    where = declared_at()
    devices = (
        [devices]
        if isinstance(devices, str)
        else list(devices or env.get("IREE_TEST_DEVICES", ["local-task"]))
    )
    try:
        if not name or "[" in name or name.startswith("/"):
            raise IreeBuildError(f"suite name {name!r} must be a plain name like 'onnx_zoo'")
        if not devices:
            raise IreeBuildError("devices is empty: name at least one HAL device, e.g. ['local-task']")
        cases = _cases(env, srcs)
        for entries, what in ((xfail, "xfail"), (skip, "skip")):
            if not isinstance(entries, (list, tuple)):
                raise IreeBuildError(f"{what} must be a list of entries, not {entries!r:.60}")
            for entry in entries:  # malformed entries fail here, not per test
                if not isinstance(entry, (str, tuple, list)):
                    raise IreeBuildError(
                        f"{what} entry {entry!r} must be 'file' or (file, backend, device[, reason])"
                    )
                _match([entry], "", "", "", what)
    except IreeBuildError as e:
        fail(e.message, where)

    results = []
    for case in cases:
        # Any xfail entry naming the model lets its import and compile fail softly;
        # its tests that are not expected to fail then report that failure.
        expected_to_fail = _names_case(xfail, case)
        module = module_rule.IreeModule(
            env,
            f"{name}/{case.label}",
            str(case.model),
            target_backends=target_backends,
            flags=flags,
            toolchain=toolchain,
            onnx_opset=onnx_opset,
            _IREE_ALLOW_FAILURE=expected_to_fail,
        )[0]
        info = registry(env).modules[module.get_abspath()]
        if expected_to_fail:
            env.Clean(module, env.File(f"{module}{FAILED_BUILD_SUFFIX}"))
        try:
            for device in devices:
                check_device(device, info.backends, info.devices)
            test_rtol = _tolerance(rtol, case.rtol, ONNX_RTOL, "rtol")
            test_atol = _tolerance(atol, case.atol, ONNX_ATOL, "atol")
            bdir = build_dir(env, module).get_abspath() + os.sep
            if not module.get_abspath().startswith(bdir):
                raise IreeBuildError(
                    f"{module} lies outside the test folder {bdir}; "
                    "keep tests in one variant dir or set IREE_BUILD_DIR"
                )
        except IreeBuildError as e:
            fail(e.message, where)
        runs_on = {
            d: [b for b in info.backends if b in BACKENDS and d in BACKENDS[b].runs_on] or info.backends
            for d in devices
        }  # the backends an xfail entry may name
        for data_set in case.data_sets:
            prefix = f"{name}/{case.label}/{data_set.name}"
            try:
                inputs = [
                    data_files.materialize(env, str(p), f"{prefix}.input{i}.npy")
                    for i, p in enumerate(data_set.inputs)
                ]
                expected = [
                    data_files.materialize(env, str(p), f"{prefix}.output{i}.npy")
                    for i, p in enumerate(data_set.outputs)
                ]
            except IreeBuildError as e:
                fail(e.message, where)
            base = f"{name}/{case.label}" if len(case.data_sets) == 1 else prefix
            for device in devices:
                try:
                    reason_skip = _entry(skip, case.label, data_set.name, runs_on[device], device, "skip")
                    reason_xfail = _entry(xfail, case.label, data_set.name, runs_on[device], device, "xfail")
                except IreeBuildError as e:
                    fail(e.message, where)
                test = DeclaredTest(
                    short=base,
                    label=device,
                    device=device,
                    module=module,
                    function="",
                    inputs=inputs,
                    expected=expected,
                    rtol=test_rtol,
                    atol=test_atol,
                    declared_at=where,
                    result=env.File(f"{prefix}.{file_part(device)}.result.json"),
                    parameters=list(info.parameters),
                    parameter_scope=info.parameter_scope,
                    arch=info.cpu_arch or "" if device in _LOCAL else "",
                    xfail=reason_xfail,
                    skip=reason_skip,
                )
                results.append(register(env, test, [module, *inputs, *expected, *info.parameters]))
    return results


iree_onnx_test_suite = env_last(
    IreeOnnxTestSuite,
    "iree_onnx_test_suite",
    """One module per model folder, one test per ``test_data_set_N`` and device.""",
)

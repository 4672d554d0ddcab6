"""The ONNX package's own test models, every one, through the rules.

``pytorch-converted`` and ``pytorch-operator`` (117 cases with onnx 1.23) ship a
``model.onnx`` with inputs and expected outputs as TensorProto files. One temporary
project declares, from the folder listing, one ``iree_module`` and one ``iree_test``
per case, runs ``scons test -k -j2`` once, and sorts each case into the stage it
reached: ``import`` (the importer failed), ``compile``, ``run`` (the test could not
run the function), ``mismatch`` (it ran, outputs differ), ``build`` (anything else
failed to build: test data...), or ``pass``.

``tests/data/onnx_expected_failures.json`` lists the failures that are the
compiler's or the ONNX importer's (case -> stage and first error); the test fails
when a case fails at another stage than listed, fails unlisted, or passes while
listed (strict: the list stays honest when the compiler improves).

Opset policy (measured with iree-base-compiler 3.13.0, onnx 1.23.2, on all 117
cases; see ``POLICY_NOTES``): the models are opset 6-12, whose old operator
forms the importer's lowering often does not handle, so every model is upgraded
to opset 17 first, except the few whose upgrade fails in ONNX's version
converter (``OWN_OPSET``); f64 models are compiled without the compiler's default
f64->f32 demotion, which produces modules that cannot run (``F64_FLAGS``).

``IREE_ONNX_SUITE_POLICY=own`` or ``=17`` runs every case at that one opset and
only reports (the test is then skipped with the counts): how the policy is re-measured.
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from conftest import Project

onnx = pytest.importorskip("onnx")

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
SUITES = ("pytorch-converted", "pytorch-operator")
EXPECTED_FILE = Path(__file__).parent / "data" / "onnx_expected_failures.json"

UPGRADE_OPSET = 17
# ONNX's version converter fails on these (Pad: "ValidationError: _v_4 in initializer
# but not in graph input"); at their own opset all but ReflectionPad2d import, compile
# and pass.
OWN_OPSET = {
    "test_ConstantPad2d", "test_ReflectionPad2d", "test_ReplicationPad2d", "test_ZeroPad2d",
    "test_operator_pad",
}
# Without it the compiler demotes f64 to f32 inside the module but keeps f64 at its
# boundary: every call fails with "buffer view byte length 48 exceeds backing buffer
# byte length 24" (an IREE bug; llvm-cpu runs f64 fine).
F64_FLAGS = ["--iree-input-demote-f64-to-f32=false"]
# The tolerances of ONNX's own backend tests.
RTOL, ATOL = 1e-3, 1e-7

POLICY_NOTES = """\
passes of 117, iree-base-compiler 3.13.0, onnx 1.23.2, llvm-cpu generic, local-task:
  own opset for all:               76 (41 compile failures: old-opset ops not legalized)
  opset 17 for all:               104 (5 Pad imports fail in the upgrade, 3 PReLU compile
                                       failures, 5 f64 run failures)
  opset 17 + OWN_OPSET table:     108
  ... + F64_FLAGS for f64 models: 113 (this policy)"""

STAGES = ("import", "compile", "build", "run", "mismatch", "pass", "missing")
STATUS_LINE = re.compile(r"^scons: \*\*\* \[(?P<target>[^\]]+)\] (?P<message>.*)$")
LOCATION = re.compile(r"^\S+:\d+:\d+: (error: )?")


def cases() -> dict[str, Path]:
    """Every case folder of the two suites, by folder name (unique across both)."""
    found: dict[str, Path] = {}
    for suite in SUITES:
        for case in sorted((DATA / suite).iterdir()):
            if (case / "model.onnx").is_file() and (case / "test_data_set_0").is_dir():
                assert case.name not in found, f"{case.name} is in two suites"
                found[case.name] = case
    return found


def _numbered(folder: Path, stem: str) -> list[Path]:
    return sorted(folder.glob(f"{stem}_*.pb"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def has_f64(model: Path) -> bool:
    m = onnx.load(str(model), load_external_data=False)
    return any(v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
               for v in [*m.graph.input, *m.graph.output])


def sconstruct(all_cases: dict[str, Path], policy: str) -> str:
    """One module and one test per case, written out (the temp SConstruct reads plainly)."""
    lines = ["from iree_rules import *", ""]
    for name, case in all_cases.items():
        if policy == "own":
            opset = None
        elif policy == "17":
            opset = UPGRADE_OPSET
        else:
            opset = None if name in OWN_OPSET else UPGRADE_OPSET
        flags = F64_FLAGS if policy == "table" and has_f64(case / "model.onnx") else None
        data = case / "test_data_set_0"
        lines.append(f"iree_module(name={name!r}, src={str(case / 'model.onnx')!r}, "
                     f"onnx_opset={opset!r}, flags={flags!r})")
        lines.append(f"iree_test(name={name!r}, module={name!r}, "
                     f"inputs={[str(p) for p in _numbered(data, 'input')]!r}, "
                     f"expected={[str(p) for p in _numbered(data, 'output')]!r}, "
                     f"rtol={RTOL!r}, atol={ATOL!r}, devices=['local-task'])")
    return "\n".join(lines) + "\n"


def _short(message: str) -> str:
    """A message without the file location or the test name in front."""
    for prefix in ("IREE import failed: ", "IREE compile failed: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    message = re.sub(r"^\S+\[local-task\]: ", "", message)
    return LOCATION.sub("", message, count=1).strip()


def classify(stderr: str, junit: Path, names: list[str]) -> dict[str, tuple[str, str]]:
    """case -> (stage, first error), from SCons' failure lines and the JUnit report."""
    outcome: dict[str, tuple[str, str]] = {}
    for line in stderr.splitlines():
        m = STATUS_LINE.match(line)
        if not m:
            continue
        target = Path(m.group("target")).name
        if target.endswith(".result.json"):
            continue  # the test itself ran and failed: the JUnit report says how
        if target.endswith(".imported.mlir"):
            case, stage = target[: -len(".imported.mlir")], "import"
        elif target.endswith(".vmfb"):
            case, stage = target[: -len(".vmfb")], "compile"
        else:  # test data, parameters...: ours to fix, never an expected failure
            case, stage = target.split(".", 1)[0], "build"
        rank = STAGES.index
        if case not in outcome or rank(stage) < rank(outcome[case][0]):
            outcome[case] = (stage, _short(m.group("message")))
    suite = ET.parse(junit).getroot().find("testsuite")
    for testcase in suite.iter("testcase"):
        case = testcase.get("name").split("[", 1)[0]
        if case in outcome:
            continue
        error, failure, skipped = (testcase.find(t) for t in ("error", "failure", "skipped"))
        if error is not None:
            outcome[case] = ("run", _short(error.get("message", "")))
        elif failure is not None:
            outcome[case] = ("mismatch", _short(failure.get("message", "")))
        elif skipped is not None:
            outcome[case] = ("missing", "skipped: " + skipped.get("message", ""))
        else:
            outcome[case] = ("pass", "")
    for case in names:
        outcome.setdefault(case, ("missing", "no test result and no build error"))
    return outcome


def table(outcome: dict[str, tuple[str, str]], seconds: float, policy: str) -> str:
    counts = Counter(stage for stage, _ in outcome.values())
    rows = [f"ONNX suite ({', '.join(SUITES)}), policy {policy!r}: "
            f"{counts['pass']} of {len(outcome)} pass, scons test -k -j2 took {seconds:.0f} s",
            f"{'stage':<10} {'cases':>5}"]
    rows += [f"{stage:<10} {counts[stage]:>5}" for stage in STAGES if counts[stage]]
    rows.append("")
    rows += [f"{stage:<9} {case:<42} {message[:110]}"
             for case, (stage, message) in sorted(outcome.items(), key=lambda kv: (kv[1][0], kv[0]))
             if stage != "pass"]
    return "\n".join(rows)


def test_onnx_backend_suite(project: Project) -> None:
    policy = os.environ.get("IREE_ONNX_SUITE_POLICY", "table")
    assert policy in ("table", "own", "17"), f"IREE_ONNX_SUITE_POLICY={policy!r}: table, own or 17"
    all_cases = cases()
    assert all_cases, f"no test cases under {DATA}"
    expected = json.loads(EXPECTED_FILE.read_text())
    assert not set(expected) - set(all_cases), (
        f"{EXPECTED_FILE.name} lists cases the onnx package does not ship: "
        f"{sorted(set(expected) - set(all_cases))}")
    assert not set(OWN_OPSET) - set(all_cases)

    project.write("SConstruct", sconstruct(all_cases, policy))
    start = time.monotonic()
    run = project.scons("test", "-k", "-j2", timeout=900)
    seconds = time.monotonic() - start
    junit = project.path("iree_test_results.xml")
    assert junit.is_file(), run.output[-3000:]
    outcome = classify(run.stderr, junit, list(all_cases))
    report = table(outcome, seconds, policy)
    print("\n" + report)

    passed = sum(1 for stage, _ in outcome.values() if stage == "pass")
    last = run.stdout.strip().splitlines()[-1]
    assert last == f"{passed} passed, {len(all_cases) - passed} failed, 0 skipped", run.output[-3000:]
    assert set(outcome) == set(all_cases), sorted(set(outcome) ^ set(all_cases))
    manifest = json.loads(project.path("iree_tests.json").read_text())
    assert len(manifest["tests"]) == len(all_cases)
    if policy != "table":
        pytest.skip(f"measurement only: policy {policy!r}, {passed} of {len(all_cases)} pass")

    problems = []
    for case, (stage, message) in sorted(outcome.items()):
        listed = expected.get(case)
        if stage == "pass":
            if listed:
                problems.append(f"{case}: passes but is listed as failing at {listed['stage']} "
                                f"(remove it from {EXPECTED_FILE.name})")
        elif not listed:
            problems.append(f"{case}: fails at {stage}, not listed: {message}")
        elif listed["stage"] != stage:
            problems.append(f"{case}: fails at {stage}, listed at {listed['stage']}: {message}")
        elif listed.get("first_error") and listed["first_error"] not in message:
            problems.append(f"{case}: fails at {stage} as listed, but with another error: {message}")
    assert not problems, "\n".join(problems) + "\n\n" + report

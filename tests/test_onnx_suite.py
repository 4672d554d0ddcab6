"""The ONNX package's own test models, every one, through ``iree_onnx_test_suite``.

``pytorch-converted`` and ``pytorch-operator`` (117 cases with onnx 1.23) ship a
``model.onnx`` beside ``test_data_set_0/input_N.pb`` and ``output_N.pb``: the
layout the suite rule reads. Two suite declarations, no per-model option: the
opset policy (``iree_build.onnx.policy``) decides per model, from the model,
whether to upgrade it, raise its ``ir_version`` first, and keep f64.

``tests/data/onnx_expected_failures.json`` lists the compiler's failures (case ->
stage and first error); they are the suites' ``xfail`` entries, so they are
strict: a listed case that passes fails the run, and each must fail the way it
is listed.

``IREE_ONNX_SUITE_OPSET=own`` (or a number) declares the suites with that one
``onnx_opset`` instead and only reports how many pass (the test is then skipped):
how the policy's gain is re-measured.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import Project

onnx = pytest.importorskip("onnx")

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
SUITES = ("pytorch-converted", "pytorch-operator")
EXPECTED_FILE = Path(__file__).parent / "data" / "onnx_expected_failures.json"
# How each listed stage shows in the test's message.
STAGE_TEXT = {"import": "the module did not build: IREE import failed: ",
              "compile": "the module did not build: IREE compile failed: ",
              "run": "", "mismatch": ""}
RESULT = re.compile(r"^(?P<word>PASS|FAIL|XFAIL|SKIP) (?P<suite>[\w-]+)/(?P<case>\w+)\[local-task\] "
                    r"\((?P<message>.*)\)$")


def cases() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for suite in SUITES:
        for case in sorted((DATA / suite).iterdir()):
            if (case / "model.onnx").is_file():
                assert case.name not in found, f"{case.name} is in two suites"
                found[case.name] = case
    return found


def sconstruct(expected: dict, opset: str | None) -> str:
    xfail = [(case, "*", "*", entry["note"][:80]) for case, entry in sorted(expected.items())]
    option = "" if opset is None else f", onnx_opset={opset if opset == 'own' else int(opset)!r}"
    return "\n".join([
        "from iree_rules import *",
        f"XFAIL = {xfail!r}",
        f"for suite in {SUITES!r}:",
        f"    iree_onnx_test_suite(name=suite, srcs=Glob({str(DATA)!r} + '/' + suite + '/*'),",
        f"                         devices=['local-task'], xfail=XFAIL{option})",
        "",
    ])


def test_onnx_backend_suite(project: Project) -> None:
    opset = os.environ.get("IREE_ONNX_SUITE_OPSET")
    all_cases = cases()
    assert len(all_cases) >= 117, f"{len(all_cases)} cases under {DATA}"
    expected = json.loads(EXPECTED_FILE.read_text())
    assert not set(expected) - set(all_cases), (
        f"{EXPECTED_FILE.name} lists cases the onnx package does not ship: "
        f"{sorted(set(expected) - set(all_cases))}")

    project.write("SConstruct", sconstruct(expected if opset is None else {}, opset))
    start = time.monotonic()
    run = project.scons("test", "-j2", *(["-k"] if opset else []), timeout=900)
    seconds = time.monotonic() - start
    outcome = {}
    for line in run.stdout.splitlines():
        m = RESULT.match(line)
        if m:
            outcome[m.group("case")] = (m.group("word"), m.group("message"))
    passed = sorted(c for c, (word, _) in outcome.items() if word == "PASS")
    print(f"\nONNX suites {', '.join(SUITES)}: {len(passed)} of {len(all_cases)} pass, "
          f"{len(outcome) - len(passed)} other, scons test -j2 took {seconds:.0f} s")
    if opset is not None:
        pytest.skip(f"measurement only: onnx_opset={opset}: {len(passed)} of {len(all_cases)} pass")

    assert run.returncode == 0, run.output[-3000:]
    assert "scons: ***" not in run.stderr, run.stderr[-3000:]
    assert set(outcome) == set(all_cases), sorted(set(outcome) ^ set(all_cases))
    problems = []
    for case, (word, message) in sorted(outcome.items()):
        listed = expected.get(case)
        if listed is None and word != "PASS":
            problems.append(f"{case}: {word} ({message})")
        elif listed is not None:
            if word != "XFAIL":
                problems.append(f"{case}: {word}, listed as failing at {listed['stage']} ({message})")
            elif STAGE_TEXT[listed["stage"]] not in message or listed["first_error"] not in message:
                problems.append(f"{case}: fails otherwise than listed ({listed['stage']}: "
                                f"{listed['first_error']}): {message}")
    assert not problems, "\n".join(problems)
    assert len(passed) == len(all_cases) - len(expected) >= 113
    assert run.stdout.strip().splitlines()[-1] == f"{len(all_cases)} passed, 0 failed, 0 skipped"
    manifest = json.loads(project.path("iree_tests.json").read_text())
    assert len(manifest["tests"]) == len(all_cases)

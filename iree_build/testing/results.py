"""Test results: the record of one run, its JSON file, JUnit XML, the summary.

A result file is also the cache entry: the runner skips a test whose stored
result passed with the same input signature.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from iree_build.testing.device_names import is_cpu_device
from iree_build.testing.manifest import write_text_atomic
from iree_build.util.atomic import rewrite_bytes
from iree_build.util.printable import one_line

RESULT_FORMAT = "iree_build.result/1"
STATUSES = ("passed", "failed", "skipped", "error", "crashed", "timeout")
FAILING = frozenset({"failed", "error", "crashed", "timeout"})
"""Statuses that fail a run: a crash or a hang is never a pass nor a skip."""
_WORDS = {"skipped": "SKIP", "crashed": "CRASH", "timeout": "TIMEOUT"}

# A GPU error after which the device (a CUDA context, a Vulkan device) is unusable in
# that process: every later call there would fail too, so its run worker is retired.
_DEVICE_FAULT = re.compile(
    r"ILLEGAL_ADDRESS|LAUNCH_FAILED|DEVICE_LOST|device lost|"
    r"CUDA_ERROR|VK_ERROR|hipError|UNAVAILABLE",
    re.IGNORECASE,
)


@dataclass
class TestResult:
    """What happened to one test. ``message`` is one line (reason or mismatch)."""

    __test__ = False  # not a pytest class

    name: str
    status: str
    message: str = ""
    time_ms: float = 0.0
    device: str = ""
    signature: str = ""
    base: str = ""
    cached: bool = False
    # A check file's test holds one result per exported function; they are what
    # is printed, counted and reported (the file's own status sums them up).
    cases: list[TestResult] = field(default_factory=list)
    expected_failure: bool = False  # failed as declared (strict xfail): counts as passed
    details: str = ""  # a crashed worker's last output, for the result file and JUnit
    # A pass's closeness per output (iree_build.testing.compare.margins): errors and the
    # largest fraction of the tolerance used.
    margins: list[dict[str, Any]] = field(default_factory=list)
    # The GPU lane it ran on (``vulkan://1``), that device's model as its driver names it,
    # and when the lane was held (seconds since the epoch): tests of one lane never overlap.
    lane: str = ""
    model: str = ""
    started: float = 0.0
    ended: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown test status {self.status!r}")
        if not self.base:
            self.base = self.name.split("[", 1)[0]

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RESULT_FORMAT,
            "name": self.name,
            "base": self.base,
            "status": self.status,
            "message": self.message,
            "time_ms": self.time_ms,
            "device": self.device,
            "signature": self.signature,
            "expected_failure": self.expected_failure,
            "cases": [c.to_json() for c in self.cases],
            **({"details": self.details} if self.details else {}),
            **({"margins": self.margins} if self.margins else {}),
            **(
                {"lane": self.lane, "model": self.model, "started": self.started, "ended": self.ended}
                if self.lane
                else {}
            ),
        }


def mark_device_fault(result: TestResult) -> bool:
    """A GPU error that leaves its device unusable in that process (an illegal address:
    ``CUDA_ERROR_ILLEGAL_ADDRESS``) is a crash of the device's context: the result
    becomes ``crashed`` and its run worker retires. True if it was one."""
    if result.status == "error" and not is_cpu_device(result.device) and _DEVICE_FAULT.search(result.message):
        result.status = "crashed"
        result.message += "; the device context is lost: the next test runs in a fresh worker"
        return True
    return False


def device_required(result: TestResult) -> TestResult:
    """Under ``--require-devices`` a test skipped for want of its device is a failure, said
    with the skip's reason (a check file's cases each, the file's reason from its first)."""
    if result.status != "skipped":
        return result
    cases = [device_required(c) for c in result.cases]
    reason = result.message or next((c.message for c in result.cases if c.message), "")
    if reason.startswith("device required: "):
        reason = reason[len("device required: ") :]
    return replace(result, status="failed", message=f"device required: {reason}", cases=cases)


def result_json(result: TestResult) -> str:
    """The text of a result file."""
    return indented_json(result.to_json()) + "\n"


def indented_json(value: Any, level: str = "") -> str:
    """``json.dumps(value, indent=2)``, character for character, for what results hold
    (dicts, lists, strings, numbers, booleans, None): the standard library's indenting
    encoder is pure Python, and encoding a small result with it cost more than running
    the test. Runs of plain values (empty containers included: ``[]``, ``{}`` either way)
    go to the C encoder, its item separator carrying the line break and indentation."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = level + "  "
        encode = _encoder(inner)
        parts: list[str] = []
        plain: dict[Any, Any] = {}
        for k, v in value.items():
            if v and isinstance(v, (dict, list, tuple)):
                if plain:
                    parts.append(inner + encode(plain)[1:-1])
                    plain = {}
                parts.append(
                    f"{inner}{_encode_string(k if isinstance(k, str) else _key(k))}: {indented_json(v, inner)}"
                )
            else:
                plain[k] = v
        if plain:
            parts.append(inner + encode(plain)[1:-1])
        return "{\n" + ",\n".join(parts) + f"\n{level}}}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        inner = level + "  "
        if not any(v and isinstance(v, (dict, list, tuple)) for v in value):
            return "[\n" + inner + _encoder(inner)(value)[1:-1] + f"\n{level}]"
        items = [inner + indented_json(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{level}]"
    return _scalar_json(value)


@functools.lru_cache(maxsize=16)
def _encoder(inner: str) -> Callable[[Any], str]:
    """The C encoder writing a run of plain values at indentation ``inner``."""
    return json.JSONEncoder(separators=(",\n" + inner, ": ")).encode


def _key(key: Any) -> str:
    """A dict key that is no string, as ``json.dumps`` writes it."""
    return str(json.loads(json.dumps({key: 0})).popitem()[0])


def _scalar_json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (_INF, -_INF):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if kind is bool or value is None:
        return "null" if value is None else "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    return json.dumps(value)  # a subclass (a numpy float, an enum): as json writes it


_INF = float("inf")


_encode_string: Any = (
    getattr(json.encoder, "c_encode_basestring_ascii", None) or json.encoder.encode_basestring_ascii
)


def write_result(result: TestResult, path: str | os.PathLike[str]) -> None:
    """Write the result file whole or not at all (it is read back as a cache entry)."""
    rewrite_bytes(path, result_json(result).encode("utf-8"))


def read_result(path: str | os.PathLike[str]) -> TestResult | None:
    """The stored result, or None if missing or unreadable (then: run again)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
            return None
        return result_from_json(data)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def result_from_json(data: dict[str, Any]) -> TestResult:
    """A result from its JSON form (result files, run workers' replies)."""
    return TestResult(
        name=str(data["name"]),
        status=str(data["status"]),
        message=str(data.get("message", "")),
        time_ms=float(data.get("time_ms", 0.0)),
        device=str(data.get("device", "")),
        signature=str(data.get("signature", "")),
        base=str(data.get("base", "")),
        expected_failure=bool(data.get("expected_failure", False)),
        details=str(data.get("details", "")),
        cases=[result_from_json(c) for c in data.get("cases", [])],
        margins=[m for m in data.get("margins", []) if isinstance(m, dict)],
        lane=str(data.get("lane", "")),
        model=str(data.get("model", "")),
        started=float(data.get("started", 0.0)),
        ended=float(data.get("ended", 0.0)),
    )


def flatten(results: Iterable[TestResult]) -> list[TestResult]:
    """What a person counts: the cases of check files, the other tests themselves."""
    out: list[TestResult] = []
    for r in results:
        if r.cases:
            out.extend(
                TestResult(
                    c.name,
                    c.status,
                    c.message,
                    c.time_ms,
                    c.device,
                    c.signature,
                    c.base,
                    cached=r.cached,
                    expected_failure=c.expected_failure,
                    details=c.details,
                    margins=c.margins,
                    lane=c.lane or r.lane,
                    model=c.model or r.model,
                    started=c.started or r.started,
                    ended=c.ended or r.ended,
                )
                for c in r.cases
            )
        else:
            out.append(r)
    return out


def counts(results: Iterable[TestResult]) -> tuple[int, int, int]:
    """(passed, failed, skipped); errors, crashes and timeouts count as failed."""
    passed = failed = skipped = 0
    for r in flatten(results):
        if r.status == "passed":
            passed += 1
        elif r.status == "skipped":
            skipped += 1
        else:
            failed += 1
    return passed, failed, skipped


def summary_line(results: Iterable[TestResult]) -> str:
    """``"N passed, N failed, N skipped"`` (errors, crashes and timeouts count as failed)."""
    passed, failed, skipped = counts(results)
    return f"{passed} passed, {failed} failed, {skipped} skipped"


def _fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 0.1 else f"{ms:.1f} ms"


def result_line(result: TestResult) -> str:
    """The line printed per test (one per case for a check file): ``PASS name (0.4 ms)``,
    ``FAIL name (why)``, ``XFAIL name (why)``, ``CRASH name (SIGSEGV ...)``, ``TIMEOUT name (...)``."""
    if result.cases:
        return "\n".join(result_line(c) for c in flatten([result]))
    return one_line(_line(result))  # a reason's newline would print a forged verdict


def _line(result: TestResult) -> str:
    # Where a GPU test ran (its lane: "on cuda://1"), unless it was skipped or taken from
    # the cache.
    where = f" on {result.lane}" if result.lane and result.status != "skipped" and not result.cached else ""
    if result.status == "passed" and result.expected_failure:
        return f"XFAIL {result.name} ({'cached' if result.cached else result.message}){where}"
    if result.status == "passed":
        detail = "cached" if result.cached else _fmt_ms(result.time_ms)
        return f"PASS {result.name} ({detail}){where}"
    word = _WORDS.get(result.status, "FAIL")
    message = result.message
    if message.startswith(result.name + ": "):  # the name is already on the line
        message = message[len(result.name) + 2 :]
    return f"{word} {result.name} ({message}){where}"


def margin_text(m: dict[str, Any]) -> str:
    """One output's margin in words: ``12% of tolerance used (max abs err 1.2e-05, ...)``."""
    if m.get("mode") != "approximate":
        return "exact match"
    return (
        f"{100 * float(m.get('used', 0)):.3g}% of tolerance used (max abs err "
        f"{float(m.get('max_abs', 0)):.3g}, max rel err {float(m.get('max_rel', 0)):.3g}; "
        f"atol {float(m.get('atol', 0)):.3g}, rtol {float(m.get('rtol', 0)):.3g})"
    )


_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (runtime messages may hold any)."""
    return _XML_BAD.sub("?", text)


def junit_xml(results: Sequence[TestResult], suite: str = "iree_build") -> str:
    """JUnit XML text: one ``<testsuite>``, one ``<testcase>`` per result (or case).

    Written as text, not through ``ElementTree``: a suite of thousands of cases is
    written after every run, and building the tree cost more than the tests."""
    results = flatten(results)
    _, _, skipped = counts(results)
    failures = sum(1 for r in results if r.status == "failed")
    errors = sum(1 for r in results if r.status in FAILING and r.status != "failed")
    total_s = sum(r.time_ms for r in results) / 1000.0
    attrs = (
        f'name={_attr(suite)} tests="{len(results)}" failures="{failures}" '
        f'errors="{errors}" skipped="{skipped}" time="{total_s:.3f}"'
    )
    out = ['<?xml version="1.0" encoding="utf-8"?>', f"<testsuites {attrs}>", f"  <testsuite {attrs}>"]
    for r in results:
        head = f'    <testcase classname={_attr(r.base)} name={_attr(r.name)} time="{r.time_ms / 1000.0:.6f}"'
        inner: list[str] = []
        if r.margins:
            inner.append("      <properties>")
            for m in r.margins:
                name = _attr(f"output {m.get('output')} margin")
                inner.append(f"        <property name={name} value={_attr(margin_text(m))} />")
            inner.append("      </properties>")
        message = _xml_safe(r.message)
        if r.status in FAILING:
            tag = "failure" if r.status == "failed" else "error"
            inner.append(
                f"      <{tag} message={_attr(message)} type={_attr(r.status)}>{xml_escape(message)}</{tag}>"
            )
            if r.details:
                inner.append(f"      <system-err>{xml_escape(_xml_safe(r.details))}</system-err>")
        elif r.status == "skipped":
            inner.append(f"      <skipped message={_attr(message)} />")
        if inner:
            out.extend([head + ">", *inner, "    </testcase>"])
        else:
            out.append(head + " />")
    out.extend(["  </testsuite>", "</testsuites>", ""])
    return "\n".join(out)


def xml_escape(text: str) -> str:
    """XML character data (``xml.sax.saxutils`` would import ``urllib`` for three replaces)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    """A double-quoted XML attribute value, line breaks kept as character references."""
    escaped = xml_escape(_xml_safe(text)).replace('"', "&quot;")
    return '"' + escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") + '"'


def write_junit(
    results: Sequence[TestResult], path: str | os.PathLike[str], suite: str = "iree_build"
) -> None:
    """Write the JUnit XML report atomically."""
    write_text_atomic(path, junit_xml(results, suite))

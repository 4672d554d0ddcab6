"""``iree-run-module`` flags as IREE's test folders carry them: ``run_module_io_flags.txt``.

A flag file holds one flag a line (``--input=2x3xf32=@input_0.bin``,
``--expected_output=...``, ``--function=main``); blank lines and ``#`` comments
are skipped. Files it names are relative to the flag file's folder, where IREE's
suites run the tool. The same reader takes a configuration's
``iree_run_module_flags`` list (``--device=local-sync``, thresholds).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from iree_build.errors import IreeBuildError

from .iree_syntax import IreeValue, number_files, parse
from .tolerance import THRESHOLD_FLAGS

_TAKEN = (
    "input",
    "expected_output",
    "function",
    "device",
    "expected_rtol",
    "equality_mode",
    *THRESHOLD_FLAGS,
)
# Flags of iree-run-module that change nothing a test here judges.
_HARMLESS = ("print_statistics", "print_max_element_count", "trace_execution")


@dataclass
class RunFlags:
    """What a set of iree-run-module flags asks for, in the terms of a test."""

    function: str = ""
    inputs: list[IreeValue] = field(default_factory=list)
    expected: list[IreeValue] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    compare: dict[str, float] = field(default_factory=dict)  # threshold overrides ("f32", "rtol");
    # "exact": 1 for --equality_mode=exact (IREE treats any mode but "approximate" so)

    def merged(self, other: RunFlags) -> RunFlags:
        """These flags followed by ``other`` (a configuration's flags, then a test's file)."""
        return RunFlags(
            other.function or self.function,
            [*self.inputs, *other.inputs],
            [*self.expected, *other.expected],
            other.devices or self.devices,
            {**self.compare, **other.compare},
        )


def parse_flags(flags: Iterable[tuple[str, str]], base_dir: str | os.PathLike[str] = "") -> RunFlags:
    """``flags`` as (where, text) pairs; a value's file is joined to ``base_dir``."""
    out = RunFlags()
    for where, text in flags:
        try:
            _one(out, text, base_dir)
        except IreeBuildError as e:
            raise IreeBuildError(e.message, where=where) from None
    out.inputs = number_files(out.inputs)
    out.expected = number_files(out.expected)
    return out


def _one(out: RunFlags, text: str, base_dir: str | os.PathLike[str]) -> None:
    if not text.startswith("--"):
        raise IreeBuildError(f"{text!r:.80} is not a flag (--name=value)")
    name, eq, value = text[2:].partition("=")
    if name in _HARMLESS:
        return
    if name not in _TAKEN:
        from iree_build.validation import did_you_mean

        raise IreeBuildError(
            f"--{name} is not an iree-run-module flag this build takes"
            f"{did_you_mean(name, list(_TAKEN))}; it takes --{', --'.join(_TAKEN)}"
        )
    if not eq:
        raise IreeBuildError(f"--{name} needs a value (--{name}=...)")
    if name in ("input", "expected_output"):
        if value == "(ignored)":
            raise IreeBuildError(
                "--expected_output=(ignored) is not supported: give every output's expected value"
            )
        parsed = parse(value)
        if parsed.file and not os.path.isabs(parsed.file):
            parsed = IreeValue(
                parsed.text,
                parsed.element,
                parsed.shape,
                os.path.join(base_dir, parsed.file),
                parsed.npy_index,
                parsed.array,
            )
        (out.inputs if name == "input" else out.expected).append(parsed)
    elif name == "function":
        out.function = value
    elif name == "device":
        out.devices.append(value)
    elif name == "equality_mode":
        if value == "approximate":
            out.compare.pop("exact", None)
        else:  # IREE treats every value but "approximate" as exact (byte) equality
            out.compare["exact"] = 1.0
    else:
        try:
            number = float(value)
        except ValueError:
            raise IreeBuildError(f"--{name}={value!r} is not a number") from None
        if not number >= 0 or number == float("inf"):
            raise IreeBuildError(f"--{name}={value} must be a finite number >= 0")
        out.compare["rtol" if name == "expected_rtol" else THRESHOLD_FLAGS[name]] = number


def read_flagfile(path: str | os.PathLike[str]) -> RunFlags:
    """A flag file's flags; every problem one line naming ``FILE:LINE``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is no part of a flag
    except (OSError, UnicodeDecodeError) as e:
        raise IreeBuildError(f"cannot read flag file {p}: {e}") from None
    lines = [(f"{p}:{n}", line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    return parse_flags([(w, t) for w, t in lines if t and not t.startswith("#")], p.parent)

"""Making the compiler's messages readable in a build log."""

from __future__ import annotations

import re

# llvmlite's LLVM knows a few CPU features newer than the compiler's; the compiler
# warns once per feature and per executable and then ignores them. Pure noise.
_NOISE = re.compile(r"is not a recognized feature for this target \(ignoring feature\)")
_LOCATED = re.compile(r"^(?P<loc>[^\s:][^:]*:\d+:\d+): (?P<kind>error|warning|note|remark): (?P<msg>.*)$")


def clean_diagnostics(text: str) -> str:
    lines = [line for line in text.splitlines() if not _NOISE.search(line)]
    return "\n".join(lines).strip("\n")


def first_located_error(text: str) -> str | None:
    """The first ``file:line:col: error: message`` line, or None."""
    for line in text.splitlines():
        m = _LOCATED.match(line)
        if m and m.group("kind") == "error":
            return line.strip()
    return None


def first_error(text: str) -> str | None:
    """The first ``file:line:col: error: message`` line, for a one-line failure summary."""
    located = first_located_error(text)
    if located:
        return located
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    return None

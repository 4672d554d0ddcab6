"""Text printed one a line and written as UTF-8 to the reports: test names, reasons, messages.

A newline in a name or a declared reason would print a forged verdict line, an escape
sequence would rewrite the terminal, and an unpaired surrogate (what a file name that is
not UTF-8 decodes to) cannot be written to the reports at all.
"""

from __future__ import annotations

import re

UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (C0, DEL, C1) and unpaired surrogates."""


def printable(text: str) -> bool:
    """Whether ``text`` can stand on a line of its own and be written as UTF-8."""
    return UNPRINTABLE.search(text) is None


def one_line(text: str) -> str:
    """``text`` with each unprintable character written as its Python escape (``\\n``, ``\\x1b``)."""
    return UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)

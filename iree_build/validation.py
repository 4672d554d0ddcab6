"""Value checks shared by rule arguments, the test manifest and toolchain presets.

Every check returns the (normalized) value or raises ``IreeBuildError`` whose
message reads ``<what is wrong>; <what is allowed>``; the caller puts the place
in front (``iree_test rtol: ...``, ``toolchains/x.toml: flags: ...``,
``iree_tests.json: test 't' rtol: ...``), so the same mistake reads the same
wherever it is made. Standard library only: the standalone runner uses it.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from typing import Any, cast

from .errors import IreeBuildError

_TYPE_NAMES = {
    bool: "a bool",
    int: "an int",
    float: "a float",
    str: "a string",
    list: "a list",
    tuple: "a tuple",
    dict: "a dict",
    type(None): "None",
    bytes: "bytes",
    set: "a set",
}


def type_name(value: Any) -> str:
    """``a bool``, ``a list``, ``a Foo object``: the kind of value, in words."""
    name = _TYPE_NAMES.get(type(value))
    if name:
        return name
    if callable(value) and not hasattr(value, "get_abspath") and not isinstance(value, type):
        return "a function"
    name = type(value).__name__
    return (
        f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name} object"
        if name != "object"
        else "a plain object"
    )


def describe(value: Any, limit: int = 48) -> str:
    """A short, readable rendering of ``value`` for messages (never an address)."""
    if isinstance(value, (str, bytes, bool, numbers.Number, type(None))) or (
        isinstance(value, (list, tuple, dict)) and type(value) in (list, tuple, dict)
    ):
        text = repr(value)
    else:
        text = f"<{type(value).__name__}>"
        if hasattr(value, "get_abspath"):  # a SCons node: its path is what a user knows it by
            text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wrong_type(value: Any, expected: str, allowed: str = "") -> IreeBuildError:
    """``True is a bool, not a string; give ...``."""
    if value is None:
        wrong = f"None is not {expected}"
    else:
        wrong = f"{describe(value)} is {type_name(value)}, not {expected}"
    return IreeBuildError(f"{wrong}; {allowed}" if allowed else wrong)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a near name exists, else ``''``."""
    if not isinstance(word, str):
        return ""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}  # the same name in other case first: 'F32' is f32
    close = [lower[word.lower()]] if word.lower() in lower else []
    if not close:
        close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 3:  # a known name with something added or cut off
        close = [c for c in choices if len(c) >= 3 and (c.startswith(word) or word.startswith(c))][:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


def listing(choices: Sequence[str], limit: int = 12) -> str:
    """``a, b, c`` or ``a, b, ... (40 in all)`` for long lists."""
    choices = list(choices)
    if len(choices) <= limit:
        return ", ".join(choices)
    return ", ".join(choices[:limit]) + f", ... ({len(choices)} in all)"


def one_of(value: Any, choices: Sequence[str], noun: str, more: str = "") -> str:
    """``value`` if it is one of ``choices``; else unknown-NOUN with a did-you-mean."""
    if not isinstance(value, str):
        raise wrong_type(value, f"a {noun} name", f"known {noun}s: {listing(choices)}")
    if value in choices:
        return value
    if not value:
        raise IreeBuildError(f"the {noun} name is empty; known {noun}s: {listing(choices)}{more}")
    raise IreeBuildError(
        f"unknown {noun} '{value}'{did_you_mean(value, choices)}; known {noun}s: {listing(choices)}{more}"
    )


def string(value: Any, allowed: str, empty: bool = False) -> str:
    """A string (non-empty unless ``empty``)."""
    if not isinstance(value, str):
        raise wrong_type(value, "a string", allowed)
    if not empty and not value.strip():
        raise IreeBuildError(f"{value!r} is empty; {allowed}")
    return no_nul(value, allowed)


def strings(
    value: Any, allowed: str, single: bool = True, empty: bool = False, sequence_types: tuple = (list, tuple)
) -> list[str]:
    """A list of strings; a single string counts as a list of one when ``single``."""
    if isinstance(value, str) and single:
        value = [value]
    if not isinstance(value, sequence_types):
        raise wrong_type(value, "a list of strings", allowed)
    items = list(value)
    if not items and not empty:
        raise IreeBuildError(f"the list is empty; {allowed}")
    for item in items:
        if not isinstance(item, str):
            raise wrong_type(item, "a string", allowed)
        if not item.strip():
            raise IreeBuildError(f"{item!r} in the list is empty; {allowed}")
        no_nul(item, allowed)
    return items


def number(
    value: Any, allowed: str, minimum: float | None = None, integer: bool = False, above: float | None = None
) -> float | int:
    """A finite real number (an int when ``integer``), ``>= minimum`` / ``> above``."""
    expected = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong_type(value, expected, allowed)
    if integer and not isinstance(value, numbers.Integral):
        raise wrong_type(value, expected, allowed)
    if not math.isfinite(float(value)):
        raise IreeBuildError(f"{value!r} is not finite; {allowed}")
    if minimum is not None and value < minimum:
        raise IreeBuildError(f"{value!r} is below {minimum:g}; {allowed}")
    if above is not None and value <= above:
        raise IreeBuildError(f"{value!r} is not above {above:g}; {allowed}")
    if integer:
        return int(cast(numbers.Integral, value))
    return cast(float, value)  # a numbers.Real: float or one that acts as one (numpy, Fraction)


def boolean(value: Any, allowed: str = "give True or False") -> bool:
    if not isinstance(value, bool):
        raise wrong_type(value, "True or False", allowed)
    return value


def tolerance(value: Any) -> float:
    """``rtol``/``atol``: finite and non-negative."""
    return float(number(value, "give a finite number >= 0, e.g. 1e-5", minimum=0))


def tolerances(value: Any) -> float | None | tuple[float | None, ...]:
    """A test's ``rtol``/``atol``: None (IREE's default comparison), one number for every
    output, or a list with one number (or None) per output."""
    allowed = "give a finite number >= 0 (e.g. 1e-5), a list of them (one per output), or None"
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if not value:
            raise IreeBuildError(f"the list is empty; {allowed}")
        return tuple(None if item is None else float(number(item, allowed, minimum=0)) for item in value)
    return float(number(value, allowed, minimum=0))


COMPARE_KEYS = ("f16", "bf16", "f32", "f64", "rtol", "exact")


def compare_overrides(value: Any) -> dict[str, float]:
    """IREE's comparison thresholds overridden by a configuration (``--expected_f32_threshold``,
    ``--expected_rtol``), as ``{"f32": 1e-3, "rtol": 0.0}``; ``"exact": 1`` is
    ``--equality_mode=exact`` (byte equality for every type)."""
    allowed = f"give {{type: threshold}} with types from {', '.join(COMPARE_KEYS)}"
    if not isinstance(value, dict):
        raise wrong_type(value, "a dict", allowed)
    return {
        one_of(k, list(COMPARE_KEYS), "comparison key"): float(number(v, allowed, minimum=0))
        for k, v in value.items()
    }


# Room left for what the build adds to a name in one file name (a leading '.', the
# device, '.result.json', '.tmp-PID') under the 255 bytes most file systems take.
MAX_NAME_BYTES = 160


def plain_name(value: Any, example: str) -> str:
    """A name that becomes part of file and test names: no folders, brackets or spaces."""
    allowed = f"give a plain name like '{example}' (letters, digits, '_', '-', '.')"
    if not isinstance(value, str):
        raise wrong_type(value, "a string", allowed)
    if not value:
        raise IreeBuildError(f"the name is empty; {allowed}")
    bad = [c for c in value if not (c.isalnum() or c in "_-.+")]
    if bad or value.startswith((".", "-")):
        what = f"{bad[0]!r}" if bad else f"a leading {value[0]!r}"
        raise IreeBuildError(f"{value!r} has {what}; {allowed}")
    size = len(value.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise IreeBuildError(
            f"{value[:40]!r}... is {size} bytes long; file names are made of it "
            f"(NAME.local-task.result.json, temporaries beside them) and a file system takes "
            f"255 bytes a name: give at most {MAX_NAME_BYTES}"
        )
    return value


def flags(value: Any) -> list[str]:
    """Compiler flags: each starts with ``-`` (or ``@`` for a flag file)."""
    allowed = "give compiler flags like ['--iree-opt-level=O2'] (or '@flags.txt')"
    items = strings(value, allowed, empty=True)
    for flag in items:
        if not flag.startswith(("-", "@")):
            raise IreeBuildError(f"{flag!r} does not start with '-' (or '@' for a flag file); {allowed}")
    return items


def suffix(path: str, suffixes: Sequence[str], what: str) -> str:
    if suffixes and not path.endswith(tuple(suffixes)):
        raise IreeBuildError(f"{what} {path!r} is not a {'/'.join(suffixes)} file")
    return path


def path_text(value: Any) -> str | None:
    """The path a str or ``os.PathLike`` names, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    return None


def no_nul(text: str, allowed: str) -> str:
    """Paths and names never hold a NUL (the OS refuses them with an exception)."""
    if "\x00" in text:
        raise IreeBuildError(f"{text!r} holds a NUL character; {allowed}")
    return text

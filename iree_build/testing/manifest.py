"""The test manifest: what the build declared, for the runner to execute.

The builder writes ``iree_tests.json`` next to the built modules; the runner may
run on another machine that has only ``iree.runtime`` and numpy, so this module
is standard library only. Every path in the manifest is relative to the
manifest's directory and must stay inside it: a data file never makes the
runner read or write outside the build folder.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from iree_build import validation
from iree_build.errors import IreeBuildError
from iree_build.util.atomic import atomic_write_text
from iree_build.util.printable import printable

FORMAT = "iree_build.tests/1"
MANIFEST_NAME = "iree_tests.json"
# Beside a module (or import) that failed as an expected failure: why it is missing.
FAILED_BUILD_SUFFIX = ".failed"
# A test's result file: the runner replaces it, and deletes it when the test does not pass,
# so a manifest may not point it at a module, a data file or the manifest itself.
RESULT_SUFFIX = ".result.json"

_KEYS = (
    "name",
    "base",
    "device",
    "module",
    "function",
    "inputs",
    "expected",
    "rtol",
    "atol",
    "declared_at",
    "result",
)
_PATH_KEYS = ("module", "result")
# Fields checked by value (not paths), with the default of those that may be absent.
_CHECKED: dict[str, Any] = {
    "rtol": None,
    "atol": None,
    "compare": {},
    "parameter_scope": "model",
    "arch": "",
    "kind": "call",
    "xfail": "",
    "skip": "",
    "timeout": 0.0,
    "tags": [],
    "folder": "",
    "emulator": [],
}
_PATH_LIST_KEYS = ("inputs", "expected")


class ManifestError(IreeBuildError):
    """The manifest is unreadable or malformed; names the manifest file."""


@dataclass(frozen=True)
class TestSpec:
    """One declared test on one device; paths relative to the manifest dir."""

    __test__ = False  # not a pytest class

    name: str
    base: str
    device: str
    module: str
    function: str
    inputs: tuple[str, ...]
    expected: tuple[str, ...]
    rtol: float | None | tuple[float | None, ...]  # None: as iree-run-module compares (per type)
    atol: float | None | tuple[float | None, ...]
    declared_at: str
    result: str
    parameters: tuple[str, ...] = ()  # parameter archives (.irpa, .safetensors, .gguf)
    parameter_scope: str = "model"
    arch: str = ""  # CPU architecture the module's code needs ("" = any, e.g. vmvx or a GPU)
    kind: str = "call"  # "call": call `function`; "check": run every case of a check file
    xfail: str = ""  # why this (file, backend, device) is expected to fail (strict)
    skip: str = ""  # why it is not run at all
    timeout: float = 0.0  # seconds one call (a check case) may take; 0: the runner's default
    tags: tuple[str, ...] = ()  # what --tags/--iree-test-tags select on ("gpu", "slow")
    folder: str = ""  # the declaring SConscript's source folder, from the project's top
    compare: dict[str, float] = field(default_factory=dict)  # IREE threshold overrides ("f32": 1e-3)
    emulator: tuple[str, ...] = ()  # how `arch` code runs on a machine of another CPU ("qemu-aarch64", ...)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry, keys in field order (the documented order)."""
        return {
            f.name: list(v)
            if isinstance(v := getattr(self, f.name), tuple)
            else dict(v)
            if isinstance(v, dict)
            else v
            for f in fields(self)
        }


@dataclass
class Manifest:
    """A loaded manifest: its file, the folder its paths are relative to, its tests."""

    path: Path
    tests: list[TestSpec] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def failed_build_note(module: str | os.PathLike[str]) -> str:
    """Why a module is missing when its build failed (the step wrote ``MODULE.failed``:
    the compiler's first error line), or ''."""
    if os.path.exists(module):
        return ""
    note = Path(f"{module}{FAILED_BUILD_SUFFIX}")
    if not note.is_file():
        return ""
    try:
        data = json.loads(note.read_text())
    except (OSError, ValueError, RecursionError):
        return "its build failed"
    return str(data.get("message", "its build failed")) if isinstance(data, dict) else "its build failed"


def check_relative_path(value: Any) -> str:
    """Return ``value`` normalized, or raise ValueError if it could leave the dir.

    Lexical check only: absolute paths, drive letters, backslashes and any
    ``..`` that survives normalization are refused.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    if "\\" in value:
        raise ValueError("uses '\\'; manifest paths use '/' separators")
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        raise ValueError("is absolute; manifest paths are relative to the manifest")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../"):
        raise ValueError("escapes the manifest directory")
    if norm == ".":
        raise ValueError("names the manifest directory itself, not a file")
    return norm


class PathEscapeError(ManifestError, ValueError):
    """A manifest path that is spelled inside its folder but leads out of it through a link."""


def contained(base_dir: str | os.PathLike[str], rel: str, plain: set[str] | None = None) -> Path:
    """The real path ``rel`` names under ``base_dir``; links are followed and the result
    must still lie inside ``base_dir`` (itself resolved), else PathEscapeError.

    Spelling (``check_relative_path``) is not enough: ``build/evil.npy -> /elsewhere``
    or a linked folder would lead the runner out of the build folder. ``plain``: paths
    already seen to exist and be no link (a run's files do not change), each added as seen.
    """
    return Path(contained_path(base_dir, rel, plain))


def contained_path(base_dir: str | os.PathLike[str], rel: str, plain: set[str] | None = None) -> str:
    """:func:`contained` as a string: ``base_dir`` and the normalized ``rel`` joined."""
    norm = check_relative_path(rel)
    joined = os.path.join(os.fspath(base_dir), norm)
    if not _links_below(base_dir, norm, plain):  # lies under base_dir, wherever that leads
        return joined
    base = os.path.realpath(base_dir)
    real = os.path.realpath(os.path.join(base, norm))
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise PathEscapeError(
            f"{rel!r} leads outside {base} through a link (to {real}); refusing to read or write it",
            where=None,
        )
    return joined


def _links_below(base_dir: str | os.PathLike[str], norm: str, plain: set[str] | None = None) -> bool:
    """Whether a folder or file on the way from ``base_dir`` down to ``norm`` is a link
    (one ``lstat`` per step, where :func:`os.path.realpath` of the whole path takes one
    per folder from the root, twice): only then can the path lead out of ``base_dir``.
    A step in ``plain`` needs no ``lstat``; each step found to be no link joins it."""
    path = os.fspath(base_dir)
    for part in norm.split("/"):
        path = os.path.join(path, part)
        if plain is not None and path in plain:
            continue
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return True
        except OSError:
            return False  # nothing is there from here on: no link to follow
        if plain is not None:
            plain.add(path)
    return False


def resolve(base_dir: str | os.PathLike[str], rel: str) -> Path:
    """Absolute path of a manifest-relative path, re-checked so callers can't slip: by
    spelling, then by where it really leads (links followed), see :func:`contained`."""
    return contained(base_dir, rel)


def spec_paths(spec: Any) -> list[tuple[str, str]]:
    """``(key, path)`` of every file a test (or benchmark) entry names."""
    out = [("module", spec.module), ("result", spec.result)]
    for key in ("inputs", "expected", "parameters"):
        out += [(f"{key}[{i}]", p) for i, p in enumerate(getattr(spec, key, ()) or ()) if isinstance(p, str)]
    return out


def check_contained(manifest_path: Path, specs: Any, what: str = "test") -> None:
    """Refuse, in one line naming the entry, a manifest whose paths lead out of its folder
    through links (checked before anything is read or run). Each folder is listed once
    (its entries say which are links) instead of an ``lstat`` per file: a manifest of
    thousands of tests names thousands of files in one folder."""
    base = os.fspath(manifest_path.parent)
    listings: dict[str, dict[str, bool]] = {}
    for spec in specs:
        for key, rel in spec_paths(spec):
            try:
                norm = check_relative_path(rel)
                if _listed_link_below(base, norm, listings):
                    contained(base, rel)  # a link on the way: where it really leads
            except ValueError as exc:
                message = exc.message if isinstance(exc, PathEscapeError) else f"{rel!r} {exc}"
                raise _fail(manifest_path, f"{what} {spec.name!r} {key}: {message}") from None


def _listed_link_below(base: str, norm: str, listings: dict[str, dict[str, bool]]) -> bool:
    """:func:`_links_below` from folder listings (``listings``: folder -> name -> is a link)."""
    folder = base
    for part in norm.split("/"):
        entries = listings.get(folder)
        if entries is None:
            try:
                with os.scandir(folder) as it:
                    entries = {e.name: e.is_symlink() for e in it}
            except OSError:
                entries = {}
            listings[folder] = entries
        link = entries.get(part)
        if link is None:
            return False  # nothing is there from here on: no link to follow
        if link:
            return True
        folder = os.path.join(folder, part)
    return False


def manifest_error(path: Path | str, message: str) -> ManifestError:
    """A problem in a manifest (tests' or benchmarks'), naming the file."""
    return ManifestError(message, where=str(path))


_fail = manifest_error


_KNOWN = frozenset(f.name for f in fields(TestSpec))
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "rtol": validation.tolerances,
    "atol": validation.tolerances,
    "compare": validation.compare_overrides,
    "kind": lambda value: validation.one_of(value, ("call", "check"), "test kind"),
    "timeout": lambda value: validation.number(
        value, "give seconds as a finite number >= 0 (0: the runner's default)", minimum=0
    ),
    "tags": lambda value: validation.strings(value, "give a list of tag names", single=False, empty=True),
    "emulator": lambda value: validation.strings(
        value, "give the emulator's command as a list of words", single=False, empty=True
    ),
}
"""How each checked field is checked (the others are strings)."""


def _parse_test(path: Path | str, index: int, raw: Any) -> TestSpec:
    if not isinstance(raw, dict):
        raise _fail(path, f"tests[{index}] is not an object")
    label = raw.get("name") if isinstance(raw.get("name"), str) else f"tests[{index}]"
    missing = [k for k in _KEYS if k not in raw]
    if missing:
        raise _fail(path, f"test {label!r} is missing key(s): {', '.join(missing)}")
    for key in raw if not raw.keys() <= _KNOWN else ():
        if key not in _KNOWN:
            known = [f.name for f in fields(TestSpec)]
            raise _fail(
                path,
                f"test {label!r} {key}: unknown key{validation.did_you_mean(key, known)}; "
                f"known keys: {', '.join(known)}",
            )
    for key in ("name", "base", "device", "function", "declared_at"):
        if not isinstance(raw[key], str) or (key not in ("declared_at", "function") and not raw[key]):
            raise _fail(path, f"test {label!r}: {key!r} must be a non-empty string")
    for key in ("name", "base", "device"):
        if not printable(raw[key]):
            raise _fail(
                path,
                f"test {label!r}: {key!r} holds a control character or an unpaired surrogate; "
                "names are printed one a line and written to the reports",
            )
    paths: dict[str, Any] = {}
    try:
        for key in _PATH_KEYS:
            paths[key] = _checked(key, raw[key])
        for key in _PATH_LIST_KEYS:
            if not isinstance(raw[key], list):
                raise ValueError(f"{key!r} must be a list of paths")
            paths[key] = tuple(_checked(key, item, i) for i, item in enumerate(raw[key]))
        params = raw.get("parameters", [])
        if not isinstance(params, list):
            raise ValueError("'parameters' must be a list of paths")
        paths["parameters"] = tuple(_checked("parameters", item, i) for i, item in enumerate(params))
    except ValueError as exc:
        raise _fail(path, f"test {label!r}: {exc}") from None
    values: dict[str, Any] = {}
    for key, default in _CHECKED.items():
        value = raw.get(key, default)
        if value is default or (type(value) is type(default) and value == default):
            values[key] = {} if key == "compare" else default  # a default needs no check
            continue
        try:
            values[key] = (
                _CHECKS[key](value)
                if key in _CHECKS
                else validation.string(value, "give a string", empty=True)
            )
        except IreeBuildError as exc:
            raise _fail(path, f"test {label!r} {key}: {exc.message}") from None
    return TestSpec(
        name=raw["name"],
        base=raw["base"],
        device=raw["device"],
        module=paths["module"],
        function=raw["function"],
        inputs=paths["inputs"],
        expected=paths["expected"],
        rtol=values["rtol"],
        atol=values["atol"],
        declared_at=raw["declared_at"],
        result=paths["result"],
        parameters=paths["parameters"],
        parameter_scope=values["parameter_scope"],
        arch=values["arch"],
        kind=values["kind"],
        xfail=values["xfail"],
        skip=values["skip"],
        timeout=float(values["timeout"]),
        tags=tuple(values["tags"]),
        folder=values["folder"],
        compare=values["compare"],
        emulator=tuple(values["emulator"]),
    )


def spec_from_json(raw: Any, where: str = "<request>") -> TestSpec:
    """One manifest entry, checked as the manifest checks it (run workers receive these)."""
    return _parse_test(where, 0, raw)


def _checked(key: str, value: Any, index: int | None = None) -> str:
    try:
        return check_relative_path(value)
    except ValueError as exc:
        where = key if index is None else f"{key}[{index}]"
        raise ValueError(f"path {where}={value!r} {exc}") from None


def parse_manifest(path: Path, data: Any) -> Manifest:
    """Validate decoded JSON ``data`` read from ``path``."""
    if not isinstance(data, dict):
        raise _fail(path, "not a test manifest (top level is not an object)")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise _fail(path, f"unknown manifest format {fmt!r} (expected {FORMAT!r})")
    if not isinstance(data.get("tests"), list):
        raise _fail(path, "missing key 'tests' (a list)")
    tests = [_parse_test(path, i, raw) for i, raw in enumerate(data["tests"])]
    seen_names: set[str] = set()
    seen_results: dict[str, str] = {}
    for spec in tests:
        if not spec.result.endswith(RESULT_SUFFIX):  # a build-time run's output is no manifest's
            raise _fail(
                path,
                f"test {spec.name!r}: result {spec.result!r} is not a {RESULT_SUFFIX} file "
                "(the runner replaces and deletes it)",
            )
        if spec.name in seen_names:
            raise _fail(path, f"duplicate test name {spec.name!r}")
        seen_names.add(spec.name)
        other = seen_results.setdefault(spec.result, spec.name)
        if other != spec.name:
            raise _fail(path, f"tests {other!r} and {spec.name!r} share result file {spec.result!r}")
    return Manifest(path=path, tests=tests)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file; every problem is one ManifestError line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(p, "no test manifest here (build the tests first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(p, f"cannot read test manifest: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(p, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise _fail(p, "not a test manifest (JSON nested too deeply)") from None
    return parse_manifest(p, data)


def manifest_json(tests: list[TestSpec]) -> str:
    """The manifest text for ``tests`` (stable formatting, so rewrites are no-ops): one test
    a line, each encoded by the C encoder (an indented document goes through the pure-Python
    one, several times slower, and SCons computes this text in every ``scons test``)."""
    if not tests:
        return json.dumps({"format": FORMAT, "tests": []}, indent=2) + "\n"
    lines = ",\n".join("    " + json.dumps(t.to_json()) for t in tests)
    return f'{{\n  "format": {json.dumps(FORMAT)},\n  "tests": [\n{lines}\n  ]\n}}\n'


def save_manifest(path: str | os.PathLike[str], tests: list[TestSpec]) -> None:
    """Write the manifest atomically (readers never see half a file)."""
    write_text_atomic(path, manifest_json(tests))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` whole or not at all (see :mod:`iree_build.util.atomic`)."""
    atomic_write_text(path, text)

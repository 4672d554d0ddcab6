"""Files a module depends on besides its source: found in the MLIR and in the flags.

A build is only as correct as its dependency graph: an executable object named
in ``#hal.executable.object<{path = ...}>``, a transform or tuning spec library
named by a flag, or a substituted executable must rebuild the module when it
changes, and be reported clearly when it is missing.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

# `#hal.executable.object<{path = "kernels.o"}>` (also inside `#hal.executable.objects<...>`)
_OBJECT_PATH = re.compile(r'#hal\.executable\.object<\{[^}]*?\bpath\s*=\s*"([^"]+)"')

# Compiler flags whose value is a file (or, for the search paths, a folder).
FILE_FLAGS = (
    "--iree-codegen-transform-dialect-library",
    "--iree-codegen-tuning-spec-path",
    "--iree-codegen-debug-patched-func-ops-file-name",
)
PAIR_FLAGS = (  # name=file
    "--iree-hal-substitute-executable-object",
    "--iree-hal-substitute-executable-source",
    "--iree-hal-substitute-executable-configuration",
)
LIST_FLAGS = ("--iree-link-bitcode",)  # comma-separated, entries may be name=file
DIR_FLAGS = (  # (--iree-hal-executable-object-search-path is not a per-session flag)
    "--iree-hal-substitute-executable-objects-from",
    "--iree-hal-substitute-executable-sources-from",
    "--iree-hal-substitute-executable-configurations-from",
)


def read_flag_file(path: str) -> list[str]:
    """Flags from a response file (``@flags.txt``), shell-quoted, ``#`` comments allowed.

    The in-process compiler API does not expand ``@file`` itself, so the build
    does, and the expanded flags are part of the module's signature.
    """
    with open(path, encoding="utf-8") as f:
        return shlex.split(f.read(), comments=True)


def object_paths(mlir_text: str) -> list[str]:
    """Paths of executable objects an MLIR source links in, in order, de-duplicated."""
    return list(dict.fromkeys(_OBJECT_PATH.findall(mlir_text)))


def resolve_object(path: str, search_dirs: list[str]) -> str | None:
    """Where the compiler will find ``path``: as given, or under a search folder."""
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    for base in search_dirs:
        candidate = os.path.join(base, path)
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return None


@dataclass
class FlagPaths:
    """The flag list with file values rewritten, and the files and folders named."""

    flags: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


def _split_entry(value: str) -> tuple[str, str]:
    """``path@sequence`` / ``path::sequence`` -> (path, suffix) for spec libraries."""
    for sep in ("@", "::"):
        if sep in value:
            path, rest = value.split(sep, 1)
            return path, sep + rest
    return value, ""


def rewrite_flag_paths(flags: list[str], resolve) -> FlagPaths:
    """Rewrite file-valued flags with ``resolve(path) -> path`` and collect them.

    ``resolve`` maps a path as the user wrote it (relative to their SConscript)
    to the path the compiler should see (relative to the build's top folder).
    """
    out = FlagPaths()
    for flag in flags:
        if flag.startswith("@"):  # a flag file: itself a dependency
            new = resolve(flag[1:])
            out.files.append(new)
            out.flags.append("@" + new)
            continue
        name, eq, value = flag.partition("=")
        if not eq or not value:
            out.flags.append(flag)
            continue
        if name in FILE_FLAGS:
            path, suffix = _split_entry(value) if name.endswith("library") else (value, "")
            new = resolve(path)
            out.files.append(new)
            out.flags.append(f"{name}={new}{suffix}")
        elif name in PAIR_FLAGS and "=" in value:
            key, path = value.split("=", 1)
            new = resolve(path)
            out.files.append(new)
            out.flags.append(f"{name}={key}={new}")
        elif name in LIST_FLAGS:
            entries = []
            for entry in value.split(","):
                key, sep, path = entry.rpartition("=")
                new = resolve(path)
                out.files.append(new)
                entries.append(f"{key}{sep}{new}")
            out.flags.append(f"{name}={','.join(entries)}")
        elif name in DIR_FLAGS:
            new = resolve(value)
            out.dirs.append(new)
            out.flags.append(f"{name}={new}")
        else:
            out.flags.append(flag)
    return out

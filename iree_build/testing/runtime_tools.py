"""IREE's runtime tools built for another CPU architecture (``iree-run-module`` ...).

An emulated test lane (:mod:`iree_build.testing.emulation`) runs the target
architecture's own ``iree-run-module`` under an emulator. Those tools are found in

1. the folder named by ``$IREE_RUNTIME_TOOLS_<ARCH>`` (``$IREE_RUNTIME_TOOLS_AARCH64``):
   an unpacked runtime wheel's ``iree/_runtime_libs``, or a runtime build's ``tools``;
2. else this user's cache, ``$IREE_BUILD_CACHE_DIR`` or ``$XDG_CACHE_HOME/iree_build``
   (``~/.cache/iree_build``), under ``runtime/<version>/<arch>/``, which
   :func:`fetch` fills on request (``python -m iree_build runtime aarch64``) from the
   ``iree-base-runtime`` wheel of that architecture, at the installed runtime's version.

Standard library only (the fetch runs ``pip download`` in a child process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from iree_build.errors import IreeBuildError
from iree_build.testing.identity import runtime_version

RUN_TOOL = "iree-run-module"
_WHEEL_DIR = "iree/_runtime_libs"
# The manylinux tags pip is allowed to pick for an architecture (newest first).
WHEEL_PLATFORMS = {
    "aarch64": (
        "manylinux_2_28_aarch64",
        "manylinux_2_27_aarch64",
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    ),
    "x86_64": (
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ),
}


def env_var(arch: str) -> str:
    """``IREE_RUNTIME_TOOLS_AARCH64`` for ``aarch64``."""
    return "IREE_RUNTIME_TOOLS_" + re.sub(r"[^0-9A-Za-z]", "_", arch).upper()


def cache_root() -> Path:
    """This user's iree_build cache (the compiler facts live there too)."""
    root = os.environ.get("IREE_BUILD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "iree_build"
    )
    return Path(root)


def cache_dir(arch: str, version: str | None = None) -> Path:
    """Where :func:`fetch` unpacks ``arch``'s tools of runtime ``version`` (default: installed)."""
    return cache_root() / "runtime" / (version or runtime_version()) / arch


def _has_tool(folder: Path, tool: str = RUN_TOOL) -> bool:
    exe = folder / tool
    return exe.is_file() and os.access(exe, os.X_OK)


def find_tools(arch: str) -> tuple[Path | None, str]:
    """(the folder holding ``arch``'s ``iree-run-module``, '') or (None, why not and how to get it)."""
    var = env_var(arch)
    named = os.environ.get(var)
    if named:
        folder = Path(named)
        if _has_tool(folder):
            return folder, ""
        return None, f"${var} names {named}, which holds no executable {RUN_TOOL}"
    cached = cache_dir(arch) / _WHEEL_DIR
    if _has_tool(cached):
        return cached, ""
    if arch in WHEEL_PLATFORMS:
        how = (
            f"run `python -m iree_build runtime {arch}` (fetches the {arch} iree-base-runtime "
            f"{runtime_version()} wheel into {cache_dir(arch)}) or set ${var}"
        )
    else:
        how = (
            f"no iree-base-runtime wheel exists for {arch}: set ${var} to the folder holding "
            f"your {arch} runtime build's {RUN_TOOL}"
        )
    return None, f"no {arch} runtime tools ({how})"


def tools_version(folder: Path) -> str:
    """What the tools are, for result signatures: a wheel's version and IREE revision, else
    the run tool's size and time (a runtime build carries no version file)."""
    text = ""
    try:
        text = (folder / "version.py").read_text(encoding="utf-8")
    except OSError:
        pass
    version = re.search(r'VERSION\s*=\s*"([^"]*)"', text)
    revision = re.search(r'"IREE"\s*:\s*"([^"]*)"', text)
    if version:
        return f"{version.group(1)} ({revision.group(1)[:12] if revision else 'unknown revision'})"
    try:
        st = (folder / RUN_TOOL).stat()
        return f"{folder / RUN_TOOL} ({st.st_size} bytes, mtime {st.st_mtime_ns})"
    except OSError:
        return "unknown"


class FetchError(IreeBuildError):
    """The runtime wheel could not be fetched or unpacked; one line saying why."""


def fetch(arch: str, version: str | None = None, force: bool = False) -> Path:
    """Fetch the ``arch`` ``iree-base-runtime`` wheel (``version``: the installed one) with
    ``pip download`` and unpack its ``iree/_runtime_libs`` into the cache, whole or not at
    all; returns the tools folder. Already there (and not ``force``): nothing is fetched."""
    version = version or runtime_version()
    if version == "unknown":
        raise FetchError(
            "iree-base-runtime is not installed here, so there is no version to match; "
            "pip install iree-base-runtime"
        )
    platforms = WHEEL_PLATFORMS.get(arch)
    if platforms is None:
        raise FetchError(
            f"no iree-base-runtime wheel is published for {arch} "
            f"(wheels exist for {', '.join(WHEEL_PLATFORMS)}); set ${env_var(arch)} "
            f"to the folder holding your {arch} runtime build's {RUN_TOOL}"
        )
    dest = cache_dir(arch, version)
    tools = dest / _WHEEL_DIR
    if _has_tool(tools) and not force:
        return tools
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{arch}-", dir=dest.parent) as tmp:
        download = Path(tmp, "wheel")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(download),
            *(f"--platform={p}" for p in platforms),
            f"iree-base-runtime=={version}",
        ]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(
                f"pip download of iree-base-runtime=={version} for {arch} failed: {exc}"
            ) from None
        wheels = sorted(download.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            lines = [
                ln.strip()
                for ln in (proc.stderr + proc.stdout).splitlines()
                if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln
            ]
            said = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "no wheel")
            raise FetchError(f"pip download of iree-base-runtime=={version} for {arch} failed: {said}")
        unpacked = Path(tmp, "unpacked")
        _unpack(wheels[0], unpacked)
        if not _has_tool(unpacked / _WHEEL_DIR):
            raise FetchError(f"{wheels[0].name} holds no {_WHEEL_DIR}/{RUN_TOOL}")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(unpacked, dest)
    return tools


def _unpack(wheel: Path, into: Path) -> None:
    """The wheel's runtime tools folder, executable bits kept (zipfile drops them)."""
    prefix = _WHEEL_DIR + "/"
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if not name.startswith(prefix) or name.endswith("/") or ".." in name.split("/"):
                continue
            path = Path(z.extract(info, into))
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(path, mode or 0o644)

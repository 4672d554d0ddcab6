"""Which emulator runs a module's CPU code when it was built for another architecture.

First match wins: ``scons --iree-emulator=ARCH:COMMAND`` (given once per architecture,
or ``;``-separated), then the ``IREE_EMULATORS`` construction variable
(``{"aarch64": "qemu-aarch64 -L /usr/aarch64-linux-gnu"}``, a command as one string or
a list of words), then the ``emulator`` key of the module's toolchain preset. Tests and
``iree_run`` calls carry the answer (the test manifest too); how the lane runs is
``iree_build.testing.emulation``.
"""

from __future__ import annotations

import shlex

from iree_build.errors import IreeBuildError
from iree_build.testing.emulation import normal_arch, parse_emulators

from . import options


def _from_option() -> dict[str, tuple[str, ...]]:
    given = options.option("iree-emulator") or []
    return parse_emulators([given] if isinstance(given, str) else list(given), "--iree-emulator")


def _from_env(env) -> dict[str, tuple[str, ...]]:
    value = env.get("IREE_EMULATORS") or {}
    if not hasattr(value, "items"):
        raise IreeBuildError(
            "IREE_EMULATORS must map an architecture to its emulator's command, e.g. "
            "{'aarch64': 'qemu-aarch64 -L /usr/aarch64-linux-gnu'}, not "
            f"{type(value).__name__} {value!r}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for arch, command in value.items():
        words = shlex.split(command) if isinstance(command, str) else list(command or [])
        if not words or not all(isinstance(w, str) and w for w in words):
            raise IreeBuildError(
                f"IREE_EMULATORS[{arch!r}]: give the command as a string or a list of words, not {command!r}"
            )
        out[normal_arch(str(arch))] = tuple(words)
    return out


def emulator_for(env, arch: str, preset: tuple = ()) -> tuple[str, ...]:
    """The emulator for ``arch`` code (``()``: none declared)."""
    if not arch:
        return ()
    arch = normal_arch(arch)
    for source in (_from_option(), _from_env(env)):
        if arch in source:
            return source[arch]
    return tuple(preset)

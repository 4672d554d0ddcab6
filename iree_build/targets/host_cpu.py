"""CPU targets for llvm-cpu: ``host`` resolved to a concrete name and features.

``cpu="host"`` must never reach the build signature as the word "host": a shared
cache would then hand one machine's binary to another. llvmlite reads the host
CPU the same way the compiler would, so the concrete values go into the flags.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from iree_build.compile.compiler_info import cache_dir
from iree_build.errors import IreeBuildError
from iree_build.hardware import stable_cpuinfo
from iree_build.targets.cpu_features import arch_of
from iree_build.util.atomic import atomic_write_text
from iree_build.validation import did_you_mean


@dataclass(frozen=True)
class CpuTarget:
    """What ``--iree-llvmcpu-target-*`` flags say: a concrete CPU, features, triple."""

    cpu: str
    features: str
    triple: str

    def flags(self) -> list[str]:
        flags = [f"--iree-llvmcpu-target-triple={self.triple}", f"--iree-llvmcpu-target-cpu={self.cpu}"]
        if self.features:
            flags.append(f"--iree-llvmcpu-target-cpu-features={self.features}")
        return flags

    def summary(self) -> str:
        return f"cpu={self.cpu}"


def _llvm_host() -> tuple[str, str, str]:
    import llvmlite.binding as llvm

    name = llvm.get_host_cpu_name()
    features = ",".join(sorted(llvm.get_host_cpu_features().flatten().split(",")))
    return name, features, llvm.get_process_triple()


def _cache_file() -> Path | None:
    """Where this machine's answer is kept: keyed by the CPU as the kernel describes it
    (vendor, family, model, stepping, feature flags) and by the llvmlite library that
    answered, so another CPU or another LLVM asks llvmlite again."""
    spec = importlib.util.find_spec("llvmlite")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = sorted(Path(list(spec.submodule_search_locations)[0], "binding").glob("libllvmlite*"))
    try:
        lib = os.stat(libs[0]) if libs else None
    except OSError:
        return None
    if lib is None:
        return None
    stable = stable_cpuinfo("/")  # this machine's CPU: llvmlite answers for it, whatever else plays
    key = hashlib.sha256(
        "\n".join(
            [*stable, str(libs[0]), str(lib.st_size), str(lib.st_mtime_ns), platform.machine()]
        ).encode()
    ).hexdigest()[:20]
    return cache_dir() / f"host-cpu-{key}.json"


@lru_cache(maxsize=1)
def host() -> tuple[str, str, str]:
    """(cpu name, sorted feature list, triple) of this machine, read once.

    llvmlite costs ~60-200 ms to load, which a no-op build should not pay every
    time: the answer is kept in a small JSON file keyed by the CPU and the library.
    """
    cached = _cache_file()
    if cached is not None:
        try:
            data = json.loads(cached.read_text())
            if isinstance(data, list) and len(data) == 3 and all(isinstance(v, str) for v in data):
                return data[0], data[1], data[2]
        except (OSError, ValueError):
            pass
    answer = _llvm_host()
    if cached is not None:
        try:
            atomic_write_text(cached, json.dumps(list(answer)))
        except OSError:
            pass  # a read-only home only costs llvmlite next time
    return answer


@lru_cache(maxsize=1)
def _known_cpus() -> dict[str, list[str]]:
    text = resources.files("iree_build").joinpath("data/llvm_cpus.json").read_text()
    return json.loads(text)["cpus"]


_arch = arch_of


def _compiler_known(features: str, triple: str) -> str:
    """The host's features less those the compiler's LLVM does not know (llvmlite's LLVM
    can be newer): it would ignore them with a warning per executable, and a feature list
    spelled out by hand (which names only known features) must equal ``cpu="host"``'s."""
    from iree_build.targets.cpu_features import known_features

    known = known_features(triple)
    if not known:
        return features
    return ",".join(f for f in features.split(",") if f and f[1:] in known)


def resolve(cpu: str | None, cpu_features: str | None = None, triple: str | None = None) -> CpuTarget:
    """Turn a declaration's cpu/cpu_features/triple into concrete values.

    The default is the portable ``generic`` CPU for this machine's triple; the
    triple is always spelled out so that the same declaration on an Arm and an
    x86 machine has different signatures.
    """
    cpu = (cpu or "generic").strip()
    host_name, host_features, host_triple = host()
    triple = triple or host_triple
    if cpu == "host":
        if _arch(triple) != _arch(host_triple):
            raise IreeBuildError(
                f"cpu='host' means this machine ({host_triple}), but the triple is {triple}; "
                "name the target CPU (or 'generic') when cross-compiling"
            )
        features = _compiler_known(host_features, triple)
        if cpu_features:
            features = f"{features},{cpu_features}"
        return CpuTarget(host_name, features, triple)
    if cpu != "generic":
        known = _known_cpus().get(_arch(triple))
        if known is not None and cpu not in known:
            raise IreeBuildError(
                f"unknown CPU '{cpu}' for {_arch(triple)}{did_you_mean(cpu, known)}; "
                "use 'host', 'generic' or one of: " + ", ".join(known)
            )
    return CpuTarget(cpu, cpu_features or "", triple)

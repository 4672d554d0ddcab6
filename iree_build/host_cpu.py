"""CPU targets for llvm-cpu: ``host`` resolved to a concrete name and features.

``cpu="host"`` must never reach the build signature as the word "host": a shared
cache would then hand one machine's binary to another. llvmlite reads the host
CPU the same way the compiler would, so the concrete values go into the flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .cpu_features import arch_of
from .errors import IreeBuildError
from .validation import did_you_mean


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


@lru_cache(maxsize=1)
def host() -> tuple[str, str, str]:
    """(cpu name, sorted feature list, triple) of this machine, read once."""
    import llvmlite.binding as llvm

    name = llvm.get_host_cpu_name()
    features = ",".join(sorted(llvm.get_host_cpu_features().flatten().split(",")))
    return name, features, llvm.get_process_triple()


@lru_cache(maxsize=1)
def _known_cpus() -> dict[str, list[str]]:
    text = resources.files("iree_build").joinpath("data/llvm_cpus.json").read_text()
    return json.loads(text)["cpus"]


_arch = arch_of


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
        features = host_features
        if cpu_features:
            features = f"{features},{cpu_features}"
        return CpuTarget(host_name, features, triple)
    if cpu != "generic":
        known = _known_cpus().get(_arch(triple))
        if known is not None and cpu not in known:
            raise IreeBuildError(
                f"unknown CPU '{cpu}' for {_arch(triple)}{did_you_mean(cpu, known)}; "
                "use 'host', 'generic' or one of: "
                + ", ".join(known)
            )
    return CpuTarget(cpu, cpu_features or "", triple)

"""A configuration file of IREE's generated op tests, read as IREE's CI writes it.

``onnx_ops_cpu_llvm_sync.json`` and its siblings: ``config_name``,
``iree_compile_flags``, ``iree_run_module_flags``, and the lists
``skip_compile_tests``, ``skip_run_tests``, ``expected_compile_failures``,
``expected_run_failures`` of test names (folder paths under the suite's root).
The compile flags that choose the target become the module's declared target
(so the rules derive them once, as for any module); the rest stay flags.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from iree_build.errors import IreeBuildError
from iree_build.validation import did_you_mean
from iree_build.values.flagfile import RunFlags, parse_flags

REQUIRED = ("config_name", "iree_compile_flags", "iree_run_module_flags")
LISTS = ("skip_compile_tests", "skip_run_tests", "expected_compile_failures", "expected_run_failures")
# --iree-hal-target-device values and the backend that serves each.
_DEVICE_BACKENDS = {
    "cuda": "cuda",
    "hip": "rocm",
    "vulkan": "vulkan-spirv",
    "metal": "metal-spirv",
    "webgpu": "webgpu-wgsl",
}


@dataclass
class SuiteConfig:
    """What one configuration asks of every test folder."""

    name: str
    path: str
    target_backends: list[str] = field(default_factory=list)
    cpu: str | None = None
    cpu_features: str | None = None
    triple: str | None = None
    flags: list[str] = field(default_factory=list)  # the other compile flags, as given
    run: RunFlags = field(default_factory=RunFlags)  # devices and comparison thresholds
    lists: dict[str, set[str]] = field(default_factory=dict)

    def listed(self, key: str, test: str) -> bool:
        return test in self.lists.get(key, set())

    def reason(self, key: str) -> str:
        return f"{key} of {os.path.basename(self.path)}"


def read_config(path: str | os.PathLike[str]) -> SuiteConfig:
    """Read and check a configuration; each problem is one line naming the file."""
    p = Path(path)
    where = str(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise IreeBuildError(f"cannot read the configuration: {e}", where) from None
    except (ValueError, RecursionError) as e:
        raise IreeBuildError(f"not valid JSON: {e}", where) from None
    if not isinstance(data, dict):
        raise IreeBuildError("not a test-suite configuration (top level is not an object)", where)
    known = (*REQUIRED, *LISTS)
    for key in data:
        if key not in known:
            raise IreeBuildError(
                f"{key}: unknown key{did_you_mean(key, list(known))}; known: {', '.join(known)}", where
            )
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise IreeBuildError(f"missing key(s): {', '.join(missing)}", where)
    if not isinstance(data["config_name"], str) or not data["config_name"]:
        raise IreeBuildError("config_name must be a non-empty string", where)
    for key in ("iree_compile_flags", "iree_run_module_flags", *LISTS):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise IreeBuildError(f"{key} must be a list of strings", where)
    config = SuiteConfig(data["config_name"], where)
    _compile_flags(config, data["iree_compile_flags"])
    config.run = parse_flags([(f"{where}: iree_run_module_flags", f) for f in data["iree_run_module_flags"]])
    if config.run.inputs or config.run.expected:
        raise IreeBuildError(
            "iree_run_module_flags gives --input/--expected_output; those belong in "
            "each test's run_module_io_flags.txt",
            where,
        )
    config.lists = {key: set(data.get(key, [])) for key in LISTS}
    return config


def _compile_flags(config: SuiteConfig, flags: list[str]) -> None:
    """Target choices become declarations; every other flag is kept as it is."""
    device = ""
    for flag in flags:
        name, _, value = flag.partition("=")
        if name == "--iree-hal-target-backends":
            config.target_backends += [v for v in value.split(",") if v]
        elif name == "--iree-hal-target-device":
            device = value
        elif name == "--iree-hal-local-target-device-backends":
            config.target_backends += [v for v in value.split(",") if v]
        elif name == "--iree-llvmcpu-target-cpu":
            config.cpu = value
        elif name == "--iree-llvmcpu-target-cpu-features":
            config.cpu_features = value
        elif name == "--iree-llvmcpu-target-triple":
            config.triple = value
        else:
            config.flags.append(flag)
    if device and device != "local":
        backend = _DEVICE_BACKENDS.get(device.split("[")[0].split(":")[0])
        if backend is None:
            raise IreeBuildError(
                f"--iree-hal-target-device={device} is no target device this build "
                f"knows; known: local, {', '.join(_DEVICE_BACKENDS)}",
                config.path,
            )
        config.target_backends.append(backend)
    config.target_backends = list(dict.fromkeys(config.target_backends))


def unknown_names(config: SuiteConfig, tests: set[str]) -> list[str]:
    """Names the configuration lists that no test folder here has (a configuration is shared
    by the whole suite; a project holding part of it meets these)."""
    return sorted(n for names in config.lists.values() for n in names if n not in tests)

"""Every rule argument checked while the SConscript is read, in one shared way.

A rule declares its arguments once, as a schema (argument name -> ``Arg``), and
is wrapped with ``@checked(rule, SCHEMA)``. The wrapper, before the rule runs:

* rejects an unknown lower-case keyword with a did-you-mean (``target_backend=``
  is a typo, not a construction variable); an UPPER-case keyword stays a SCons
  construction-variable override, for rules that take overrides;
* checks each given argument (type, emptiness, range, known values, files that
  must exist) and passes on its normalized value (a single string where a list
  is usual becomes a list of one);
* reports the first bad one as ``scons: *** FILE:LINE: <rule> <argument>: <what
  is wrong>; <what is allowed>`` through ``where.fail``.

The value checks themselves live in the engine (``iree_build.validation``), where
the test manifest and toolchain presets use them too. A rule calling another
rule (a check suite declaring modules) is not checked twice.

Adding an argument to a rule: add ``"arg": SPEC`` to its schema; a parameter
without a spec is refused when the module is imported.
"""

from __future__ import annotations

import functools
import inspect
import os
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from iree_build import validation as v
from iree_build.errors import IreeBuildError
from iree_build.targets.backends import BACKENDS, HAL_DEVICES
from iree_build.testing.selection import check_tag

from . import build_lock
from .data_files import may_be_iree_value, meant_as_iree_value
from .where import declared_at, fail


@dataclass
class Call:
    """One rule call being checked: its rule, its arguments so far, its environment."""

    rule: str
    args: dict[str, Any]
    _env: Any = None
    usable: tuple[list[str], list[str]] | None = None  # (backends, devices) of the module named

    @property
    def env(self):
        if self._env is None:
            env = self.args.get("env")
            if env is None:  # every rule is called with its environment (free_functions)
                raise TypeError(f"{self.rule} was called without an environment")
            self._env = env
        return self._env


Check = Callable[[Any, Call], Any]


@dataclass(frozen=True)
class Arg:
    """How one argument is checked: ``check(value, call)`` returns the value to pass on."""

    check: Check
    none_ok: bool = True  # None means "the default"


# --- building blocks ----------------------------------------------------------


def is_list(value: Any) -> bool:
    """A list, tuple or SCons NodeList (what builders and Glob return)."""
    import SCons.Util

    return isinstance(value, tuple) or SCons.Util.is_List(value)


def is_node(value: Any) -> bool:
    """A single SCons node (a NodeList also answers ``get_abspath``: it is not one)."""
    return hasattr(value, "get_abspath") and not is_list(value)


def _one(value: Any, what: str) -> Any:
    """A single file-like value; a list (a builder's result) of exactly one."""
    if is_list(value):
        items = list(value)
        if len(items) != 1:
            raise IreeBuildError(f"{len(items)} items given; give one {what}")
        value = items[0]
    return value


def _file_node(value: Any, call: Call, what: str, suffixes: tuple[str, ...] = ()):
    """The node a path or node names; a plain source file must exist."""
    value = _one(value, what)
    if is_node(value):
        return value
    text = v.path_text(value)
    if text is None:
        example = f"model{suffixes[0]}" if suffixes else "model.mlir"
        raise v.wrong_type(value, "a path or file node", f"give the {what}'s path, e.g. '{example}'")
    if not text.strip():
        raise IreeBuildError(f"the path is empty; give the {what}'s path")
    v.no_nul(text, f"give the {what}'s path")
    v.suffix(text, suffixes, what)
    try:
        node = call.env.File(text)
    except TypeError:  # SCons knows that path as a folder
        raise IreeBuildError(f"{text!r} is a folder; give the {what}'s path") from None
    if not (node.has_builder() or node.is_derived() or node.srcnode().exists()):
        hint = " (use Glob() for patterns)" if any(c in text for c in "*?[") else ""
        raise IreeBuildError(
            f"{what} {node.srcnode().get_internal_path()} not found{hint}; "
            "give a file that exists or that another rule builds"
        )
    _regular(node.srcnode(), what)
    return value


def _regular(node: Any, what: str) -> None:
    """Refuse a FIFO, socket or device where a file is read: SCons would hash it while
    deciding what to build and wait forever (a FIFO) or read without end (/dev/zero)."""
    try:
        mode = os.stat(node.get_abspath()).st_mode
    except OSError:
        return  # not there (yet): another rule builds it
    if not stat.S_ISREG(mode):
        kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}
        kind = kinds.get(stat.S_IFMT(mode), "a device")
        raise IreeBuildError(f"{what} {node.get_internal_path()} is {kind}, not a regular file; give a file")


def _name(example: str) -> Arg:
    return Arg(lambda value, call: v.plain_name(value, example), none_ok=False)


def _text(allowed: str, none_ok: bool = True) -> Arg:
    def check(value, call):
        text = v.string(value, allowed)
        if any(c.isspace() for c in text):
            raise IreeBuildError(f"{text!r} has a space; {allowed}")
        return text

    return Arg(check, none_ok)


def _data_value(value: Any, call: Call, what: str) -> Any:
    """One input or expected value: a .npy/.pb file (or node), a numeric literal, or a
    value in IREE's syntax (``"2x3xf32=1 2 3 4 5 6"``, ``"4xi8=@x.bin"``, ``"@x.npy"``)."""
    if may_be_iree_value(value):
        from iree_build.values.iree_syntax import is_iree_value, parse

        if is_iree_value(value):
            parsed = parse(value)
            if parsed.file:
                _file_node(parsed.file, call, "data file")
            return parsed
    if meant_as_iree_value(value):
        from iree_build.values.iree_syntax import parse

        parse(value)  # IREE's syntax gone wrong ('?xf32=1', '-1xf32'), not a file's name
    if isinstance(value, str) and value.endswith(".bin"):
        raise IreeBuildError(
            f"{value!r} is a raw file: give its shape and element type in IREE's "
            f"syntax, e.g. '2x3xf32=@{value}'"
        )
    if (
        is_node(value)
        or v.path_text(value) is not None
        or (is_list(value) and len(value) == 1 and is_node(value[0]))
    ):
        return _file_node(value, call, "data file", (".npy", ".pb"))
    import numpy as np  # a value, not a path: numbers or an array

    if isinstance(value, (bool, int, float, complex, np.generic, np.ndarray, list, tuple)):
        from iree_build.values.arrays import to_array

        to_array(value, what)  # numbers all the way down, not ragged; a type that travels
        return value
    raise v.wrong_type(
        value,
        "a data value",
        "give a .npy/.pb path, a number, a nested list of numbers, a numpy array, "
        "or a value in IREE's syntax like '2x3xf32=1 2 3 4 5 6'",
    )


def _data(allow_function: bool) -> Arg:
    """Inputs (None: none) or expected values (None: none; or a reference function)."""
    allowed = "give a list of .npy/.pb paths or values, e.g. ['x.npy', [1.0, 2.0], 'f32=5']"
    if allow_function:
        allowed += ", or a reference function of the inputs"

    def check(value, call):
        if value is None:
            return None if allow_function else []
        if allow_function and callable(value) and not is_node(value):
            return value
        if isinstance(value, str) and not value.strip():
            raise IreeBuildError(f"{value!r} is an empty path; {allowed}")
        single = is_node(value) or v.path_text(value) is not None
        if not single and not is_list(value):
            raise v.wrong_type(value, "a list", allowed)
        items = [value] if single else list(value)
        checked = [_data_value(item, call, f"value {i}") for i, item in enumerate(items)]
        if not any(may_be_iree_value(item) for item in items):
            return checked  # paths and arrays: numpy is not imported for them
        from iree_build.values.iree_syntax import IreeValue, number_files

        values = number_files([c for c in checked if isinstance(c, IreeValue)])
        numbered = iter(values)
        return [next(numbered) if isinstance(c, IreeValue) else c for c in checked]

    return Arg(check, none_ok=False)


def _file(what: str, suffixes: tuple[str, ...] = ()) -> Arg:
    """Exactly one file: a path, a node, or a builder's result of one node."""
    return Arg(lambda value, call: _file_node(value, call, what, suffixes), none_ok=False)


def _files(what: str, suffixes: tuple[str, ...] = (), empty: bool = True, none_ok: bool = True) -> Arg:
    """One file or a list of them (strings, nodes, Glob results, nested lists)."""

    def check(value, call):
        items = call.env.Flatten(list(value)) if is_list(value) else [value]
        if not items and not empty:
            raise IreeBuildError(f"no files given (did a Glob match nothing?); give at least one {what}")
        return [_file_node(item, call, what, suffixes) for item in items]

    return Arg(check, none_ok)


# --- module targets -----------------------------------------------------------


def _backends_of(call: Call) -> list[str] | None:
    """The backends a module call builds for (None: a toolchain decides)."""
    if call.args.get("toolchain") is not None:
        return None
    given = call.args.get("target_backends")
    if given is not None:
        return list(given)
    return list(call.env.Flatten([call.env.get("IREE_TARGET_BACKENDS", ["llvm-cpu"])]))


def _needs_llvm_cpu(name: str, call: Call) -> None:
    backends = _backends_of(call)
    if backends is not None and "llvm-cpu" not in backends:
        raise IreeBuildError(
            f"applies to llvm-cpu only, and the module is built for "
            f"{', '.join(backends)}; add 'llvm-cpu' to target_backends or drop {name}"
        )


def _triple_of(call: Call) -> str:
    from iree_build.targets.host_cpu import host

    return call.args.get("triple") or call.env.get("IREE_TRIPLE") or host()[2]


def _check_backends(value, call):
    from iree_build.compile.compiler_info import compiler_info

    known = list(BACKENDS)
    items = v.strings(value, f"give a list of backends, e.g. ['llvm-cpu']; known: {', '.join(known)}")
    registered = compiler_info().targets
    for item in items:
        v.one_of(item, known, "target backend")
        if item not in registered:
            raise IreeBuildError(
                f"target backend '{item}' is not registered in this compiler; "
                f"registered: {', '.join(sorted(registered))}"
            )
    flags = call.args.get("flags")
    flags = [flags] if isinstance(flags, str) else flags if isinstance(flags, (list, tuple)) else []
    if "rocm" in items and not any(str(f).startswith("--iree-rocm-target=") for f in flags):
        raise IreeBuildError(
            "rocm has no default chip; use toolchain='rocm-gfx942' (MI300) or add "
            "'--iree-rocm-target=gfx...' to flags"
        )
    return items


def _check_triple(value, call):
    from iree_build.targets.cpu_features import check_triple

    _needs_llvm_cpu("triple", call)
    return check_triple(v.string(value, "give an LLVM target triple, e.g. 'aarch64-unknown-linux-gnu'"))


def _check_cpu(value, call):
    from iree_build.targets.host_cpu import resolve

    text = v.string(value, "give 'host', 'generic' or an LLVM CPU name like 'znver4'")
    _needs_llvm_cpu("cpu", call)
    resolve(text, None, _triple_of(call))
    return text


def _check_features(value, call):
    from iree_build.targets.cpu_features import check_features

    allowed = "give LLVM features like '+avx2,+fma' (or a list of them)"
    if isinstance(value, (list, tuple)):
        value = ",".join(v.strings(value, allowed, empty=True))
    text = v.string(value, allowed, empty=True)
    if text.strip():
        _needs_llvm_cpu("cpu_features", call)
    return check_features(text, _triple_of(call))


def _check_toolchain(value, call):
    from iree_build.targets.toolchains import find_toolchain

    from .declared_modules import toolchain_dirs

    name = v.string(value, "give a preset name like 'cuda-sm80' (see the README's Toolchains)")
    find_toolchain(name, extra_dirs=toolchain_dirs(call.env))
    return name


def _onnx_source(call: Call, source_arg: str) -> bool:
    src = call.args.get(source_arg)
    try:
        return str(call.env.Flatten([src])[0]).endswith(".onnx")
    except IndexError:
        return False


def _onnx_only(check: Check, what: str) -> Check:
    def wrapped(value, call):
        value = check(value, call)
        source_arg = "src" if "src" in call.args else "source"
        if value not in (None, False) and not _onnx_source(call, source_arg):
            raise IreeBuildError(f"applies to .onnx sources only, and {source_arg} is not one; drop {what}")
        return value

    return wrapped


def _opset(value, call):
    if value == "own":  # keep the model's own opset (iree_build.onnx.policy)
        return value
    v.number(
        value, "give an ONNX opset number, e.g. 17, or 'own' for the model's own", integer=True, minimum=1
    )
    try:
        import onnx

        newest = onnx.defs.onnx_opset_version()
    except ImportError:
        return value
    if value > newest:
        raise IreeBuildError(
            f"{value} is newer than the installed onnx package knows "
            f"(opsets 1 to {newest}); give an opset from 1 to {newest}"
        )
    return value


def _entries(value, call):
    """xfail/skip: "file" or (file, backend, device[, reason]); names without globs must exist."""
    allowed = "give entries 'file.mlir' or ('file.mlir', backend, device[, reason]), globs allowed"
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise v.wrong_type(value, "a list of entries", allowed)
    srcs = [str(s) for s in call.args.get("srcs", []) or []]
    files = [*map(os.path.basename, srcs), *srcs] if call.rule != "iree_onnx_test_suite" else []
    for entry in items:
        parts = (entry,) if isinstance(entry, str) else entry
        if not isinstance(parts, (tuple, list)):
            raise v.wrong_type(entry, "'file' or a tuple of 1 to 4 strings", allowed)
        if not 1 <= len(parts) <= 4:
            raise IreeBuildError(f"entry {entry!r} has {len(parts)} parts; {allowed}")
        for part in parts:
            v.string(part, allowed)
        plain = [not any(c in p for c in "*?[") for p in parts]  # no glob: must name a real one
        known = [files, list(BACKENDS), list(HAL_DEVICES)]
        nouns = [("file in srcs", "files in srcs"), ("backend", "backends"), ("HAL device", "HAL devices")]
        for part, exact, choices, (noun, plural) in zip(
            parts, plain, known, nouns, strict=False
        ):  # a 4th part has no name to check
            if exact and choices and part not in choices:
                raise IreeBuildError(
                    f"entry {entry!r} names '{part}', which is no {noun}"
                    f"{v.did_you_mean(part, choices)}; {plural}: {v.listing(choices)}"
                )
    return list(items)


def _flagfile(value, call):
    """``run_module_io_flags.txt``: read now (its values are declared like any other)."""
    from iree_build.values.flagfile import read_flagfile

    node = _file_node(value, call, "flag file")
    node = node if is_node(node) else call.env.File(v.path_text(node))
    src = node.srcnode()
    if not src.exists():
        raise IreeBuildError(
            f"{node} is built by another rule; a flag file is read while the "
            "SConscript is read, so it must exist then"
        )
    return read_flagfile(src.get_abspath())


def _reason(value, call):
    """xfail/skip of one test: a reason for every device, or {device: reason}."""
    allowed = "give the reason as a string, or {device: reason} for some devices"
    if isinstance(value, Mapping):
        out = {}
        for device, reason in value.items():
            v.one_of(device, list(HAL_DEVICES), "HAL device")
            out[device] = v.string(reason, allowed)
        return out
    return v.string(value, allowed)


def _outputs(value, call):
    allowed = "give a count >= 1 or a list of .npy file names"
    if isinstance(value, int) and not isinstance(value, bool):
        return v.number(value, allowed, integer=True, minimum=1)
    names = v.strings(value, allowed)
    for name in names:
        v.suffix(name, (".npy",), "output")
    return names


def _output(value, call):
    text = v.string(value, "give the imported file's name, e.g. 'model.mlir'")
    return v.suffix(text, (".mlir",), "output")


def _module_ref(value, call):
    """A declared module: its name, path or iree_module's result."""
    from .declared_modules import find_module

    allowed = "give a module's name (as declared with iree_module) or iree_module's result"
    if is_list(value):  # iree_module's result: the module and its side outputs (.o, .h)
        modules = [n for n in value if is_node(n) and str(n).endswith(".vmfb")]
        value = modules if len(modules) == 1 else value
    value = _one(value, "module")
    if not is_node(value):
        v.string(value, allowed)
    _, info = find_module(call.env, value)
    call.usable = (list(info.backends), list(info.devices))
    return value


def _usable(call: Call) -> tuple[list[str], list[str]] | None:
    """(backends, devices that can run them) of the module or suite being declared."""
    if call.usable is None and "srcs" in call.args and call.args.get("toolchain") is None:
        from iree_build.targets.backends import devices_for

        backends = call.args.get("target_backends") or call.env.Flatten(
            [call.env.get("IREE_TARGET_BACKENDS", ["llvm-cpu"])]
        )
        if all(b in BACKENDS for b in backends):
            call.usable = (list(backends), devices_for(backends))
    return call.usable


def _runnable(device: str, call: Call) -> str:
    from iree_build.targets.backends import check_device

    usable = _usable(call)
    base = device.split("://", 1)[0]
    if usable is not None and base not in usable[1]:
        check_device(base, *usable)  # says which devices can run it
    return device


def _hal_device(value) -> str:
    """A HAL device name, or one GPU of a driver by its index (``cuda://1``)."""
    if isinstance(value, str) and "://" in value:
        base, _, index = value.partition("://")
        if base in HAL_DEVICES and base not in ("local-sync", "local-task") and index.isdigit():
            return value
        raise IreeBuildError(
            f"HAL device {value!r}: a device URI names one GPU of a driver by its index, e.g. 'cuda://1'"
        )
    return v.one_of(value, list(HAL_DEVICES), "HAL device")


def _check_device(value, call):
    return _runnable(_hal_device(value), call)


def _check_devices(value, call):
    known = list(HAL_DEVICES)
    items = v.strings(value, f"give a list of HAL devices, e.g. ['local-task']; known: {v.listing(known)}")
    return [_runnable(_hal_device(item), call) for item in items]


def _target(value, call):
    value = _one(value, "output (a module has one)")
    if is_node(value):
        return value
    return v.string(value, "give the module's output name, e.g. 'mlp'")


# --- specs shared by the rules --------------------------------------------------

NAME = _name("mlp")
MODULE = Arg(_module_ref, none_ok=False)
FUNCTION = _text("give the exported function's name, e.g. 'predict'")
SCOPE = _text("give a parameter scope name, e.g. 'model'", none_ok=False)
DEVICE = Arg(_check_device, none_ok=False)
DEVICES = Arg(_check_devices)
BACKENDS_ARG = Arg(_check_backends)
FLAGS = Arg(lambda value, call: v.flags(value))
TOLERANCE = Arg(lambda value, call: v.tolerance(value), none_ok=False)
TOLERANCES = Arg(lambda value, call: v.tolerances(value))
FLAGFILE = Arg(_flagfile)
REASON = Arg(_reason)
INPUTS = _data(allow_function=False)
EXPECTED = _data(allow_function=True)
PARAMETERS = _files("parameter archive", (".irpa", ".safetensors", ".gguf"))
BOOL = Arg(lambda value, call: v.boolean(value), none_ok=False)
CPU = Arg(_check_cpu)
CPU_FEATURES = Arg(_check_features)
TRIPLE = Arg(_check_triple)
TOOLCHAIN = Arg(_check_toolchain)
ENTRIES = Arg(_entries, none_ok=False)
# A test's tags: the names --iree-test-tags can select (one definition: the selection's),
# sorted and unique, so the rules take them as given.
TAGS = Arg(
    lambda value, call: tuple(
        sorted(
            {
                check_tag(v.plain_name(t, "gpu"))
                for t in v.strings(value, "give tags like ['gpu', 'slow']", empty=True)
            }
        )
    )
)
TIMEOUT = Arg(lambda value, call: v.number(value, "give seconds > 0, e.g. 60", above=0))

_MODULE_TARGETS = {  # checked in this order: the triple before the CPU that depends on it
    "target_backends": BACKENDS_ARG,
    "toolchain": TOOLCHAIN,
    "triple": TRIPLE,
    "cpu": CPU,
    "cpu_features": CPU_FEATURES,
    "flags": FLAGS,
    "onnx_opset": Arg(_onnx_only(_opset, "onnx_opset")),
    "externalize_params": Arg(
        _onnx_only(lambda value, call: v.boolean(value), "externalize_params"), none_ok=False
    ),
    "params_scope": SCOPE,
}


def _backend_flags(value, call):
    """``{"vulkan-spirv": ["--iree-vulkan-target=ampere"]}``: flags for one backend's modules."""
    allowed = "give {backend: [flags]}, e.g. {'vulkan-spirv': ['--iree-vulkan-target=ampere']}"
    if not isinstance(value, Mapping):
        raise v.wrong_type(value, "a dict of backend -> flags", allowed)
    return {v.one_of(k, list(BACKENDS), "backend"): v.flags(f) for k, f in value.items()}


def _variants(value, call):
    """CMake's TARGET_CPU_FEATURES_VARIANTS: 'default' or 'ARCH:NAME:+feat,...'."""
    allowed = "give 'default' or 'ARCH:NAME:FEATURES' entries, e.g. 'x86_64:avx2_fma:+avx,+avx2,+fma'"
    items = v.strings(value, allowed)
    for item in items:
        parts = item.split(":")
        if item != "default" and (len(parts) != 3 or not all(parts)):
            raise IreeBuildError(f"{item!r} is not a variant; {allowed}")
    return items


SCHEMAS: dict[str, dict[str, Arg]] = {
    "iree_module": {"name": NAME, "src": _file("source"), **_MODULE_TARGETS},
    "IreeModule": {"target": Arg(_target, none_ok=False), "source": _file("source"), **_MODULE_TARGETS},
    "iree_import_onnx": {
        "name": NAME,
        "src": _file("ONNX model", (".onnx",)),
        "opset": Arg(_opset),
        "externalize_params": BOOL,
        "params_scope": SCOPE,
        "output": Arg(_output),
    },
    "iree_run": {
        "name": NAME,
        "module": MODULE,
        "function": FUNCTION,
        "inputs": INPUTS,
        "device": DEVICE,
        "outputs": Arg(_outputs, none_ok=False),
        "parameters": PARAMETERS,
        "parameter_scope": SCOPE,
        "flagfile": FLAGFILE,
    },
    "iree_test": {
        "name": NAME,
        "module": MODULE,
        "function": FUNCTION,
        "inputs": INPUTS,
        "expected": EXPECTED,
        "devices": DEVICES,
        "rtol": TOLERANCES,
        "atol": TOLERANCES,
        "parameters": PARAMETERS,
        "parameter_scope": SCOPE,
        "timeout": TIMEOUT,
        "tags": TAGS,
        "flagfile": FLAGFILE,
        "xfail": REASON,
        "skip": REASON,
    },
    "iree_check_test_suite": {
        "name": NAME,
        "srcs": _files("check file", empty=False, none_ok=False),
        "target_backends": BACKENDS_ARG,
        "toolchain": TOOLCHAIN,
        "triple": TRIPLE,
        "cpu": CPU,
        "cpu_features": CPU_FEATURES,
        "devices": DEVICES,
        "flags": FLAGS,
        "backend_flags": Arg(_backend_flags),
        "cpu_features_variants": Arg(_variants),
        "xfail": ENTRIES,
        "skip": ENTRIES,
        "timeout": TIMEOUT,
        "tags": TAGS,
    },
    "iree_test_suite": {
        "name": NAME,
        "root": Arg(
            lambda value, call: v.string(value, "give the folder holding the test folders, e.g. 'onnx_ops'"),
            none_ok=False,
        ),
        "config": _file("configuration file", (".json",)),
        "target_backends": BACKENDS_ARG,
        "toolchain": TOOLCHAIN,
        "flags": FLAGS,
        "devices": DEVICES,
        "timeout": TIMEOUT,
        "tags": TAGS,
    },
    "iree_onnx_test_suite": {
        "name": NAME,
        "srcs": Arg(lambda value, call: value, none_ok=False),
        "target_backends": BACKENDS_ARG,
        "toolchain": TOOLCHAIN,
        "devices": DEVICES,
        "flags": FLAGS,
        "onnx_opset": Arg(_opset),
        "rtol": Arg(lambda value, call: v.tolerance(value)),
        "atol": Arg(lambda value, call: v.tolerance(value)),
        "xfail": ENTRIES,
        "skip": ENTRIES,
    },
    "iree_benchmark": {
        "name": NAME,
        "module": MODULE,
        "function": FUNCTION,
        "inputs": Arg(lambda value, call: value, none_ok=False),  # also IREE's syntax
        "devices": DEVICES,
        "repetitions": Arg(
            lambda value, call: v.number(
                value, "give a whole number of repetitions >= 1", integer=True, minimum=1
            ),
            none_ok=False,
        ),
        "min_time": Arg(lambda value, call: value, none_ok=False),  # bench spec checks
        "warmup": Arg(lambda value, call: v.number(value, "give seconds >= 0", minimum=0), none_ok=False),
        "flops": Arg(lambda value, call: v.number(value, "give a count > 0", above=0)),
        "bytes": Arg(lambda value, call: v.number(value, "give a count > 0", above=0)),
        "threshold": Arg(
            lambda value, call: v.number(value, "give a fraction > 0, e.g. 0.1 for 10%", above=0),
            none_ok=False,
        ),
        "tags": TAGS,
        "parameters": PARAMETERS,
        "parameter_scope": SCOPE,
        "flagfile": FLAGFILE,
    },
}


# --- the wrapper -------------------------------------------------------------------

_active = threading.local()  # set while a checked rule runs: rules it calls are not rechecked


def checked(rule: str, schema: Mapping[str, Arg] | None = None):
    """Decorate a rule function so that its arguments are checked before it runs."""
    schema = SCHEMAS[rule] if schema is None else schema

    def decorate(func):
        sig = inspect.signature(func)
        params = sig.parameters
        overrides = any(p.kind is p.VAR_KEYWORD for p in params.values())
        names = [
            n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "env"
        ]
        unchecked = [n for n in names if n not in schema]
        if unchecked:  # a programming error: every argument must be checked
            raise TypeError(f"{func.__qualname__}: no argument spec for {', '.join(unchecked)}")
        positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        builder_style = bool(positional) and positional[0] == "env"

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if getattr(_active, "on", False):
                return func(*args, **kwargs)
            _active.on = True
            try:
                build_lock.before_declaration()
                args, kwargs = _check_call(
                    rule, schema, sig, names, positional, overrides, builder_style, args, kwargs
                )
                return func(*args, **kwargs)
            finally:
                _active.on = False

        wrapper.rule = rule  # type: ignore[attr-defined]
        wrapper.schema = schema  # type: ignore[attr-defined]
        return wrapper

    return decorate


def env_last(
    builder: Callable[..., Any], name: str, doc: str, renamed: Mapping[str, str] | None = None
) -> Callable[..., Any]:
    """A builder-style rule (``IreeTest(env, name, ...)``) as its SConscript form
    (``iree_test(name, ..., env=...)``): the same arguments in the same order, ``env`` a
    keyword. One signature per rule, so the two never drift. Checked once: by the builder,
    or, where the form names arguments its own way (``renamed``: builder's name -> this
    form's), by this form's schema, so that an error names the argument as the user wrote it."""
    renamed = dict(renamed or {})
    back = {new: old for old, new in renamed.items()}
    sig = inspect.signature(builder)
    _env, *rest = sig.parameters.values()
    rest = [q.replace(name=renamed.get(q.name, q.name)) for q in rest]
    keyword_env = inspect.Parameter("env", inspect.Parameter.KEYWORD_ONLY, default=None)
    before_var_kw = [q for q in rest if q.kind is not q.VAR_KEYWORD]
    var_kw = [q for q in rest if q.kind is q.VAR_KEYWORD]

    @functools.wraps(builder)
    def rule(*args, env=None, **kwargs):
        return builder(env, *args, **{back.get(k, k): value for k, value in kwargs.items()})

    rule.__name__ = rule.__qualname__ = name
    rule.__doc__ = doc
    rule.__signature__ = sig.replace(parameters=[*before_var_kw, keyword_env, *var_kw])  # type: ignore[attr-defined]
    del rule.__wrapped__  # type: ignore[attr-defined]  # its signature is its own
    return checked(name)(rule) if renamed else rule


def _check_call(rule, schema, sig, names, positional, overrides, builder_style, args, kwargs):
    where = declared_at()
    shown = ", ".join(names)
    for key in kwargs:
        if key in sig.parameters:
            continue
        if key.lower() == key:
            fail(f"{rule} {key}: unknown argument{v.did_you_mean(key, names)}; {rule} takes: {shown}", where)
        if not overrides:
            fail(
                f"{rule} {key}: {rule} takes no construction-variable overrides; set {key} on "
                f"an environment (env.Clone({key}=...)) and call env.{rule}(...)",
                where,
            )
    user_positional = positional[1:] if builder_style else positional
    given = len(args) - (1 if builder_style else 0)
    if given > len(user_positional):
        fail(
            f"{rule}: {given} positional arguments given, it takes at most {len(user_positional)} "
            f"({', '.join(user_positional)}); name the others, e.g. devices=[...]",
            where,
        )
    bound = sig.bind_partial(*args, **kwargs)
    missing = [
        n for n in names if sig.parameters[n].default is inspect.Parameter.empty and n not in bound.arguments
    ]
    if missing:
        fail(f"{rule} {missing[0]}: missing; {rule} needs {', '.join(repr(m) for m in missing)}", where)
    env = bound.arguments.get("env")
    if env is not None and not hasattr(env, "Dictionary"):
        fail(
            f"{rule} env: {v.describe(env)} is {v.type_name(env)}, not an SCons Environment; "
            "give env=Environment(...) or leave it out",
            where,
        )
    call = Call(rule, dict(bound.arguments))
    for name, spec in schema.items():
        if name not in bound.arguments:
            continue
        value = bound.arguments[name]
        if value is None and spec.none_ok:
            continue
        try:
            value = spec.check(value, call)
        except IreeBuildError as e:
            fail(f"{rule} {name}: {e}", where)
        bound.arguments[name] = call.args[name] = value
    return bound.args, bound.kwargs

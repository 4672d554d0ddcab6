"""Loading modules and reading functions the way IREE's own tools do.

Shared by call tests (:mod:`execute`) and check files (:mod:`check_runner`).
Modules are read into writable memory (``VmModule.copy_buffer``), as
``iree-run-module`` reads them: a module may write into its own constant
storage (a dispatch whose ``outs`` is a ``util.unfoldable_constant``), which
is a SIGSEGV on the read-only pages of ``VmModule.mmap``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import iree.runtime as ireert
import numpy as np

from iree_build.testing.devices import runtime_error_text
from iree_build.testing.manifest import TestSpec
from iree_build.values.arrays import resolve_opaque
from iree_build.values.element_types import BY_NAME, declared_types, hal_element_type


class TestError(Exception):
    """A problem that makes the test an ``error`` (not a mismatch)."""

    __test__ = False  # not a pytest class


def load_module(
    module_path: str | os.PathLike[str],
    instance: ireert.VmInstance,
    what: str | None = None,
    data: bytes | None = None,
) -> ireert.VmModule:
    """Read the ``.vmfb`` into writable memory (``data``: its bytes, already read; each
    module still gets a copy of its own); raises TestError with a one-line reason."""
    what = what or os.path.basename(module_path)
    try:
        if data is None:
            data = Path(module_path).read_bytes()
    except FileNotFoundError:
        raise TestError(f"module {what!r} not found (build it first)") from None
    except OSError as exc:
        raise TestError(f"cannot read module {what!r}: {exc.strerror or exc}") from None
    try:
        return ireert.VmModule.copy_buffer(instance, data)
    except Exception as exc:
        raise TestError(f"cannot load module {what!r}: {runtime_error_text(exc)}") from None


def exports(module: ireert.VmModule) -> list[str]:
    """The functions a module exports for callers (not its ``__init``-style internals)."""
    return [n for n in module.function_names if not n.startswith("__")]


def function_to_call(names: list[str], function: str, module: str, declared_at: str) -> str:
    """The function a test, run or benchmark calls: ``function`` if the module exports it,
    else (when none is named) the module's only sync export; TestError listing the exports
    otherwise. ONNX models export their graph under the graph's name (``torch-jit-export``,
    ``main_graph``), which a generated declaration does not know."""
    if not function:
        sync = [n for n in names if not n.endswith("$async")]
        if len(sync) != 1:
            raise TestError(
                f"{module!r} exports {', '.join(sync) or 'nothing'}; name the function "
                f"to call (declared at {declared_at})"
            )
        return sync[0]
    if function not in names:
        raise TestError(
            f"function {function!r} not found in {module!r} "
            f"(exports: {', '.join(names) or 'none'}; declared at {declared_at})"
        )
    return function


@dataclass(frozen=True)
class CallingConvention:
    """Argument and result codes of a VM function, e.g. ``0rr_r`` -> ("rr", "r")."""

    args: str
    results: str

    @property
    def is_exact(self) -> bool:
        """False when variadic spans make the counts unknowable from the codes."""
        return not any(c in "CD" for c in self.args + self.results)


_CCONV = re.compile(r"<VmFunction .*?\((\d)([^_)]*)_?([^)]*)\)")


def calling_convention(function: ireert.VmFunction) -> CallingConvention | None:
    """Parse the cconv from the function's repr (the binding exposes it nowhere else)."""
    match = _CCONV.match(repr(function))
    if not match:
        return None
    args, results = match.group(2), match.group(3)
    return CallingConvention(args="" if args == "v" else args, results="" if results == "v" else results)


def context_error(exc: BaseException, module_name: str, device: str) -> str:
    """Why a module cannot start on a device, in words (wrong target, or the runtime's)."""
    text = runtime_error_text(exc)
    targets = re.findall(r'#hal\.device\.target<"([^"]+)"', str(exc))
    if "INCOMPATIBLE" in text and targets:
        wanted = ", ".join(dict.fromkeys(targets))
        return f"module {module_name!r} was compiled for {wanted}, cannot run on {device}"
    return f"cannot initialize module {module_name!r} on {device}: {text}"


@dataclass(frozen=True)
class Callee:
    """The function a test calls, as the module declares it."""

    name: str
    function: ireert.VmFunction
    declaration: str  # its ``iree.abi.declaration``: argument and result types
    cconv: CallingConvention | None


def find_function(module: ireert.VmModule, spec: TestSpec, n_inputs: int) -> Callee:
    """``spec.function`` (or the module's only export) of a loaded module, checked against
    the test's inputs; raises TestError. Needs no device: a module built for another CPU
    loads here too."""
    name = function_to_call(exports(module), spec.function, spec.module, spec.declared_at)
    function = module.lookup_function(name)
    if function is None:  # listed, yet not found: the runtime's word against its own list
        raise TestError(f"function {name!r} not found in {spec.module!r} (declared at {spec.declared_at})")
    declaration = function.reflection.get("iree.abi.declaration", "")
    if declaration.startswith("async"):
        raise TestError(f"function {name!r} uses the async (fences) ABI; only sync functions can be tested")
    cconv = calling_convention(function)
    codes = cconv.args if cconv is not None and cconv.is_exact else None
    if codes is not None and len(codes) != n_inputs:
        raise TestError(
            f"function {name!r} takes {len(codes)} input(s), the test "
            f"gives {n_inputs} (declared at {spec.declared_at})"
        )
    return Callee(name, function, declaration, cconv)


def typed_inputs(inputs: list[np.ndarray], declaration: str) -> list[np.ndarray]:
    """Inputs saved as anonymous bytes (``np.save`` of an f8 array writes ``|V1``) read as
    the element type the function declares for them."""
    if not any(a.dtype.kind == "V" and a.dtype.names is None for a in inputs):
        return inputs
    declared, _ = declared_types(declaration)
    typed = []
    for i, arr in enumerate(inputs):
        name = declared[i] if i < len(declared) else None
        known = BY_NAME.get(name) if name is not None else None
        arr = resolve_opaque(arr, known.dtype if known is not None else None)
        if arr.dtype.kind == "V" and not hal_element_type(arr.dtype):
            raise TestError(
                f"input {i} is {arr.dtype.itemsize} raw byte(s) per element (a .npy of an "
                "ml_dtypes type saved by np.save) and the function does not declare a "
                "type of that width for it"
            )
        typed.append(arr)
    return typed


def scalar_argument(index: int, code: str, arr: np.ndarray) -> int | float:
    """The value of a scalar argument (VM calling-convention code ``i``/``I``: an
    integer, ``f``/``F``: a float) given as a one-element array; TestError otherwise."""
    if arr.size != 1:
        raise TestError(f"input {index} must be a scalar, got shape {arr.shape}")
    value = arr.reshape(()).item()
    if code in "iI":
        if arr.dtype.kind not in "biu":
            raise TestError(f"input {index} must be an integer, got {arr.dtype}")
        return int(value)
    if arr.dtype.kind not in "fiu":
        raise TestError(f"input {index} must be a float, got {arr.dtype}")
    return float(value)

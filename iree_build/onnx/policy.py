"""Which opset to import an ONNX model at, and which compile flags it needs.

Decided while the SConscript is read, from the model itself, so that a folder
of models needs no table by hand (measured on the onnx package's 117
``pytorch-*`` test models with iree-base-compiler 3.13):

- A model older than ``TARGET_OPSET`` is upgraded to it: the importer's
  lowering misses many old operator forms (``MaxPool``, ``BatchNormalization``,
  ``Add`` with ``broadcast``), which then fail to compile.
- Whether ONNX's version converter can upgrade a model is only known by trying
  it: the trial runs here, on the model without its external data. A model of
  IR version 3 whose upgraded graph fails ONNX's checker (the converter adds
  initializers that are not graph inputs, which IR 3 forbids: the Pad models)
  gets its ``ir_version`` raised to 4 first. A model the converter still
  cannot upgrade keeps its own opset.
- A model with f64 inputs or outputs is compiled with f64 kept: by default the
  compiler demotes f64 to f32 inside the module but not at its boundary, and
  every call fails.

``onnx_opset=N`` upgrades to N instead, ``onnx_opset="own"`` keeps the model's
own opset; ``describe()`` is what ``--debug=explain`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from iree_build.errors import IreeBuildError

TARGET_OPSET = 17  # the opset the importer lowers well (iree-base-compiler 3.13)
IR_WITHOUT_INITIALIZER_INPUTS = 4  # from IR 4 on, initializers need not be graph inputs
KEEP_F64_FLAG = "--iree-input-demote-f64-to-f32=false"
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class OnnxPolicy:
    """The import and compile choices for one model, with the reason in words."""

    own_opset: int | None  # the model's ai.onnx opset (None: not known at declaration)
    opset: int | None  # upgrade to this before importing (None: import at its own)
    ir_version: int | None = None  # raise the model's ir_version to this first
    own_ir_version: int | None = None
    keep_f64: bool = False  # compile with KEEP_F64_FLAG
    reason: str = ""

    def compile_flags(self, declared: Sequence[str] = ()) -> list[str]:
        """Flags the model needs, unless the declared flags already decide the same."""
        name = KEEP_F64_FLAG.split("=", 1)[0]
        if not self.keep_f64 or any(f.split("=", 1)[0] == name for f in declared):
            return []
        return [KEEP_F64_FLAG]

    def summary(self) -> str:
        """A few words for the progress line: ``opset 17 from 6``."""
        if self.opset is None:
            return f"opset {self.own_opset}" if self.own_opset is not None else "own opset"
        text = f"opset {self.opset}" + (f" from {self.own_opset}" if self.own_opset is not None else "")
        if self.ir_version is not None:
            text += f", ir_version {self.ir_version}"
        return text

    def describe(self) -> str:
        """One line for signatures and ``--debug=explain``: what was chosen and why."""
        if self.opset is None:
            what = f"its own ({self.own_opset})" if self.own_opset is not None else "the model's own"
        else:
            what = str(self.opset)
            if self.own_opset is not None:
                what += f" (upgraded from {self.own_opset})"
        if self.ir_version is not None:
            what += f", ir_version raised {self.own_ir_version} -> {self.ir_version} first"
        return f"{what}: {self.reason}" if self.reason else what


ONNX_EXTRA = "pip install 'iree-build-scons[onnx]'"


def require_onnx(what: str) -> None:
    """The onnx package is an optional extra: say how to get it, in one line."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise IreeBuildError(f"{what} needs the onnx package: {ONNX_EXTRA}") from None


def _load_header(path: str):
    """The model without its external data (structure, opsets, types: cheap)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(path, load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise IreeBuildError(f"cannot read {path} as an ONNX model: {e}") from None


def default_opset(model) -> int | None:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return entry.version
    return None


def has_f64_boundary(model) -> bool:
    import onnx

    return any(
        v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        for v in [*model.graph.input, *model.graph.output]
    )


def _has_external_data(model) -> bool:
    import onnx

    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def upgrade_error(model, opset: int) -> str:
    """Why ONNX cannot upgrade ``model`` to ``opset`` the way the importer does it ('' if it can).

    The importer converts, then runs ONNX's checker. The checker needs the
    external data, so for models that keep it outside only the conversion is tried.
    """
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, opset)
        if not _has_external_data(model):
            onnx.checker.check_model(converted)
    except Exception as e:  # the converter and checker raise several kinds
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]
    return ""


def decide(
    path: str, requested: int | Literal["own"] | None = None, target: int = TARGET_OPSET
) -> OnnxPolicy:
    """The policy for the model at ``path``; ``requested`` is the user's ``onnx_opset``."""
    model = _load_header(path)
    own, ir = default_opset(model), model.ir_version
    keep_f64 = has_f64_boundary(model)
    f64 = "; f64 inputs/outputs kept f64" if keep_f64 else ""
    if requested == "own":
        return OnnxPolicy(own, None, None, ir, keep_f64, "onnx_opset='own' declared" + f64)
    goal = requested if requested is not None else target
    why = f"onnx_opset={goal} declared" if requested is not None else f"automatic (older than {target})"
    if own is None:
        return OnnxPolicy(
            own,
            goal if requested is not None else None,
            None,
            ir,
            keep_f64,
            "the model imports no ai.onnx opset" + f64,
        )
    if own >= goal:
        why = (
            "onnx_opset declared, not above the model's"
            if requested is not None
            else f"automatic (not older than {target})"
        )
        return OnnxPolicy(own, None, None, ir, keep_f64, why + f64)
    error = upgrade_error(model, goal)
    if not error:
        return OnnxPolicy(own, goal, None, ir, keep_f64, why + f64)
    if ir < IR_WITHOUT_INITIALIZER_INPUTS:
        model.ir_version = IR_WITHOUT_INITIALIZER_INPUTS
        if not upgrade_error(model, goal):
            return OnnxPolicy(
                own,
                goal,
                IR_WITHOUT_INITIALIZER_INPUTS,
                ir,
                keep_f64,
                f"{why}; ONNX's upgrade fails at IR {ir} ({error})" + f64,
            )
    if requested is not None:  # asked for: the import step reports the converter's error
        return OnnxPolicy(own, goal, None, ir, keep_f64, f"{why}; ONNX's upgrade fails ({error})" + f64)
    return OnnxPolicy(own, None, None, ir, keep_f64, f"kept: ONNX's upgrade to {goal} fails ({error})" + f64)


def unknown(requested: int | str | None) -> OnnxPolicy:
    """For a model another rule builds: nothing can be read while the SConscript is read."""
    opset = requested if isinstance(requested, int) else None
    return OnnxPolicy(
        None,
        opset,
        reason="the model is built by another rule: not inspected"
        + ("" if opset else "; declare onnx_opset=N to upgrade it"),
    )

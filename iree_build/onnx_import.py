"""Importing an ONNX model into MLIR, as its own cached build step.

The import runs in the compile workers (it loads the compiler's MLIR bindings
and the ``onnx`` package, which the build process itself never needs), through
the same importer ``iree-import-onnx`` uses. Its signature is the importer
options and the compiler identity; the model and its external data files are
the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import IreeBuildError


@dataclass(frozen=True)
class ImportRequest:
    source: str  # model.onnx (path as the worker sees it, relative to the top folder)
    output: str  # the .mlir
    compiler: str
    opset: int | None = None  # upgrade the model to this opset first (None: its own)
    params: str | None = None  # externalize large weights into this .irpa
    params_scope: str = "model"
    data_dir: str | None = None
    side_outputs: tuple[str, ...] = field(default=())
    cli: bool = False

    def argv(self, output: str, params: str | None) -> list[str]:
        """Arguments of the importer, as ``iree-import-onnx`` takes them."""
        args = [self.source, "-o", output]
        if self.opset is not None:
            args += ["--opset-version", str(self.opset)]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        if self.params is not None:
            args += ["--externalize-params", "--params-scope", self.params_scope,
                     "--save-params-to", params or self.params]
        return args

    verb = "import"  # for messages: "IREE import failed: ..."
    doing = "importing"

    def signature_text(self) -> str:
        lines = [f"importer: iree-import-onnx of {self.compiler}",
                 f"opset: {self.opset if self.opset is not None else 'the model’s own'}"]
        if self.params is not None:
            lines.append(f"externalized parameters, scope {self.params_scope}")
        return "\n".join(lines)

    explain_text = signature_text

    def command_line(self) -> str:
        import shlex

        return shlex.join(["iree-import-onnx", *self.argv(self.output, self.params)])

    def to_wire(self, temp_output: str, diagnostics: str) -> dict:
        temp_params = None
        if self.params is not None:
            temp_params = f"{temp_output}.params.irpa"
        return {
            "kind": "import_onnx",
            "argv": self.argv(temp_output, temp_params),
            "output": self.output,
            "temp_output": temp_output,
            "params": self.params,
            "temp_params": temp_params,
            "diagnostics": diagnostics,
            "side_outputs": [],
        }


def check_opset(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IreeBuildError(f"onnx_opset must be a positive opset number, not {value!r}")
    return value

"""Importing an ONNX model into MLIR, as its own cached build step.

The import runs in the compile workers (it loads the compiler's MLIR bindings
and the ``onnx`` package, which the build process itself never needs), through
the same importer ``iree-import-onnx`` uses. Its signature is the importer
options, the opset policy (``onnx_policy``) and the compiler and onnx versions;
the model and its external data files are the inputs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from iree_build.onnx.policy import OnnxPolicy


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
    ir_version: int | None = None  # raise the model's ir_version to this before the upgrade
    policy: str = ""  # the opset policy in words (OnnxPolicy.describe())
    onnx_version: str = ""
    allow_failure: bool = False  # an expected failure: record it instead of failing the build

    @classmethod
    def with_policy(cls, policy: OnnxPolicy, **kw) -> ImportRequest:
        return cls(opset=policy.opset, ir_version=policy.ir_version, policy=policy.describe(), **kw)

    @property
    def prepared_model(self) -> str | None:
        """The model with its ir_version raised, written beside the output (None: not needed)."""
        return f"{self.output}.ir{self.ir_version}.model" if self.ir_version is not None else None

    def argv(self, output: str, params: str | None) -> list[str]:
        """Arguments of the importer, as ``iree-import-onnx`` takes them."""
        args = [self.prepared_model or self.source, "-o", output]
        if self.opset is not None:
            args += ["--opset-version", str(self.opset)]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        if self.params is not None:
            args += [
                "--externalize-params",
                "--params-scope",
                self.params_scope,
                "--save-params-to",
                params or self.params,
            ]
        return args

    verb = "import"  # for messages: "IREE import failed: ..."
    doing = "importing"

    def signature_text(self) -> str:
        lines = [
            f"importer: iree-import-onnx of {self.compiler}",
            f"opset: {self.policy or (self.opset if self.opset is not None else 'the model’s own')}",
        ]
        if self.onnx_version:
            lines.append(f"onnx: {self.onnx_version}")
        if self.params is not None:
            lines.append(f"externalized parameters, scope {self.params_scope}")
        return "\n".join(lines)

    explain_text = signature_text

    def command_line(self) -> str:
        """The equivalent commands: the ir_version step (if any), then ``iree-import-onnx``."""
        steps = []
        if self.prepared_model:
            steps.append(
                shlex.join(
                    [
                        "python",
                        "-m",
                        "iree_build.onnx.prepare",
                        "--ir-version",
                        str(self.ir_version),
                        self.source,
                        "-o",
                        self.prepared_model,
                    ]
                )
            )
        steps.append(shlex.join(["iree-import-onnx", *self.argv(self.output, self.params)]))
        return " && ".join(steps)

    def to_wire(self, temp_output: str, diagnostics: str) -> dict:
        temp_params = None
        if self.params is not None:
            temp_params = f"{temp_output}.params.irpa"
        return {
            "kind": "import_onnx",
            "argv": self.argv(temp_output, temp_params),
            "source": self.source,
            "prepared_model": self.prepared_model,
            "ir_version": self.ir_version,
            "output": self.output,
            "temp_output": temp_output,
            "params": self.params,
            "temp_params": temp_params,
            "diagnostics": diagnostics,
            "side_outputs": [],
        }


_SHAPE_NODE = re.compile(r"\(op_type:(?P<op>[\w.]+), node name: (?P<name>[^)]*)\)")


def import_error_line(exc: BaseException) -> str:
    """One line for an importer exception, naming the ONNX node and op it failed on.

    The importer raises while it holds the node (``NodeImporter.import_node``'s
    ``node``); ONNX's shape inference names it in its message instead.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    node = None
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame holding an ONNX NodeProto wins
        candidate = tb.tb_frame.f_locals.get("node")
        if type(candidate).__name__ == "NodeProto" and hasattr(candidate, "op_type"):
            node = candidate
        tb = tb.tb_next
    if node is not None:
        op = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        where = f"node '{node.name}' ({op})" if node.name else f"an unnamed {op} node"
        return f"{where}: {text}"[:500]
    m = _SHAPE_NODE.search(str(exc))
    if m:
        return f"node '{m.group('name')}' ({m.group('op')}): {text}"[:500]
    return text[:500]

"""Raise an ONNX model's ``ir_version`` before the importer upgrades its opset.

ONNX's version converter adds initializers that are not graph inputs (Pad's
``pads`` become one), which IR 3 forbids, so the importer's check fails after
the upgrade; from IR 4 on it is allowed. External data stays where it is (the
importer is given the original folder as ``--data-dir``).

    python -m iree_build.onnx.prepare --ir-version 4 model.onnx -o prepared.onnx
"""

from __future__ import annotations

import argparse
import sys


def raise_ir_version(source: str, output: str, ir_version: int) -> None:
    import onnx

    model = onnx.load(source, load_external_data=False)
    model.ir_version = max(model.ir_version, ir_version)
    onnx.save(model, output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("-o", dest="output", required=True)
    parser.add_argument("--ir-version", type=int, required=True)
    args = parser.parse_args(argv)
    raise_ir_version(args.source, args.output, args.ir_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())

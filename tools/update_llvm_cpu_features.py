"""Regenerate iree_build/data/llvm_cpu_features.json from the installed compiler.

Runs ``iree-compile --iree-llvmcpu-target-cpu=help`` for each architecture and
keeps the feature names LLVM lists; run it after upgrading iree-base-compiler.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from iree_build.targets.cpu_features import parse_llvm_help

TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu",
           "riscv64": "riscv64-unknown-linux-gnu"}
OUT = Path(__file__).resolve().parent.parent / "iree_build" / "data" / "llvm_cpu_features.json"


def main() -> int:
    from iree.compiler.version import VERSION

    features = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f.mlir"
        src.write_text("func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> { return %a : tensor<4xf32> }\n")
        for arch, triple in TRIPLES.items():
            proc = subprocess.run(
                [str(Path(sys.executable).parent / "iree-compile"), str(src), "-o", str(Path(tmp) / "f.vmfb"),
                 "--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                 f"--iree-llvmcpu-target-triple={triple}", "--iree-llvmcpu-target-cpu=help"],
                capture_output=True, text=True)
            _, names = parse_llvm_help(proc.stderr + proc.stdout)
            if not names:
                print(f"no feature list for {arch}:\n{proc.stderr[-2000:]}", file=sys.stderr)
                return 1
            features[arch] = sorted(set(names))
    doc = {"_about": "LLVM CPU feature names per architecture, read from iree-base-compiler "
                     f"{VERSION}'s --iree-llvmcpu-target-cpu=help output "
                     "(tools/update_llvm_cpu_features.py). A cpu_features entry not listed here "
                     "is rejected while the SConscript is read, instead of LLVM ignoring it.",
           "compiler": str(VERSION), "features": features}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{a} {len(f)}" for a, f in features.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One module compile: what goes in, what comes out, and its signature text.

The signature text is what decides a rebuild besides the files themselves; it
is plain, ordered lines so that ``scons --debug=explain`` can show a person what
changed (a flag, the CPU, the compiler).
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CompileRequest:
    source: str  # path as given to the compiler (relative to the build's top folder)
    output: str  # the .vmfb
    flags: tuple[str, ...]  # complete flag list after toolchain and CPU expansion
    compiler: str  # compiler identity, e.g. "iree-base-compiler 3.13.0 (89ece87b8985)"
    summary: str = ""  # short "[llvm-cpu, cpu=znver3]" for progress lines
    side_outputs: tuple[str, ...] = field(default=())  # written by the compiler itself (.o/.h)
    cli: bool = False  # only the iree-compile tool can do it (vm-c output, tool-only flags)

    verb = "compile"  # for messages: "IREE compile failed: ..."
    doing = "compiling"

    def signature_text(self) -> str:
        """Everything but the input files that the output depends on, one item a line."""
        tool = ["compiled with: iree-compile tool"] if self.cli else []
        return "\n".join([f"compiler: {self.compiler}", *tool, *(f"flag: {f}" for f in self.flags)])

    def explain_text(self) -> str:
        """The signature text with very long flags (host CPU feature lists) abridged."""
        return abridge(self.signature_text())

    def command_line(self) -> str:
        """The equivalent ``iree-compile`` command, for verbose output and bug reports."""
        return shlex.join(["iree-compile", *self.flags, self.source, "-o", self.output])

    def to_wire(self, temp_output: str, diagnostics: str) -> dict:
        return {
            "source": self.source,
            "output": self.output,
            "temp_output": temp_output,
            "flags": list(self.flags),
            "diagnostics": diagnostics,
            "side_outputs": list(self.side_outputs),
            "cli": self.cli,
        }


def abridge(signature_text: str) -> str:
    """A signature text with very long lines (host CPU feature lists) shortened.

    SCons prints this, old and new, in ``--debug=explain``; the full text
    still decides rebuilds (see ``CompileRequest.signature_text``).
    """
    lines = []
    for line in signature_text.splitlines():
        if len(line) > 160:
            digest = hashlib.sha256(line.encode()).hexdigest()[:12]
            line = f"{line[:100]}... ({len(line)} chars, sha256 {digest})"
        lines.append(line)
    return "\n".join(lines)

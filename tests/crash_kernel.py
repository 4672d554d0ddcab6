"""The module of ``examples/faults/src/cpu``: a custom dispatch whose C kernel writes
through a null pointer, as text for tests and ``benchmarks/test_runner.py`` to rebuild
with other check functions beside it.
"""

from __future__ import annotations

from pathlib import Path

_CPU = Path(__file__).resolve().parent.parent / "examples" / "faults" / "src" / "cpu"

CRASH_C = (_CPU / "crash.c").read_text()
_EXAMPLE = (_CPU / "crash.mlir").read_text().replace('"build/cpu/crash_x86_64.o"',
                                                        '"kernels/crash_x86_64.o"')
CRASH_HEAD = _EXAMPLE[:_EXAMPLE.index("  func.func @test_before()")]
CRASH_FUNCTIONS = _EXAMPLE[len(CRASH_HEAD):_EXAMPLE.rindex("}")] + """\
  func.func @crash_call(%a: tensor<4xf32>) -> tensor<4xf32> {
    %c4 = arith.constant 4 : index
    %0 = flow.dispatch @ex::@crash[%c4](%a, %c4) : (tensor<4xf32>, index) -> %a
    return %0 : tensor<4xf32>
  }
"""

OK_CASE = """\
  func.func @{name}() {{
    %a = util.unfoldable_constant dense<[1, 2]> : tensor<2xi32>
    check.expect_eq_const(%a, dense<[1, 2]> : tensor<2xi32>) : tensor<2xi32>
    return
  }}
"""

CRASH_CASE = """\
  func.func @{name}() {{
    %c4 = arith.constant 4 : index
    %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
    %0 = flow.dispatch @ex::@crash[%c4](%a, %c4) : (tensor<4xf32>, index) -> %a
    check.expect_almost_eq_const(%0, dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>) : tensor<4xf32>
    return
  }}
"""


def crash_module(functions: str = CRASH_FUNCTIONS) -> str:
    """The crashing executable with ``functions`` (MLIR text) beside it, as one module."""
    return CRASH_HEAD + functions + "}\n"


CRASH_MLIR = crash_module()

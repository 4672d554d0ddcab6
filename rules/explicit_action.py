"""Python actions whose signature is text we state, not the function's bytecode.

A plain SCons function action signs its own bytecode, so a Python upgrade (or
an edit to these rules that changes nothing) would redo every compile and test.
Here the signature is what actually determines the output, and the same text,
possibly abridged, is what ``--debug=explain`` shows as the old and new action.
"""

from __future__ import annotations

from typing import Callable

import SCons.Action

from .action_gate import GATE

SignatureFn = Callable[[list, list, object], str]


class ExplicitAction(SCons.Action.FunctionAction):
    def __init__(self, function, signature: SignatureFn, cmdstr: str,
                 explain: SignatureFn | None = None, exclusive: bool = False) -> None:
        super().__init__(function, {"cmdstr": cmdstr})
        self._signature = signature
        self._explain = explain or signature
        self._exclusive = exclusive  # a benchmark: no other IREE action runs meanwhile

    def execute(self, target, source, env, executor=None):
        with GATE.exclusive() if self._exclusive else GATE.shared():
            return super().execute(target, source, env, executor)

    def get_presig(self, target, source, env, executor=None) -> bytes:
        return self._signature(target, source, env).encode()

    def genstring(self, target, source, env, executor=None) -> str:
        return self._explain(target, source, env)

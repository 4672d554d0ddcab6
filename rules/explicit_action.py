"""Python actions whose signature is text we state, not the function's bytecode.

A plain SCons function action signs its own bytecode, so a Python upgrade (or
an edit to these rules that changes nothing) would redo every compile and test.
Here the signature is what actually determines the output, and the same text,
possibly abridged, is what ``--debug=explain`` shows as the old and new action.

SCons asks for both on every run, also when nothing is built (the signature to
decide, the action text to record it), so the text is made once per target
and kept on the target node.
"""

from __future__ import annotations

from typing import Callable

import SCons.Action

from .action_gate import GATE

SignatureFn = Callable[[list, list, object], str]


class ExplicitAction(SCons.Action.FunctionAction):
    def __init__(self, function, signature: SignatureFn, cmdstr: str,
                 abridge: Callable[[str], str] | None = None, exclusive: bool = False) -> None:
        super().__init__(function, {"cmdstr": cmdstr})
        self._signature = signature
        self._abridge = abridge
        self._exclusive = exclusive  # a benchmark: no other IREE action runs meanwhile

    def execute(self, target, source, env, executor=None):
        with GATE.exclusive() if self._exclusive else GATE.shared():
            return super().execute(target, source, env, executor)

    def signature_text(self, target, source, env) -> str:
        """The signature text of these targets, made once per build."""
        attributes = target[0].attributes
        memo = getattr(attributes, "iree_signature", None)
        if memo is None or memo[0] is not self:
            memo = (self, self._signature(target, source, env))
            attributes.iree_signature = memo
        return memo[1]

    def get_presig(self, target, source, env, executor=None) -> bytes:
        return self.signature_text(target, source, env).encode()

    def genstring(self, target, source, env, executor=None) -> str:
        text = self.signature_text(target, source, env)
        return self._abridge(text) if self._abridge else text

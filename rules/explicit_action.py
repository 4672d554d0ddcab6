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

import sys
from collections.abc import Callable

import SCons.Action

from .action_gate import GATE

SignatureFn = Callable[[list, list, object], str]


_KINDS = ((".result.json", "test"), (".bench.json", "bench"), (".vmfb", "compile"), (".mlir", "import"))


def _what(target: list) -> str:
    """What a progress line says runs: "compile mlp.vmfb", "test mlp_test.local-task"."""
    name = target[0].name
    for suffix, kind in _KINDS:
        if name.endswith(suffix):
            return f"{kind} {name[: -len(suffix)] if kind in ('test', 'bench') else name}"
    return name


class ExplicitAction(SCons.Action.FunctionAction):
    def __init__(
        self,
        function,
        signature: SignatureFn,
        cmdstr: str,
        abridge: Callable[[str], str] | None = None,
        exclusive: bool = False,
        what: Callable[[list], str] | None = None,
    ) -> None:
        super().__init__(function, {"cmdstr": cmdstr})
        self._signature = signature
        self._abridge = abridge
        self._exclusive = exclusive  # a benchmark: no other IREE action runs meanwhile
        # An action a person waits for (compile, test, ...), counted by the progress line;
        # bookkeeping (staging data, writing the manifest) has no command string.
        self.counted = bool(cmdstr)
        self._what = what or _what

    def __call__(self, target, source, env, *args, **kw):
        from . import progress

        board = progress.of(env) if self.counted else None
        if board is None:
            return super().__call__(target, source, env, *args, **kw)
        executor = kw.get("executor")
        targets = target or (executor.get_all_targets() if executor is not None else [])
        if not targets:
            return super().__call__(target, source, env, *args, **kw)
        key = id(targets[0])
        board.begin(key, self._what(targets))
        ok = False
        try:
            stat = super().__call__(target, source, env, *args, **kw)
            ok = not stat
            return stat
        finally:
            board.end(key, ok)

    def print_cmd_line(self, s, target, source, env) -> None:
        from . import progress

        board = progress.of(env) if self.counted else None
        prefix = board.prefix(id(target[0])) if board is not None else ""
        sys.stdout.write(prefix + s + "\n")

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

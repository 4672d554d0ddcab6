"""What SCons prints for a function action: its ``strfunction`` attribute, typed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Action = Callable[[Any, Any, Any], Any]


def set_strfunction(action: Action, strfunction: Callable[[Any, Any, Any], str] | None) -> None:
    """SCons shows ``strfunction(target, source, env)`` for ``action``; None: nothing (the rule
    prints its own line)."""
    action.strfunction = strfunction  # type: ignore[attr-defined]  # SCons reads a function attribute

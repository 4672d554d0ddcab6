"""User-facing errors: one line, naming the place to fix."""

from __future__ import annotations


class IreeBuildError(Exception):
    """A mistake in the user's declarations or data, reported without a traceback.

    ``where`` is the place to fix (``SConscript:12``, ``toolchains/x.toml``); the
    SCons side fills it in when the engine does not know it.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

"""Policies already decided, so an unchanged model is not read on every SConscript read.

Deciding reads the model and tries ONNX's upgrade: a few milliseconds for a small
model, much more for one with large weights inline. The cache is a JSON file
keyed by the model's path, size and modification time, the onnx package's
version, the requested opset and the target opset; a changed model, onnx
upgrade or option decides afresh.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path
from typing import Literal

from iree_build.onnx.policy import TARGET_OPSET, OnnxPolicy, decide
from iree_build.testing.identity import package_version
from iree_build.util.atomic import atomic_write_text

FORMAT = "iree_build.onnx_policy/1"


def onnx_version() -> str:
    """ONNX's converter and shape inference decide and import: part of keys and signatures."""
    return package_version("onnx", "not installed")


class PolicyCache:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._changed = False
        self._entries: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text())
            if (
                isinstance(data, dict)
                and data.get("format") == FORMAT
                and isinstance(data.get("models"), dict)
            ):
                self._entries = data["models"]
        except (OSError, ValueError):
            pass  # no cache yet, or an unreadable one: decide afresh

    def _key(self, model: str, requested, target: int) -> str:
        st = os.stat(model)
        return json.dumps(
            [os.path.abspath(model), st.st_size, st.st_mtime_ns, onnx_version(), requested, target]
        )

    def decide(
        self, model: str, requested: int | Literal["own"] | None = None, target: int = TARGET_OPSET
    ) -> OnnxPolicy:
        key = self._key(model, requested, target)
        with self._lock:
            entry = self._entries.get(key)
        if isinstance(entry, dict):
            try:
                return OnnxPolicy(**entry)
            except TypeError:
                pass  # written by another version: decide afresh
        policy = decide(model, requested, target)
        same_model = json.loads(key)[:1] + json.loads(key)[4:]
        with self._lock:
            for old in [k for k in self._entries if self._model_of(k) == same_model]:
                del self._entries[old]  # an earlier version of this model
            self._entries[key] = dataclasses.asdict(policy)
            self._changed = True
        return policy

    @staticmethod
    def _model_of(key: str) -> list:
        try:
            parts = json.loads(key)
            return parts[:1] + parts[4:]
        except (ValueError, TypeError):
            return []

    def save(self) -> None:
        """Write the cache if it changed (whole or not at all), keeping only live models."""
        with self._lock:
            if not self._changed:
                return
            live = {
                k: v
                for k, v in self._entries.items()
                if self._model_of(k) and os.path.exists(self._model_of(k)[0])
            }
            text = json.dumps({"format": FORMAT, "models": live}, indent=1, sort_keys=True)
        try:
            atomic_write_text(self.path, text + "\n")
        except OSError:
            pass  # a read-only checkout: the next build decides again

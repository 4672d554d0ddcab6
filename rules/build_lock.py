"""One build at a time per tree: a second ``scons`` says so and touches nothing.

The lock itself is the engine's (``iree_build/build_lock.py``), shared with the
standalone test runner.
"""

from __future__ import annotations

from iree_build.build_lock import LOCK_NAME, acquire

__all__ = ["LOCK_NAME", "acquire"]

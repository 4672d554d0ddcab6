"""One registry of what a build declared: modules, runs, tests, the build folder.

Every rule writes here and every action reads from here, so that the hierarchy,
labels and selection are in one place, and a test can make a fresh one. It lives
on the build's top folder node (one per SCons file system, i.e. per build), not
in module globals.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from iree_build.errors import IreeBuildError
from iree_build.util.printable import printable


@dataclass
class Registry:
    """What one build declared, and what its test run found."""

    modules: dict[str, Any] = field(default_factory=dict)  # .vmfb abspath -> ModuleInfo
    runs: dict[str, Any] = field(default_factory=dict)  # first output abspath -> DeclaredRun
    tests: list[Any] = field(default_factory=list)  # DeclaredTest, in declaration order
    by_result: dict[str, Any] = field(default_factory=dict)  # result abspath -> DeclaredTest
    names: set[str] = field(default_factory=set)
    build_dir: Any = None  # Dir node: where the manifest and report go
    ran: dict[str, Any] = field(default_factory=dict)  # name -> TestResult run by this process
    ran_lock: threading.Lock = field(default_factory=threading.Lock)
    print_lock: threading.Lock = field(default_factory=threading.Lock)
    benchmarks: list[Any] = field(default_factory=list)  # DeclaredBenchmark
    bench_by_result: dict[str, Any] = field(default_factory=dict)
    bench_ran: dict[str, Any] = field(default_factory=dict)  # name -> BenchResult
    bench_state: dict[str, Any] = field(default_factory=dict)  # baseline, start time
    presets: set[str] = field(default_factory=set)  # toolchain presets in use (for -h)
    onnx_policies: Any = None  # iree_build.onnx.policy_cache.PolicyCache, loaded on first use
    flags: set[str] = field(default_factory=set)  # one-time set-ups done ("summary", "alias", ...)
    selection: Any = None  # what the command line selects (iree_build.testing.selection.Selection)
    test_alias: Any = None  # the "test" Alias node
    compiles_expected: int = 0  # declared modules whose output is missing (compile_action.prestart)
    staged: dict[str, Any] = field(default_factory=dict)  # build-tree data path -> data_files.Staged
    stages: dict[str, Any] = field(default_factory=dict)  # folder abspath -> data_files.Stage
    converted: dict[str, Any] = field(default_factory=dict)  # build-tree .npy -> IreeValue it is read from
    read_ahead: Any = None  # rules.read_ahead.ReadAhead, False when not wanted, None: not yet decided
    publication: Any = None  # the page, begun when the first test is to run (report.publish)
    progress: Any = None  # rules.progress.Progress, False when off, None: not yet started
    failed_steps: list[tuple[str, str, str]] = field(default_factory=list)  # (output, why, where)
    lock_wanted: list[str] = field(default_factory=list)  # top folders to lock at the first declaration
    deferred: list[tuple[str, str]] = field(
        default_factory=list
    )  # (message, where): found as the tool loaded
    relative_names: dict[str, str] = field(default_factory=dict)  # SConscript path -> from the top
    compile_pool: Any = None  # iree_build.compile.pool.CompilePool, started on first use
    setup_lock: threading.Lock = field(default_factory=threading.Lock)  # job threads making the above
    _hasher: Any = None
    _manifest: str | None = None

    def once(self, what: str) -> bool:
        """True the first time ``what`` is asked for in this build."""
        if what in self.flags:
            return False
        self.flags.add(what)
        return True

    def hasher(self) -> Any:
        """One file hasher per build: each built file is hashed once."""
        if self._hasher is None:
            from iree_build.testing.signature import FileHasher

            self._hasher = FileHasher()
        return self._hasher

    def rel(self, node: Any) -> str:
        """A node's path relative to the build folder, '/'-separated (manifest paths)."""
        return os.path.relpath(node.get_abspath(), self.build_dir.get_abspath()).replace(os.sep, "/")

    def label_folder(self, folder: Any) -> str:
        """The folder part of a label: the declaring SConscript's (variant) folder, relative
        to the build folder ("" for the build folder itself)."""
        rel = self.rel(folder)
        if not printable(rel):  # part of every test name here: the manifest would refuse it
            raise IreeBuildError(
                f"the folder {rel!r} has a name that is not UTF-8 text or holds a control character; "
                "rename it: it is part of every test name, printed and written to the reports"
            )
        return "" if rel == "." else rel

    def manifest_text(self, spec_of: Any) -> str:
        """The manifest, built once per build (its signature and its action share it)."""
        if self._manifest is None:
            from iree_build.testing.manifest import manifest_json

            self._manifest = manifest_json([spec_of(t) for t in self.tests])
        return self._manifest


def registry(env: Any) -> Registry:
    """The registry of the build ``env`` belongs to (made on first use)."""
    return _of_top(env.fs.Top)


def current() -> Registry:
    """The registry of this process's build, for code that is given no environment (a rule
    wrapper, a cache entry, a job thread): SCons keeps one file system per build."""
    import SCons.Node.FS

    return _of_top(SCons.Node.FS.get_default_fs().Top)


def _of_top(top: Any) -> Registry:
    found = getattr(top.attributes, "iree_registry", None)
    if found is None:
        found = top.attributes.iree_registry = Registry()
    return found

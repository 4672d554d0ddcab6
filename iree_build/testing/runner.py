"""The standalone test runner behind ``python -m iree_build test BUILD_DIR``.

Runs a built tree's tests with ``iree.runtime`` alone (no SCons, no compiler):
selects tests, skips those whose stored result still holds (same signature,
passed), runs the rest (CPU tests in parallel, each GPU lane one test at a time),
writes result files and a JUnit report, and prints one line per test plus a
closing summary.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TextIO

from iree_build.errors import IreeBuildError
from iree_build.report.publish import Publication
from iree_build.testing import selection
from iree_build.testing.device_names import canonical_device, is_cpu_device
from iree_build.testing.emulation import emulators_here, lane_hardware
from iree_build.testing.manifest import (
    MANIFEST_NAME,
    Manifest,
    TestSpec,
    check_contained,
    load_manifest,
    resolve,
)
from iree_build.testing.results import (
    FAILING,
    TestResult,
    device_required,
    flatten,
    read_result,
    result_line,
    summary_line,
    write_junit,
    write_result,
)
from iree_build.testing.run_pool import RunPool, default_run_pool, release_workers
from iree_build.testing.selection import Selection
from iree_build.testing.signature import FileHasher, test_signature
from iree_build.testing.summary import failure_lines
from iree_build.util.atomic import remove_dead_temps

JUNIT_NAME = "iree_test_results.xml"


class UsageError(IreeBuildError):
    """A bad command-line choice (exit code 2)."""


def device_identity(spec: TestSpec) -> str:
    """Which hardware a result on this machine holds for (:mod:`iree_build.hardware`, as
    ``scons test`` signs it): a result copied from another machine, or from a software
    Vulkan driver, says nothing about this one's CPU or GPU; an emulated lane adds the
    emulated architecture, the emulator and its tools."""
    return lane_hardware(spec.device, spec.arch, spec.emulator)


def up_to_date_result(
    spec: TestSpec, base_dir: str | os.PathLike[str], signature: str | None
) -> TestResult | None:
    """The stored result if it passed with this exact signature, else None."""
    if not signature:
        return None
    stored = read_result(resolve(base_dir, spec.result))
    if stored is None or stored.status != "passed" or stored.signature != signature:
        return None
    stored.cached = True
    return stored


class RemoteTests(Protocol):
    """Runs tests on other machines (``iree_build.cluster.device_tests.ClusterTests``)."""

    def identity(self, spec: TestSpec) -> str:
        """What stands for the hardware in the signature of a result obtained there."""

    def run(self, spec: TestSpec, base_dir: str | os.PathLike[str], signature: str) -> TestResult:
        """Run one test there; never raises for a test problem."""


def run_one(
    spec: TestSpec,
    base_dir: str | os.PathLike[str],
    pool: RunPool | None = None,
    hasher: FileHasher | None = None,
    retest: bool = False,
    timeout: float | None = None,
    remote: RemoteTests | None = None,
) -> TestResult:
    """Run one test (in a run worker, or on a cluster) unless its stored result is up to
    date; record it."""
    pool = pool if pool is not None else default_run_pool()
    identity = remote.identity(spec) if remote else device_identity(spec)
    signature = test_signature(spec, base_dir, hasher, identity)
    if not retest:
        cached = up_to_date_result(spec, base_dir, signature)
        if cached is not None:
            return cached
    if remote:
        result = remote.run(spec, base_dir, signature or "")
    else:
        result = pool.run_test(spec, base_dir, signature or "", timeout)
    keep_if_passed(result, resolve(base_dir, spec.result))
    return result


def keep_if_passed(result: TestResult, path: Path) -> None:
    """A result file is there only for a pass, as ``scons test`` keeps them: SCons takes an
    existing one for a pass, and no run (this one or the build) uses a stored failure."""
    if result.status == "passed":
        write_result(result, path)
    else:
        path.unlink(missing_ok=True)


def find_manifest(path: str | os.PathLike[str], name: str = MANIFEST_NAME, what: str = "manifest") -> Path:
    """BUILD_DIR/NAME (the test manifest by default), or the manifest file itself if given."""
    p = Path(path)
    if p.is_dir():
        return p / name
    if p.exists() or p.suffix == ".json":
        return p
    raise UsageError(f"no such build directory or {what}: {str(p)!r}")


def check_devices(devices: Sequence[str], manifest: Manifest) -> None:
    """Refuse typos in ``--devices`` (a misspelled name would silently select nothing)."""
    selection.check_devices(devices, (t.device for t in manifest.tests), UsageError)


def select_tests(tests: Sequence[TestSpec], chosen: Selection) -> list[TestSpec]:
    """The tests a selection takes (devices, name glob, tags, folders), as ``scons test`` does."""
    return chosen.select(tests)


@dataclass
class RunOptions:
    """Choices of one runner invocation (mirrors the command-line flags)."""

    devices: Sequence[str] | None = None
    pattern: str | None = None
    tags: str | None = None  # "gpu,-slow"
    folders: Sequence[str] = ()
    require_devices: bool = False
    retest: bool = False
    jobs: int | None = None
    junit: str | os.PathLike[str] | None = None
    timeout: float | None = None  # seconds per call (check case), overriding the tests' own
    remote: RemoteTests | None = None  # run on a cluster instead of this machine's devices
    emulators: dict[str, tuple[str, ...]] | None = None  # arch -> emulator argv, over the manifest's
    device_lanes: dict[str, int] | None = None  # GPU driver -> lanes, over one per device


@dataclass
class RunReport:
    """Outcome of a runner invocation."""

    results: list[TestResult]
    ran: int
    cached: int
    exit_code: int


BATCH_MAX = 64
"""The most CPU function calls sent to a run worker in one request."""


class _Shared(list):  # type: ignore[type-arg]
    """A GPU device's tests, taken one by one by as many work units as it has lanes."""

    def __init__(self, lanes: int) -> None:
        super().__init__()
        self.lanes = lanes
        self.lock = threading.Lock()

    def next(self) -> TestSpec | None:
        with self.lock:
            return self.pop(0) if self else None


def _lanes(
    tests: Sequence[TestSpec],
    remote: bool = False,
    jobs: int = 1,
    lanes_of: Callable[[str], int] = lambda device: 1,
) -> list[list[TestSpec]]:
    """Work units: CPU function calls in batches (one request to a worker each; about four
    per job, so that the jobs end together), each other CPU test (a check file) alone,
    the tests of one GPU device shared by one unit per lane (``lanes_of``: the run pool's
    lanes of that device), each taking the next test (on a cluster each test alone: the
    workers' resources serialize GPU tests). In the tests' order."""
    lanes: list[list[TestSpec]] = []
    gpu: dict[str, _Shared] = {}
    calls = sum(1 for t in tests if not remote and _batched(t))
    size = max(1, min(BATCH_MAX, -(-calls // (4 * jobs))))
    batch: list[TestSpec] | None = None
    for spec in tests:
        if not remote and _batched(spec):
            if batch is None or len(batch) >= size:
                batch = []
                lanes.append(batch)
            batch.append(spec)
        elif remote or is_cpu_device(spec.device):
            lanes.append([spec])
        else:
            shared = gpu.get(canonical_device(spec.device))
            if shared is None:
                shared = gpu[canonical_device(spec.device)] = _Shared(max(1, lanes_of(spec.device)))
            shared.append(spec)
    for shared in gpu.values():
        lanes.extend([shared] * min(shared.lanes, len(shared)))
    return lanes


def _batched(spec: TestSpec) -> bool:
    """A CPU function call: run with others in one request (:meth:`RunPool.run_batch`)."""
    return spec.kind == "call" and is_cpu_device(spec.device)


def run_manifest(
    manifest_path: str | os.PathLike[str],
    options: RunOptions | None = None,
    out: TextIO | None = None,
    pool: RunPool | None = None,
) -> RunReport:
    """Run the selected tests of a manifest, print lines, write results + JUnit."""
    options = options or RunOptions()
    out = out if out is not None else sys.stdout
    _lock_tree(Path(manifest_path).parent)  # the manifest's folder: refused, nothing started
    own_pool = pool is None  # the process-wide one: ended with this run's tests
    pool = pool if pool is not None else default_run_pool()
    pool.prestart()  # the fork server's imports overlap reading the manifest
    pool.configure_lanes(options.device_lanes, tuple(options.devices or ()))
    manifest = load_manifest(manifest_path)
    if options.junit and Path(options.junit).resolve() == manifest.path.resolve():
        raise UsageError(f"--junit {options.junit} is the test manifest; give another file for the report")
    if options.devices:
        check_devices(options.devices, manifest)
    jobs = options.jobs if options.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError(f"-j must be at least 1, got {jobs}")
    tests = select_tests(
        manifest.tests,
        Selection(
            devices=tuple(options.devices or ()),
            pattern=options.pattern or "",
            tags=options.tags or "",
            folders=tuple(options.folders),
        ),
    )
    check_contained(manifest.path, tests)
    for folder in {manifest.base_dir, *(resolve(manifest.base_dir, t.result).parent for t in tests)}:
        remove_dead_temps(folder, "")  # what a killed run or build left half-written there
    emulators = emulators_here(options.emulators)  # this machine's, over the manifest's
    if emulators:
        tests = [replace(t, emulator=emulators[t.arch]) if t.arch in emulators else t for t in tests]
    if manifest.tests and not tests:
        print(
            f"note: no tests selected from {manifest.path} "
            f"(devices {','.join(options.devices or []) or 'any'}, "
            f"filter {options.pattern or 'none'}, tags {options.tags or 'any'}, "
            f"folders {','.join(options.folders) or 'all'})",
            file=sys.stderr,
        )
    publication = Publication(manifest.base_dir) if tests else None  # reads the history meanwhile
    hasher = FileHasher()
    run_id = uuid.uuid4().hex  # run workers hash each file once per run
    print_lock = threading.Lock()
    by_name: dict[str, TestResult] = {}
    stopped = threading.Event()  # interrupted: what the lanes still finish is no verdict

    def emit(result: TestResult) -> None:
        if options.require_devices:
            result = device_required(result)
        with print_lock:
            if stopped.is_set():
                return
            by_name[result.name] = result
            print(result_line(result), file=out, flush=True)

    def run_lane(lane: list[TestSpec]) -> None:
        if options.remote is None and _batched(lane[0]):
            files = [resolve(manifest.base_dir, s.result) for s in lane]
            for i, result, _ in pool.run_batch(
                lane,
                manifest.base_dir,
                [device_identity(s) for s in lane],
                [str(f) for f in files],
                options.retest,
                options.timeout,
                run_id,
                passed_only=True,
            ):
                if stopped.is_set():
                    return
                if result.status != "passed":
                    files[i].unlink(missing_ok=True)
                emit(result)
            return
        for spec in _each(lane):
            emit(
                run_one(
                    spec, manifest.base_dir, pool, hasher, options.retest, options.timeout, options.remote
                )
            )

    lanes_of = (lambda device: 1) if options.remote else (lambda device: len(pool.lanes(device)))
    _run_all(_lanes(tests, options.remote is not None, jobs, lanes_of), run_lane, jobs, stopped)
    if own_pool:
        release_workers()  # they end while the reports are written
    results = [by_name[t.name] for t in tests]
    junit = Path(options.junit) if options.junit else manifest.base_dir / JUNIT_NAME
    write_junit(results, junit)
    page = publication.publish(results) if publication is not None else None
    cases = flatten(results)
    cached = sum(1 for r in cases if r.cached)
    print(
        f"{len(cases) - cached} tests run, {cached} up to date"
        + (f"; page: {os.path.relpath(page)}" if page else ""),
        file=out,
    )
    for line in failure_lines(results):
        print(line, file=out)
    print(summary_line(results), file=out, flush=True)
    failed = any(r.status in FAILING for r in results)
    return RunReport(results, len(cases) - cached, cached, 1 if failed else 0)


def _each(lane: list[TestSpec]) -> Iterator[TestSpec]:
    """A unit's tests: its own, or the next of a GPU device's shared ones until none is left."""
    if not isinstance(lane, _Shared):
        yield from lane
        return
    while (spec := lane.next()) is not None:
        yield spec


def _lock_tree(folder: Path) -> None:
    """Share the build's lock: a runner started while ``scons`` builds or tests the tree
    refuses in one line, and holds the lock (shared with other runners) while it runs."""
    from iree_build.util.build_lock import lock_tree

    why = lock_tree(folder, "python -m iree_build test", shared=True)  # runners share it
    if why:
        raise UsageError(why)


def _run_all(
    lanes: list[list[TestSpec]],
    run_lane: Callable[[list[TestSpec]], None],
    jobs: int,
    stopped: threading.Event,
) -> None:
    """Run the lanes, ``jobs`` at once. Interrupted (Ctrl-C), ``stopped`` is set before the
    running lanes are waited for: their workers were signalled too, and the calls they cut
    short would otherwise be printed as crashes after the run was stopped."""
    try:
        if jobs == 1 or len(lanes) <= 1:
            for lane in lanes:
                run_lane(lane)
            return
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="iree-test") as ex:
            futures = [ex.submit(run_lane, lane) for lane in lanes]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                stopped.set()
                ex.shutdown(wait=True, cancel_futures=True)
                raise
    except BaseException:
        stopped.set()
        raise

"""Tests on cluster workers that offer the test's HAL device (a resource named
after it: ``local-task``, ``cuda``, ``vulkan``, ...).

The module and its data travel with the task. On the worker the test runs in a
child process (``run_isolated``, the one place a test is executed here), so a
runtime crash fails that test and leaves the Dask worker alive. A device that no
worker offers is a skip with that reason, as an absent local device is.

A worker offering ``cuda=4`` runs up to four GPU tests at once (with ``--nthreads``
at least 4): each holds one of its lanes, ``cuda://0`` to ``cuda://3``, for its test,
so each GPU runs one test at a time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from iree_build.testing.manifest import MANIFEST_NAME, TestSpec, manifest_json
from iree_build.testing.results import TestResult, read_result

from .client import Connection
from .config import ClusterError
from .files import Payload, pack, scratch, unpack, worker_name

_ROOT = str(Path(__file__).resolve().parent.parent.parent)  # holds the iree_build package


def device_resources(device: str, arch: str = "") -> list[str]:
    """Resource names that mean ``device``: as written and as the runtime's driver. CPU code
    for one architecture first asks for a worker offering that lane (``local-task@aarch64``:
    an aarch64 host, or one that emulates it), then any worker offering the device (which
    runs it natively, emulates it, or says why it cannot)."""
    from iree_build.testing.device_names import driver_name  # no runtime in the build process

    scheme = device.split("://", 1)[0]
    names = list(dict.fromkeys([scheme, driver_name(scheme)]))
    return [*(f"{n}@{arch}" for n in names), *names] if arch else names


def cluster_identity(cluster: Connection, device: str, arch: str = "", emulator: tuple[str, ...] = ()) -> str:
    """What stands for the hardware in the signature of a result obtained on the cluster:
    its address and the hardware of the workers that would run it (``device``, for
    ``arch`` code the workers offering that lane first; an emulating worker answers with
    its own emulator's version). A worker with another CPU, GPU or emulator joining means
    such results hold no more."""
    try:
        offers = cluster.offers()
        resource = next((r for r in device_resources(device, arch) if r in offers), None)
        if resource is None:
            return f"cluster {cluster.config.address}: no worker offers {device}"
        return (
            f"cluster {cluster.config.address}: {cluster.hardware(resource, device, arch, tuple(emulator))}"
        )
    except ClusterError as e:
        return f"cluster {cluster.config.address}: {e.message}"


class _Lanes:
    """The GPU lanes this worker process' concurrent tasks hold, per resource: the Dask
    scheduler starts at most as many tasks as the worker offers units, and each task
    takes a lane no other holds (the lowest free one)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: dict[str, set[int]] = {}

    @contextlib.contextmanager
    def hold(self, resource: str, count: int) -> Iterator[int]:
        with self._cond:
            held = self._held.setdefault(resource, set())
            while len(held) >= count:
                self._cond.wait()
            lane = min(set(range(count)) - held)
            held.add(lane)
        try:
            yield lane
        finally:
            with self._cond:
                held.discard(lane)
                self._cond.notify_all()


_LANES = _Lanes()


def _offered(resource: str) -> int:
    """How many units of ``resource`` this Dask worker offers (1 outside a worker)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.total_resources.get(resource, 1))
    except (ImportError, ValueError, AttributeError):
        return 1


def run_isolated(spec: TestSpec, folder: Path, lane: str = "") -> TestResult:
    """Run one test of a one-test manifest in ``folder`` in a child process (on GPU
    ``lane``, ``cuda://1``, if given).

    The standalone runner does the work, so results match a local run; a crash
    of the runtime is that test's error, with the signal named.
    """
    (folder / MANIFEST_NAME).write_text(manifest_json([spec]), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iree_build",
            "test",
            str(folder),
            "--retest",
            "-j",
            "1",
            "--junit",
            str(folder / "junit.xml"),
            *(["--devices", lane] if lane else []),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    result = read_result(folder / spec.result)
    if result is not None:
        return result
    if proc.returncode < 0:
        try:
            how = signal.Signals(-proc.returncode).name
        except ValueError:
            how = f"signal {-proc.returncode}"
    else:
        how = f"exit code {proc.returncode}"
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return TestResult(
        spec.name,
        "error",
        f"{spec.name}: the test process died ({how}): {last}",
        device=spec.device,
        base=spec.base,
    )


def device_test_task(spec: TestSpec, payload: Payload, resource: str = "") -> tuple[TestResult, str]:
    """Runs on a worker: unpack the module and data, run the test; (result, worker). A
    worker offering several units of a GPU device runs it on a lane of its own."""
    from iree_build.testing.device_names import is_cpu_device, lane_uri

    count = _offered(resource) if resource else 1
    with scratch("iree-test-") as folder:
        unpack(folder, payload)
        if count <= 1 or is_cpu_device(spec.device) or "://" in spec.device or "@" in resource:
            return run_isolated(spec, folder), worker_name()
        with _LANES.hold(resource, count) as lane:
            return run_isolated(spec, folder, lane_uri(spec.device, lane)), worker_name()


def spec_files(spec: TestSpec) -> list[str]:
    return [spec.module, *spec.inputs, *spec.expected, *spec.parameters]


def run_test_on(
    cluster: Connection, spec: TestSpec, base_dir: str | os.PathLike[str], signature: str = ""
) -> TestResult:
    """Run ``spec`` (paths relative to ``base_dir``) on a worker offering its device.

    Never raises for a test problem: a device no worker offers is ``skipped``, a
    lost task ``error``, each with one line saying why.
    """

    def result(status: str, message: str) -> TestResult:
        return TestResult(spec.name, status, message, device=spec.device, signature=signature, base=spec.base)

    if spec.skip:
        return result("skipped", spec.skip)
    try:
        offers = cluster.offers()
        resource = next((r for r in device_resources(spec.device, spec.arch) if r in offers), None)
        if resource is None:
            return result(
                "skipped",
                f"{spec.device}: no worker of the Dask cluster at "
                f"{cluster.config.address} offers it (its workers offer "
                f"{cluster.describe_offers()})",
            )
        payload = pack(base_dir, spec_files(spec))
        got, worker = cluster.run(
            device_test_task, spec, payload, resource, resource=resource, label=f"testing {spec.name}"
        )
    except ClusterError as e:
        return result("error", f"{spec.name}: {e.message}")
    got.signature = signature
    if got.status in ("skipped", "error") and worker:
        got.message = f"{got.message} (on worker {worker})"
    return got


class ClusterTests:
    """The standalone runner's way to run tests on a cluster (``RemoteTests``)."""

    def __init__(self, cluster: Connection) -> None:
        self.cluster = cluster

    def identity(self, spec: TestSpec) -> str:
        return cluster_identity(self.cluster, spec.device, spec.arch, spec.emulator)

    def run(self, spec: TestSpec, base_dir: str | os.PathLike[str], signature: str) -> TestResult:
        return run_test_on(self.cluster, spec, base_dir, signature)

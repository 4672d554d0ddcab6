"""HAL device availability and a process-wide pool of created devices.

"Driver compiled in" and "device present" differ: the CUDA driver is compiled
into the stock runtime wheel on machines without a GPU. A test on a device that
is not present is skipped with the reason from here.

Creating a device is slow (~0.1-0.4 s for a GPU), so each one is created once
per process and shared. One ``VmInstance`` serves the process. GPU devices
are bound to one thread each (see :class:`DevicePool`).

Lifetime rule found by experiment (iree-base-runtime 3.13): a ``HalDevice``
must outlive every buffer allocated from it, or the process segfaults when the
buffer is freed. The pool keeps devices alive for the whole process, and
callers drop their buffers before returning.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import iree.runtime as ireert

from iree_build.testing.device_names import (  # noqa: F401  (re-exported)
    CPU_DEVICES,
    DEVICE_ALIASES,
    KNOWN_DEVICES,
    canonical_device,
    driver_name,
    is_cpu_device,
    lane_index,
)

T = TypeVar("T")


def runtime_version() -> str:
    """The installed iree-base-runtime version (for messages and signatures)."""
    try:
        from iree.runtime import version as _version

        return str(_version.VERSION)
    except Exception:  # pragma: no cover - very old or odd builds
        return "unknown"


_SOURCE_LOC = re.compile(r"(?:[\w.+-]+/)*[\w.+-]+\.(?:c|cc|cpp|h):\d+: ")
_PREFIXES = (
    "Error creating driver: ",
    "Error creating device: ",
    "Error querying devices: ",
    "Error invoking function: ",
    "Error creating vm context with modules: ",
    "Error creating vm module from aligned memory: ",
)


def runtime_error_text(exc: BaseException, limit: int = 400) -> str:
    """One line from a runtime exception: first line, no C source locations."""
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0].strip()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = _SOURCE_LOC.sub("", text).strip().rstrip(";:").strip()
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class DeviceUnavailable(Exception):
    """The device cannot be used in this process; ``str()`` is the reason."""


@dataclass(frozen=True)
class DeviceStatus:
    """Whether a device is present, and a one-line reason either way."""

    present: bool
    reason: str


_INSTANCE: ireert.VmInstance | None = None
_INSTANCE_LOCK = threading.Lock()


def vm_instance() -> ireert.VmInstance:
    """The one VmInstance of this process (shared by all pools and threads)."""
    global _INSTANCE
    with _INSTANCE_LOCK:
        if _INSTANCE is None:
            _INSTANCE = ireert.VmInstance()
        return _INSTANCE


def _compiled_in() -> frozenset[str]:
    try:
        return frozenset(ireert.query_available_drivers())
    except Exception:  # pragma: no cover - defensive
        return frozenset()


def probe_device(device: str, lanes: int = 0) -> DeviceStatus:
    """Ask the runtime (uncached) whether ``device`` has a usable device.

    A lane URI ``driver://k`` is present when the driver has a k-th device, or when
    ``lanes`` (the lanes the run gives that driver) exceeds k: lane k then uses device
    ``k`` modulo the count. Never raises: a failing driver query becomes the reason.
    """
    drv_name = driver_name(device)
    label = device if drv_name == device else f"{device} ({drv_name})"
    if not drv_name or "/" in drv_name or drv_name != drv_name.strip():
        return DeviceStatus(False, f"{device!r}: not a HAL device name")
    if drv_name not in _compiled_in():
        return DeviceStatus(
            False,
            f"{label}: driver not compiled into this iree-base-runtime ({runtime_version()})",
        )
    try:
        driver = ireert.get_driver(drv_name)
    except Exception as exc:
        return DeviceStatus(
            False,
            f"{label}: driver compiled in, no device present "
            f"(driver cannot start: {runtime_error_text(exc)})",
        )
    try:
        found = list(driver.query_available_devices())
    except Exception as exc:
        return DeviceStatus(
            False,
            f"{label}: driver compiled in, no device present "
            f"(device query failed: {runtime_error_text(exc)})",
        )
    if not found:
        return DeviceStatus(False, f"{label}: driver compiled in, no device present")
    names = ", ".join(str(d.get("name") or d.get("path") or "?") for d in found)
    index = lane_index(device)
    if index is not None and index >= max(lanes, len(found)):
        return DeviceStatus(
            False, f"{device}: no lane {index}: {drv_name} has {len(found)} device(s) here: {names}"
        )
    return DeviceStatus(True, f"{label}: {len(found)} device(s): {names}")


def device_infos(driver: str) -> list[dict[str, Any]]:
    """The driver's devices as the runtime lists them (``device_id``, ``path``, ``name``);
    empty where the driver is absent or cannot start. Never raises."""
    drv_name = driver_name(driver)
    if drv_name not in _compiled_in():
        return []
    try:
        return [dict(d) for d in ireert.get_driver(drv_name).query_available_devices()]
    except Exception:
        return []


class DevicePool:
    """Creates each HAL device once per process and hands it to any thread.

    Thread-safe. Devices live as long as the pool (use :func:`default_pool` for
    the process-wide one).

    GPU devices are thread-affine: measured on an H100 with iree-base-runtime
    3.13, a CUDA device used from a thread other than the one that created it
    fails with ``CUDA_ERROR_INVALID_CONTEXT``. So each non-CPU device gets one
    dedicated thread that creates it and runs all work on it (:meth:`run_on`),
    which also runs that GPU's tests one at a time. CPU devices run work on
    the caller's thread: independent contexts on one CPU device run
    concurrently and correctly (measured).
    """

    def __init__(self) -> None:
        # Driver probing and device creation happen once per device per process;
        # one lock for all of them keeps the runtime's driver registry calls
        # single-threaded (their thread-safety is not documented).
        self._setup_lock = threading.RLock()
        self._lock = threading.Lock()
        self._status: dict[str, DeviceStatus] = {}
        self._devices: dict[str, ireert.HalDevice | DeviceUnavailable] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._local = threading.local()  # .device_key on a device's own thread
        self._pinned: dict[str, str] = {}  # driver -> the lane URI this process runs it on
        self._lanes: dict[str, int] = {}  # driver -> lanes the run gives it (0: one per device)

    def pin(self, lane: str, lanes: int = 0) -> None:
        """Run this process' work for ``lane``'s driver on that lane (``vulkan://1``): a run
        worker belongs to one lane, and a test declared on ``vulkan`` runs there."""
        drv = driver_name(lane)
        with self._setup_lock:
            if self._pinned.get(drv, lane) != lane:
                raise DeviceUnavailable(f"{lane}: this worker runs {self._pinned[drv]}")
            self._pinned[drv] = lane
            self._lanes[drv] = lanes

    def actual(self, device: str) -> str:
        """The device work on ``device`` goes to here: its lane if this process has one."""
        if "://" in device:
            return device
        return self._pinned.get(driver_name(device), device)

    def model(self, device: str) -> str:
        """The name the driver gives the device that ``device`` runs on (its model)."""
        device = self.actual(device)
        infos = device_infos(device)
        index = lane_index(device) or 0
        return str(infos[index % len(infos)].get("name") or "") if infos else ""

    @property
    def instance(self) -> ireert.VmInstance:
        return vm_instance()

    def status(self, device: str) -> DeviceStatus:
        """Cached :func:`probe_device` (presence does not change mid-run).

        Keyed by the name as written, so an alias keeps its own wording.
        """
        device = self.actual(device)
        with self._setup_lock:
            cached = self._status.get(device)
            if cached is None:
                cached = self._status[device] = probe_device(device, self._lanes.get(driver_name(device), 0))
            return cached

    def run_on(self, device: str, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` where ``device`` may be used; returns its result.

        CPU devices: right here. Other devices: on the device's own thread,
        waiting for it (so calls for one GPU never overlap).
        """
        if is_cpu_device(device):
            return fn(*args)
        key = canonical_device(self.actual(device))
        if getattr(self._local, "device_key", None) == key:
            return fn(*args)  # already on the device's thread
        with self._lock:
            executor = self._threads.get(key)
            if executor is None:
                executor = self._threads[key] = ThreadPoolExecutor(
                    max_workers=1,
                    thread_name_prefix=f"iree-device-{key}",
                    initializer=self._mark_thread,
                    initargs=(key,),
                )
        return executor.submit(fn, *args).result()

    def _mark_thread(self, key: str) -> None:
        self._local.device_key = key

    def device(self, device: str) -> ireert.HalDevice:
        """The shared HalDevice; raises DeviceUnavailable with a one-line reason.

        Use a GPU device only inside :meth:`run_on` for that device.
        """
        made = self.run_on(device, self._get_or_create, device)
        if isinstance(made, DeviceUnavailable):
            raise DeviceUnavailable(str(made))  # fresh: threads share the cached one
        return made

    def _get_or_create(self, device: str) -> ireert.HalDevice | DeviceUnavailable:
        device = self.actual(device)
        key = canonical_device(device)
        with self._setup_lock:
            made = self._devices.get(key)
            if made is None:
                made = self._devices[key] = self._create(device)
            return made

    def _create(self, device: str) -> ireert.HalDevice | DeviceUnavailable:
        status = self.status(device)
        if not status.present:
            return DeviceUnavailable(status.reason)
        try:
            driver = ireert.get_driver(driver_name(device))
            index = lane_index(device)
            if index is not None:  # lane k: the driver's k-th device (modulo their count)
                infos = driver.query_available_devices()
                return driver.create_device(infos[index % len(infos)])
            if "://" in device:
                return driver.create_device_by_uri(canonical_device(device))
            return driver.create_default_device()
        except Exception as exc:
            return DeviceUnavailable(
                f"{device}: device present but could not be created: {runtime_error_text(exc)}"
            )


_DEFAULT_POOL: DevicePool | None = None


def default_pool() -> DevicePool:
    """The process-wide pool (SCons worker threads and the runner share it)."""
    global _DEFAULT_POOL
    with _INSTANCE_LOCK:
        if _DEFAULT_POOL is None:
            _DEFAULT_POOL = DevicePool()
        return _DEFAULT_POOL


def device_status(name: str) -> tuple[bool, str]:
    """``(present, reason)`` for a device name, cached in the default pool."""
    status = default_pool().status(name)
    return status.present, status.reason

"""One connection to a Dask scheduler, shared by the threads of the process that holds it:
the cluster agent (``agent.py``), or a build that connects itself.

A task asks for one unit of a worker resource named after what it needs
(``iree-compiler``, a HAL device name such as ``cuda``). Waiting on a task also
watches that some worker still offers that resource, so a build never hangs on
work no worker can take. Work lost with a dying worker is rerun by the scheduler
on another worker (``distributed.scheduler.allowed-failures``, which the README's
recipe sets to 1: retried once); past that the task fails with one line.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from iree_build.util.interrupt import interrupted, wait_event

from .config import ClusterConfig, ClusterError, bounded, probe, require_distributed

COMPILER_RESOURCE = "iree-compiler"
NO_WORKER_GRACE = 10.0  # seconds a resource may be missing (a worker restarting) before giving up
ANSWER_TIMEOUT = 10.0  # seconds the scheduler may take to answer a question before it is an error
_OFFERS_TTL = 1.0


def describe(offers: dict[str, float]) -> str:
    """What workers offer, for messages: ``iree-compiler=2, local-task=1``."""
    return ", ".join(f"{k}={v:g}" for k, v in sorted(offers.items())) or "nothing"


class Connection(Protocol):
    """What compiles and tests need of a cluster: ``Cluster`` here, or a cluster agent's handle."""

    config: ClusterConfig

    def offers(self) -> dict[str, float]: ...

    def describe_offers(self) -> str: ...

    def run(self, fn: Callable[..., Any], *args: Any, resource: str, label: str) -> Any: ...

    def hardware(self, resource: str, device: str, arch: str = "", emulator: tuple[str, ...] = ()) -> str: ...

    def close(self) -> None: ...


class Cluster:
    """A connected ``distributed.Client`` plus what its workers offer."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        require_distributed()
        probe(config)
        from distributed import Client

        security = config.security()
        try:  # Dask's own timeout does not bound every step of its handshake: ours does
            self.client = bounded(
                lambda: Client(
                    config.address, timeout=config.connect_timeout, security=security, set_as_default=False
                ),
                config.connect_timeout + 5.0,
                f"connecting to the Dask scheduler at {config.address}",
            )
        except ClusterError:
            raise
        except Exception as e:  # refused, timed out, a TLS mismatch: Dask raises several kinds
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ClusterError(
                f"cannot connect to the Dask scheduler at {config.address} ({first})"
            ) from None
        self._lock = threading.Lock()
        self._offers: dict[str, float] = {}
        self._offers_at = 0.0
        self._workers: dict[str, dict[str, float]] = {}  # address -> its resources
        self._hardware: dict[tuple, str] = {}  # (worker address, device, arch, emulator) -> identity

    def offers(self) -> dict[str, float]:
        """Resource name -> total units over the live workers (refreshed at most once a second)."""
        with self._lock:
            if time.monotonic() - self._offers_at > _OFFERS_TTL:
                totals: dict[str, float] = {}
                workers = bounded(
                    lambda: self.client.scheduler_info(n_workers=-1),
                    ANSWER_TIMEOUT,
                    f"asking the Dask scheduler at {self.config.address} about its workers",
                ).get("workers", {})
                for info in workers.values():
                    for name, amount in (info.get("resources") or {}).items():
                        totals[name] = totals.get(name, 0.0) + float(amount)
                self._offers, self._offers_at = totals, time.monotonic()
                self._workers = {addr: dict(info.get("resources") or {}) for addr, info in workers.items()}
            return dict(self._offers)

    def hardware(self, resource: str, device: str, arch: str = "", emulator: tuple[str, ...] = ()) -> str:
        """The hardware identities (:mod:`iree_build.hardware`) of the workers offering
        ``resource`` for a result on ``device`` of ``arch`` code (``emulator``: the client's,
        which a worker's own replaces), distinct and sorted, ``" | "`` between them: what a
        result obtained on this cluster holds for. Each worker is asked once a connection."""
        self.offers()
        what = (device, arch, tuple(emulator))
        with self._lock:
            workers = sorted(a for a, res in self._workers.items() if res.get(resource))
            unknown = [a for a in workers if (a, *what) not in self._hardware]
        if unknown:
            got = self.client.run(worker_hardware, *what, workers=unknown)
            with self._lock:
                self._hardware.update({(a, *what): str(v) for a, v in got.items()})
        with self._lock:
            return (
                " | ".join(
                    sorted({self._hardware[(a, *what)] for a in workers if (a, *what) in self._hardware})
                )
                or "no worker"
            )

    def describe_offers(self) -> str:
        return describe(self.offers())

    def run(self, fn: Callable[..., Any], *args: Any, resource: str, label: str) -> Any:
        """Run ``fn(*args)`` on a worker offering ``resource``; its return value.

        Raises ClusterError (one line, naming ``label``) when no worker offers the
        resource, when the workers running it died past the scheduler's limit, or
        when the scheduler goes away.
        """
        from distributed.scheduler import KilledWorker

        if resource not in self.offers():
            raise ClusterError(
                f"no worker of the Dask cluster at {self.config.address} offers "
                f"'{resource}' (its workers offer {self.describe_offers()})"
            )
        key = f"iree-{label.split(' ', 1)[0]}-{uuid.uuid4().hex}"
        future = self.client.submit(fn, *args, key=key, resources={resource: 1}, retries=1, pure=False)
        finished = threading.Event()
        future.add_done_callback(lambda _: finished.set())
        missing_since: float | None = None
        try:
            while True:
                if wait_event(finished, 1.0):
                    return future.result(timeout=ANSWER_TIMEOUT)
                if interrupted():
                    raise ClusterError(f"interrupted while {label}")
                if self.client.status in ("closed", "closing"):
                    raise ClusterError(
                        f"lost the connection to the Dask scheduler at {self.config.address} while {label}"
                    )
                if resource in self.offers():
                    missing_since = None
                elif missing_since is None:
                    missing_since = time.monotonic()
                elif time.monotonic() - missing_since > NO_WORKER_GRACE:
                    raise ClusterError(
                        f"no worker offering '{resource}' is left in the Dask cluster at "
                        f"{self.config.address}; {label} cannot finish"
                    )
        except KilledWorker as e:
            raise ClusterError(
                f"{label}: {e.allowed_failures + 1} Dask workers died running it "
                f"(the last was {e.last_worker.address}); see that worker's log"
            ) from None
        except ClusterError:
            raise
        except Exception as e:  # raised by the task itself on the worker (after one retry)
            text = (str(e).strip().splitlines() or [""])[0]
            raise ClusterError(
                f"{label} failed on the Dask cluster at {self.config.address}: {type(e).__name__}: {text}"
            ) from None
        finally:
            if not future.done():
                future.cancel()

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception:  # closing at exit: the scheduler may be gone already
            pass


def worker_hardware(device: str, arch: str = "", emulator: tuple[str, ...] = ()) -> str:
    """Runs on a worker: the hardware a result on ``device`` of ``arch`` code obtained there
    holds for; emulated, by the worker's own emulator (``$IREE_EMULATORS`` there) and its
    version, as the worker's test run uses it."""
    from iree_build.testing.emulation import emulators_here, lane_hardware, normal_arch

    mine = emulators_here().get(normal_arch(arch), tuple(emulator)) if arch else ()
    return lane_hardware(device, arch, mine)

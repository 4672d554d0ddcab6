"""A scheduler and workers as processes on this machine, stopped by PID.

For the tests, the benchmarks and a one-machine trial of the cluster recipe:
the same ``dask scheduler`` / ``dask worker`` commands the README gives for
real hosts, bound to 127.0.0.1, with the scheduler set to retry work lost with
a dead worker once (``allowed-failures=1``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .agent import stop_agents
from .config import ClusterError

SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}


@dataclass
class LocalCluster:
    """Processes started here; ``stop()`` ends every one of them (also after a failure)."""

    folder: Path
    tls: tuple[str, str, str] | None = None  # CA file, certificate, key: a tls:// cluster
    address: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _tls_args(self) -> list[str]:
        if not self.tls:
            return []
        ca, cert, key = self.tls
        return ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]

    def security(self):
        from distributed.security import Security

        if not self.tls:
            return Security()
        ca, cert, key = self.tls
        return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)

    def _dask(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", *args],  # the `dask` command
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=self.folder,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_scheduler(self, timeout: float = 60.0) -> str:
        info = self.folder / "scheduler.json"
        proc = self._dask(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
                *(["--protocol", "tls"] if self.tls else []),
                *self._tls_args(),
            ],
            SCHEDULER_ENV,
        )
        deadline = time.monotonic() + timeout
        while not info.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"the scheduler did not start: {self.log('scheduler')}")
            time.sleep(0.05)
        while True:  # written by the scheduler itself: wait for whole JSON
            try:
                self.address = json.loads(info.read_text())["address"]
                return self.address
            except (ValueError, KeyError):
                time.sleep(0.05)

    def start_worker(
        self, name: str, resources: dict[str, float], nthreads: int = 1, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """A worker without a nanny: its PID is the worker itself (kill it, it stays dead)."""
        spec = ",".join(f"{k}={v:g}" for k, v in resources.items())
        local = self.folder / name
        local.mkdir(exist_ok=True)
        return self._dask(
            name,
            [
                "worker",
                self.address,
                "--host",
                "127.0.0.1",
                "--name",
                name,
                "--nthreads",
                str(nthreads),
                "--resources",
                spec,
                "--no-nanny",
                "--no-dashboard",
                "--memory-limit",
                "0",
                "--local-directory",
                str(local),
                *self._tls_args(),
            ],
            env,
        )

    def wait_for(self, names: list[str], timeout: float = 60.0) -> None:
        """Until the scheduler lists every named worker."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=timeout, set_as_default=False, security=self.security()) as client:
            while True:
                present = {
                    str(w.get("name")) for w in client.scheduler_info(n_workers=-1)["workers"].values()
                }
                if set(names) <= present:
                    return
                dead = [n for n in names if self.procs[n].poll() is not None]
                if dead or time.monotonic() > deadline:
                    which = dead[0] if dead else sorted(set(names) - present)[0]
                    raise ClusterError(f"worker {which} did not join: {self.log(which)}")
                time.sleep(0.1)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def log(self, name: str) -> str:
        try:
            return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, name: str | None = None, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL, each process by its PID (all of them by default, and
        the cluster agents builds started for this scheduler)."""
        if name is None and self.address:
            stop_agents(self.address, timeout)
        names = [name] if name else list(reversed(self.procs))
        for n in names:
            proc = self.procs[n]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for n in names:
            proc = self.procs.pop(n)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

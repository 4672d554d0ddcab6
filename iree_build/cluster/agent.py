"""The cluster agent: one connection to a Dask scheduler, kept between builds.

Importing ``distributed`` and the handshake cost a build process 0.3 to 1 s (the
most on the 16-core GPU machine) before its first compile can leave, which for
an incremental build is most of its time. So the first build that uses a
cluster starts an agent: a process of the same user holding one
``distributed.Client``, to which later builds hand their work over a Unix socket
(a millisecond to attach), as Bazel's server or sccache do for the same reason.
It ends itself after ``$IREE_CLUSTER_KEEPALIVE`` seconds without work (600 by
default; ``0`` means no agent: each build connects itself), when the scheduler
goes away, on SIGTERM, and, once idle, when the package's code on disk changed
(an edit means a new agent, so the old one would only idle). Ending, it removes
its socket, lock, log and info file.

One agent serves one scheduler with one TLS setup, one Python, one copy of this
package and one Dask configuration from the environment: a build that differs
in any of these gets its own. Its socket lives in a folder only this user can
enter, and a connection must prove it knows a random key kept there
(``multiprocessing.connection``'s HMAC challenge) before anything it sends is
unpickled: the agent runs only what this user's builds send it, as the Dask
workers do. Its log is ``NAME.log`` beside the socket, kept under
``LOG_LIMIT`` bytes (the older half moves to ``NAME.log.1``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from iree_build.util.interrupt import POLL, interrupted

from .client import Cluster, describe
from .config import ClusterConfig, ClusterError

ENV_DIR = "IREE_CLUSTER_AGENT_DIR"
ENV_KEEPALIVE = "IREE_CLUSTER_KEEPALIVE"
DEFAULT_KEEPALIVE = 600.0
START_TIMEOUT = 120.0  # importing distributed and connecting; past it the build connects itself
LOG_LIMIT = 1 << 20  # bytes of log an agent keeps (and as much again in NAME.log.1)
CODE_CHECK_S = 5.0  # how often an agent looks whether its code changed on disk
_PACKAGE = Path(__file__).resolve().parent.parent  # iree_build
_started: list[subprocess.Popen] = []  # agents this process started (kept: no ResourceWarning)


class AgentUnavailable(Exception):
    """No agent can serve here (no private folder, it would not start): connect in-process."""


def keepalive() -> float:
    """Seconds an idle agent stays; 0: no agent."""
    text = os.environ.get(ENV_KEEPALIVE, "").strip()
    if not text:
        return DEFAULT_KEEPALIVE
    try:
        return max(0.0, float(text))
    except ValueError:
        raise ClusterError(f"{ENV_KEEPALIVE}={text!r} is not a number of seconds") from None


def agent_dir() -> Path:
    """The private folder of this user's agents (created 0700; refused if others can enter)."""
    given = os.environ.get(ENV_DIR)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if given:
        path = Path(given)
    elif runtime:
        path = Path(runtime) / "iree_build"
    else:
        path = Path(tempfile.gettempdir()) / f"iree_build-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as e:
        raise AgentUnavailable(f"cannot make {path}: {e.strerror}") from None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise AgentUnavailable(f"{path} is not private to this user")
    return path


def _code_stamp() -> str:
    """This copy of the package, by file sizes and times (an edit means a new agent)."""
    h = hashlib.sha256(str(_PACKAGE).encode())
    for p in sorted(_PACKAGE.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(_PACKAGE)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def agent_name(config: ClusterConfig) -> str:
    what = {
        "config": asdict(config),
        "python": sys.executable,
        "code": _code_stamp(),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "dask": {k: v for k, v in os.environ.items() if k.startswith("DASK_")},
    }
    return "agent-" + hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def authkey(folder: Path) -> bytes:
    """The folder's random key, made once (atomically: two builds may race to make it)."""
    path = folder / "authkey"
    if not path.exists():
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".authkey.")  # 0600
        try:
            os.write(fd, os.urandom(32))
            os.close(fd)
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            os.unlink(temp)
    key = path.read_bytes()
    if len(key) != 32:
        raise AgentUnavailable(f"{path} is not a key made by iree_build")
    return key


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``path``'s flock; a lock file that an ending agent removed meanwhile is made again
    (the lock is on the file that has that name now, or two builds could both hold one)."""
    while True:
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return


def _rotate(log: Path) -> bool:
    """Move a log past ``LOG_LIMIT`` to ``NAME.log.1`` (replacing the older one)."""
    try:
        if log.stat().st_size <= LOG_LIMIT:
            return False
        os.replace(log, log.with_name(log.name + ".1"))
        return True
    except OSError:
        return False


class AgentCluster:
    """A build's handle on an agent: what ``Cluster`` offers, each call over the socket."""

    def __init__(self, config: ClusterConfig, sock: Path, key: bytes, pid: int) -> None:
        self.config, self.sock, self.key, self.pid = config, sock, key, pid

    def _call(self, *message: Any, doing: str) -> Any:
        """One request; an agent that went away (killed, idle past its keepalive just
        now) is replaced once and the request sent again: compiles and tests can rerun."""
        for attempt in (1, 2):
            try:
                with Client(str(self.sock), family="AF_UNIX", authkey=self.key) as conn:
                    conn.send(message)
                    while not conn.poll(POLL):  # the agent has its own deadlines; Ctrl-C is ours
                        if interrupted():
                            raise ClusterError(f"interrupted while {doing}")
                    status, value = conn.recv()
                break
            except (OSError, EOFError):
                gone = (
                    f"the cluster agent (PID {self.pid}) for {self.config.address} went away while "
                    f"{doing}; see {self.sock.with_suffix('.log')}"
                )
                if attempt == 2:
                    raise ClusterError(gone) from None
                try:
                    fresh = attach(self.config)
                except AgentUnavailable:
                    raise ClusterError(gone) from None
                self.sock, self.key, self.pid = fresh.sock, fresh.key, fresh.pid
        if status != "ok":
            raise ClusterError(value)
        return value

    def offers(self) -> dict[str, float]:
        """As the agent's ``Cluster`` knows them (it refreshes them at most once a second)."""
        return self._call("offers", doing="asking what the workers offer")

    def describe_offers(self) -> str:
        return describe(self.offers())

    def run(self, fn: Callable[..., Any], *args: Any, resource: str, label: str) -> Any:
        return self._call("run", fn, args, resource, label, doing=label)

    def hardware(self, resource: str, device: str, arch: str = "", emulator: tuple[str, ...] = ()) -> str:
        return self._call(
            "hardware",
            resource,
            device,
            arch,
            tuple(emulator),
            doing=f"asking the {device} workers' hardware",
        )

    def close(self) -> None:
        """The agent stays for the next build."""


def _ping(sock: Path, key: bytes) -> int | None:
    """The PID of the agent listening at ``sock``, or None when none does."""
    try:
        with Client(str(sock), family="AF_UNIX", authkey=key) as conn:
            conn.send(("ping",))
            status, pid = conn.recv()
            return int(pid) if status == "ok" else None
    except AuthenticationError:
        raise AgentUnavailable(f"{sock} did not accept this user's key") from None
    except (OSError, EOFError):
        return None


def attach(config: ClusterConfig) -> AgentCluster:
    """This build's handle on the agent for ``config``, starting one if none runs.

    Raises ClusterError when the agent could not connect (the scheduler's own
    one line), AgentUnavailable when no agent can serve here.
    """
    folder = agent_dir()
    name = agent_name(config)
    sock = folder / f"{name}.sock"
    if len(str(sock)) > 100:  # AF_UNIX paths are short
        raise AgentUnavailable(f"{sock} is too long for a socket path")
    key = authkey(folder)
    pid = _ping(sock, key)
    if pid is None:
        with _locked(folder / f"{name}.lock"):
            pid = _ping(sock, key)  # another build may have started it meanwhile
            if pid is None:
                pid = _start(config, folder, name)
    return AgentCluster(config, sock, key, pid)


def _start(config: ClusterConfig, folder: Path, name: str) -> int:
    """Start the agent and wait until it is connected; its PID."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE.parent), env.get("PYTHONPATH")) if p)
    _rotate(folder / f"{name}.log")
    with open(folder / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "iree_build.cluster.agent",
                str(folder),
                name,
                json.dumps(asdict(config)),
                str(keepalive()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=folder,
            env=env,
            start_new_session=True,
        )
    _started.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT + config.connect_timeout
    ready: list = []
    while not ready and time.monotonic() < deadline and not interrupted():
        ready, _, _ = select.select([proc.stdout], [], [], POLL)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    proc.stdout.close()
    if line == "ready":
        return proc.pid
    if line.startswith("error: "):
        proc.wait()
        raise ClusterError(line[len("error: ") :])
    proc.kill()
    proc.wait()
    raise AgentUnavailable(f"the cluster agent did not start; see {folder / name}.log")


def _is_agent(pid: int) -> bool:
    """``pid`` is still one of our agents (not a reused PID)."""
    try:
        return b"iree_build.cluster.agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def list_agents(address: str | None = None) -> list[dict[str, Any]]:
    """The live agents of this user's folder (serving ``address`` when given): their
    ``pid``, ``address`` and ``keepalive``."""
    try:
        folder = agent_dir()
    except AgentUnavailable:
        return []
    found = []
    for info in sorted(folder.glob("agent-*.json")):
        try:
            data = json.loads(info.read_text())
            pid = int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (address is None or data.get("address") == address) and _is_agent(pid):
            found.append({"pid": pid, "address": data.get("address"), "keepalive": data.get("keepalive")})
    return found


def stop_agents(address: str | None = None, timeout: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL, every agent of this user's folder (serving ``address``
    when given), by its PID; their PIDs. For ``python -m iree_build agents --stop``,
    tests, benchmarks and ``LocalCluster``."""
    pids = [agent["pid"] for agent in list_agents(address)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _is_agent(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_agent(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return pids


class _Agent:
    """The agent process: a listener, one thread per build connection, a watchdog."""

    def __init__(self, folder: Path, name: str, cluster: Cluster, idle: float) -> None:
        self.folder, self.name, self.cluster, self.idle = folder, name, cluster, idle
        self.sock = folder / f"{name}.sock"
        self.info = folder / f"{name}.json"
        self.log = folder / f"{name}.log"
        self.code = _code_stamp()  # the code this agent runs
        self.busy = 0
        self.last = time.monotonic()
        self.lock = threading.Lock()
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()  # a killed agent's (the caller holds the start lock)
        self.listener = Listener(str(self.sock), family="AF_UNIX", authkey=authkey(folder))
        self.info.write_text(
            json.dumps({"pid": os.getpid(), "address": cluster.config.address, "keepalive": idle})
        )

    def stop(self, *_: Any) -> None:
        """Leave nothing behind (unless a newer agent owns it now), close, exit."""
        try:
            ours = json.loads(self.info.read_text()).get("pid") == os.getpid()
        except (OSError, ValueError):
            ours = False
        if ours:
            for path in (self.info, self.sock):
                with contextlib.suppress(OSError):
                    path.unlink()
            self._remove_lock()
            for path in (self.log, self.log.with_name(self.log.name + ".1")):
                with contextlib.suppress(OSError):
                    path.unlink()
        self.cluster.close()
        os._exit(0)

    def _remove_lock(self) -> None:
        """Remove the start lock unless a build holds it (one that is starting an agent)."""
        path = self.folder / f"{self.name}.lock"
        try:
            with open(path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()  # while held: who waits on it next sees another file (_locked)
        except OSError:
            pass

    def watch(self) -> None:
        checked = time.monotonic()
        while True:
            time.sleep(1.0)
            with self.lock:
                busy = self.busy
                idle = busy == 0 and time.monotonic() - self.last > self.idle
            if idle or self.cluster.client.status in ("closed", "closing", "failed"):
                self.stop()
            if _rotate(self.log):  # the log goes on in a new file
                with contextlib.suppress(OSError):
                    fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    os.dup2(fd, 2)
                    os.close(fd)
            if time.monotonic() - checked > CODE_CHECK_S:
                checked = time.monotonic()
                if busy == 0 and _code_stamp() != self.code:
                    self.stop()  # outdated: builds of the edited code start their own agent

    def answer(self, message: tuple) -> tuple[str, Any]:
        op = message[0]
        if op == "ping":
            return "ok", os.getpid()
        if op == "offers":
            return "ok", self.cluster.offers()
        if op == "hardware":
            return "ok", self.cluster.hardware(*message[1:])
        if op == "run":
            fn, args, resource, label = message[1:]
            return "ok", self.cluster.run(fn, *args, resource=resource, label=label)
        return "error", f"the cluster agent does not know '{op}'"

    def serve_one(self, conn) -> None:
        with conn:
            try:
                message = conn.recv()
            except (OSError, EOFError):
                return
            except Exception as e:  # a class this agent's code cannot unpickle
                with contextlib.suppress(OSError):
                    conn.send(("error", f"the cluster agent could not read the request: {e}"))
                return
            with self.lock:
                self.busy += 1
            try:
                reply = self.answer(message)
            except ClusterError as e:
                reply = ("error", e.message)
            except Exception as e:  # the scheduler went away mid-call, ...
                reply = ("error", f"the cluster agent failed: {type(e).__name__}: {e}")
            finally:
                with self.lock:
                    self.busy -= 1
                    self.last = time.monotonic()
            with contextlib.suppress(OSError):
                conn.send(reply)

    def serve(self) -> None:
        threading.Thread(target=self.watch, daemon=True).start()
        while True:
            try:
                conn = self.listener.accept()
            except (AuthenticationError, OSError, EOFError):
                continue
            threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()


def main(argv: list[str]) -> int:
    folder, name, config_json, idle = Path(argv[0]), argv[1], argv[2], float(argv[3])
    config = ClusterConfig(**json.loads(config_json))
    try:
        cluster = Cluster(config)
    except ClusterError as e:
        print(f"error: {e.message}", flush=True)
        return 1
    agent = _Agent(folder, name, cluster, idle)
    signal.signal(signal.SIGTERM, agent.stop)
    with contextlib.suppress(BrokenPipeError):  # the starting build was killed: serve the next
        print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the starting build stopped reading
    agent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Which Dask scheduler to use and how to talk to it (TLS), checked before any work.

Dask moves pickled Python objects between the build and its workers: whoever can
reach the scheduler can run code on every worker and on the build machine. So a
cluster must be trusted, and on a shared network it should use TLS, which is
configured here from explicit values, ``$IREE_CLUSTER_TLS_*``, or Dask's own
configuration (``distributed.comm.tls.*``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from iree_build.errors import IreeBuildError

ENV_ADDRESS = "IREE_CLUSTER"
ENV_TLS = {
    "ca_file": "IREE_CLUSTER_TLS_CA_FILE",
    "cert": "IREE_CLUSTER_TLS_CERT",
    "key": "IREE_CLUSTER_TLS_KEY",
}
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds: a scheduler that does not answer by then is a clear error


class ClusterError(IreeBuildError):
    """The cluster cannot do what was asked: unreachable, no suitable worker, work lost."""


@dataclass(frozen=True)
class ClusterConfig:
    """An address like ``tcp://host:8786`` or ``tls://host:8786`` and its TLS files."""

    address: str
    tls_ca_file: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @classmethod
    def from_values(
        cls,
        address: str,
        tls: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> ClusterConfig:
        """Explicit TLS values win over ``$IREE_CLUSTER_TLS_*``; the address is normalized."""
        environ = os.environ if environ is None else environ
        tls = dict(tls or {})
        values = {k: str(tls.get(k) or environ.get(var, "")) for k, var in ENV_TLS.items()}
        address = address.strip()
        if "://" not in address:
            address = f"tcp://{address}"
        config = cls(address, values["ca_file"], values["cert"], values["key"], connect_timeout)
        config.check()
        return config

    @property
    def uses_tls(self) -> bool:
        return self.address.startswith("tls://")

    def check(self) -> None:
        """One line for a malformed address or half-given TLS files, before connecting."""
        scheme, _, rest = self.address.partition("://")
        if scheme not in ("tcp", "tls") or not rest or rest.startswith(":"):
            raise ClusterError(
                f"'{self.address}' is not a Dask scheduler address like tcp://HOST:8786 or tls://HOST:8786"
            )
        given = [k for k in ("tls_ca_file", "tls_cert", "tls_key") if getattr(self, k)]
        if given and len(given) != 3:
            missing = [ENV_TLS[k[4:]] for k in ("tls_ca_file", "tls_cert", "tls_key") if not getattr(self, k)]
            raise ClusterError(
                f"TLS for {self.address} needs a CA file, a certificate and a key; "
                f"missing: {', '.join(missing)}"
            )
        for k in given:
            if not os.path.isfile(getattr(self, k)):
                raise ClusterError(f"TLS file {getattr(self, k)} for {self.address} does not exist")
        if given and not self.uses_tls:
            raise ClusterError(f"TLS files are set but {self.address} is not a tls:// address")

    def host_port(self) -> tuple[str, int]:
        rest = self.address.partition("://")[2].rstrip("/")
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit():
            return rest, 8786  # Dask's default port
        return host.strip("[]"), int(port)

    def security(self):
        """A ``distributed.security.Security``: our files, else Dask's own TLS config."""
        from distributed.security import Security

        if self.tls_ca_file:
            return Security(
                tls_ca_file=self.tls_ca_file,
                tls_client_cert=self.tls_cert,
                tls_client_key=self.tls_key,
                require_encryption=True,
            )
        security = Security()
        if self.uses_tls and not security.tls_ca_file:
            raise ClusterError(
                f"{self.address} is a TLS scheduler: set {ENV_TLS['ca_file']}, "
                f"{ENV_TLS['cert']} and {ENV_TLS['key']} (or Dask's distributed.comm.tls "
                "configuration)"
            )
        return security


def require_distributed() -> None:
    """Dask is an optional extra: say how to get it, in one line."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise ClusterError(
            "building on a Dask cluster needs the distributed package: "
            "pip install 'iree-build-scons[cluster]'"
        )


def probe(config: ClusterConfig) -> None:
    """A TCP connect to the scheduler and its first bytes (milliseconds): unreachable, or
    a peer that accepts and never speaks Dask, is one line now (within the connect
    timeout), before the build starts, rather than a build that waits for ever."""
    import time

    from iree_build.util.interrupt import interrupted

    host, port = config.host_port()
    deadline = time.monotonic() + config.connect_timeout
    try:
        sock = socket.create_connection((host, port), timeout=min(config.connect_timeout, 5.0))
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, (socket.timeout, TimeoutError)):
            reason = "no answer"
        raise ClusterError(f"cannot reach the Dask scheduler at {config.address} ({reason})") from None
    with sock:
        try:
            answered = (_tls_answers if config.uses_tls else _answers)(sock, deadline, interrupted)
        except OSError:
            answered = True  # it spoke, or hung up: Dask's own connect names what is wrong
    if answered is None:
        raise ClusterError(f"interrupted while connecting to {config.address}")
    if not answered:
        raise ClusterError(
            f"{config.address} did not answer as a Dask scheduler within "
            f"{config.connect_timeout:g} s (is it a Dask scheduler's address?)"
        )


def _answers(sock: socket.socket, deadline: float, interrupted) -> bool | None:
    """A Dask scheduler writes its handshake as soon as it accepts; True once a byte came,
    False past the deadline, None when the process is interrupted."""
    import select
    import time

    while True:
        if interrupted():
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], min(left, 0.1))
        if ready:
            return True


def _tls_answers(sock: socket.socket, deadline: float, interrupted) -> bool | None:
    """A TLS server answers a ClientHello (a certificate we do not check here, or an
    alert): True when it did, False past the deadline, None when interrupted."""
    import select
    import ssl
    import time

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock.setblocking(False)
    tls = context.wrap_socket(sock, do_handshake_on_connect=False)
    while True:
        try:
            tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            want: tuple[list[ssl.SSLSocket], list[ssl.SSLSocket]] = ([tls], [])
        except ssl.SSLWantWriteError:
            want = ([], [tls])
        except (ssl.SSLError, OSError):
            return True  # an alert (it wants a client certificate ...): a TLS server answered
        if interrupted():
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        select.select(*want, [], min(left, 0.1))


def bounded(fn, timeout: float, what: str):
    """``fn()`` with a deadline: ClusterError naming ``what`` past ``timeout`` seconds or
    on Ctrl-C/SIGTERM (the call is left to finish in a daemon thread, its result dropped)."""
    import threading

    from iree_build.util.interrupt import interrupted, wait_event

    done = threading.Event()
    box: dict[str, object] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=call, daemon=True, name="iree-cluster-call").start()
    if not wait_event(done, timeout):
        if interrupted():
            raise ClusterError(f"interrupted while {what}")
        raise ClusterError(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]

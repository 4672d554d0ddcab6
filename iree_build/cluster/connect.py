"""A build's one cluster connection: through the cluster agent, else made here.

Made once per process and per configuration, shared by the build's threads; a
failure is remembered too, so a build reports an unreachable scheduler once,
not once per target.
"""

from __future__ import annotations

import atexit
import threading

from .agent import AgentUnavailable, attach, keepalive
from .client import Cluster, Connection
from .config import ClusterConfig, ClusterError, probe, require_distributed

_clusters: dict[ClusterConfig, Connection | ClusterError] = {}
_clusters_lock = threading.Lock()
_closer_registered = False


def _open(config: ClusterConfig) -> Connection:
    """The agent's handle (started if need be), or a connection of this process when
    no agent is wanted (``IREE_CLUSTER_KEEPALIVE=0``) or none can serve here."""
    require_distributed()
    probe(config)  # unreachable: the scheduler's one line, before any agent starts
    if keepalive() > 0:
        try:
            return attach(config)
        except AgentUnavailable:
            pass
    return Cluster(config)


def connect(config: ClusterConfig) -> Connection:
    """The process's connection for ``config``, made once."""
    global _closer_registered
    with _clusters_lock:
        if not _closer_registered:
            _closer_registered = True
            atexit.register(close_all)
        got = _clusters.get(config)
        if got is None:
            try:
                got = _open(config)
            except ClusterError as e:
                got = e
            _clusters[config] = got
    if isinstance(got, ClusterError):
        raise ClusterError(got.message)
    return got


def close_all() -> None:
    with _clusters_lock:
        clusters = [c for c in _clusters.values() if not isinstance(c, ClusterError)]
        _clusters.clear()
    for cluster in clusters:
        cluster.close()

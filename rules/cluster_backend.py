"""Sending a build's compiles, ONNX imports and tests to a Dask cluster.

``--iree-cluster=ADDRESS`` wins over the construction variable ``IREE_CLUSTER``,
which defaults to ``$IREE_CLUSTER``; empty means the local worker pool. The
scheduler is first reached by the first action that uses it (loading the tool
opens no connection): an unreachable one fails that action in one line.
Everything else (signatures, CacheDir, ``-k``, test lines, JUnit) is the same as
without a cluster: only where the work runs changes.
"""

from __future__ import annotations

import os
import threading

from iree_build.cluster.config import ENV_ADDRESS, ENV_TLS, ClusterConfig, ClusterError

from . import options


def defaults() -> dict[str, str]:
    """Construction variable defaults, from the process environment."""
    return {
        ENV_ADDRESS: os.environ.get(ENV_ADDRESS, ""),
        **{var: os.environ.get(var, "") for var in ENV_TLS.values()},
    }


def config_for(env) -> ClusterConfig | None:
    address = options.option("iree-cluster") or str(env.get(ENV_ADDRESS) or "")
    if not address.strip():
        return None
    tls = {key: str(env.get(var) or "") for key, var in ENV_TLS.items()}
    return ClusterConfig.from_values(address, tls=tls, environ={})


def configured(env) -> bool:
    """A cluster address is given (cheap: no parsing, no probe)."""
    return bool(options.option("iree-cluster") or env.get(ENV_ADDRESS))


def prestart(env) -> None:
    """Connect in the background while the SConscripts are still read.

    Called when a declaration shows this build will compile (a module's output is
    missing): importing ``distributed`` and the handshake (about a second) then
    overlap the reading instead of delaying the first compile. A failure is kept
    by ``connect`` and reported, once, by the first compile that needs the cluster.
    """
    try:
        config = config_for(env)
    except ClusterError:
        return  # check() reports it
    if config is None:
        return
    from iree_build.cluster.connect import connect

    def quietly() -> None:
        try:
            connect(config)
        except ClusterError:
            pass

    threading.Thread(target=quietly, daemon=True, name="iree-cluster-connect").start()


def cluster_for(env):
    """The connected cluster for this environment, or None to build locally."""
    config = config_for(env)
    if config is None:
        return None
    from iree_build.cluster.connect import connect

    return connect(config)


def unreachable(env, error: ClusterError) -> None:
    """The cluster cannot be reached: the build stops at the first action that needs it
    (SCons' StopError), which says why; an action already running beside it only says
    "not reached", instead of each repeating the reason."""
    import SCons.Errors

    from .registry import registry

    reg = registry(env)
    with reg.print_lock:
        first = reg.once("cluster unreachable")
    raise SCons.Errors.StopError(
        f"--iree-cluster: {error.message}" if first else "--iree-cluster: not reached (see the first line)"
    )


def input_files(target) -> list[str]:
    """What the compile reads, as SCons knows it: sources, scanned executable objects,
    files named by flags (and flag files), ONNX external data."""
    import SCons.Node.FS

    outputs = {t.get_abspath() for t in target}
    return [
        n.rfile().get_internal_path()
        for n in target[0].children()
        if isinstance(n, SCons.Node.FS.File) and n.get_abspath() not in outputs
    ]


def compile_request(request, target, env):
    """Run the request on the cluster (a CompileOutcome), or None without one."""
    from iree_build.compile.pool import CompileOutcome

    try:
        cluster = cluster_for(env)
    except ClusterError as e:
        unreachable(env, e)
        return CompileOutcome(False, "", message=e.message, transient=True)
    if cluster is None:
        return None
    from iree_build.cluster.compile import compile_on

    return compile_on(cluster, request, input_files(target), env.Dir("#").get_abspath())


def run_test(env, spec, base: str, hasher):
    """Run a test on the cluster (a TestResult), or None without one."""
    from iree_build.testing.results import TestResult

    try:
        cluster = cluster_for(env)
    except ClusterError as e:
        unreachable(env, e)
        return TestResult(spec.name, "error", f"{spec.name}: {e.message}", device=spec.device, base=spec.base)
    if cluster is None:
        return None
    from iree_build.cluster.device_tests import cluster_identity, run_test_on
    from iree_build.testing.signature import test_signature

    signature = test_signature(
        spec, base, hasher, cluster_identity(cluster, spec.device, spec.arch, spec.emulator)
    )
    return run_test_on(cluster, spec, base, signature or "")

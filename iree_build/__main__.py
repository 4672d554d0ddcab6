"""Command line: ``python -m iree_build test|bench BUILD_DIR [options]``, ``runtime ARCH``,
``agents [--stop]``.

Runs a built tree's tests or benchmarks with ``iree.runtime`` only. Usage and
manifest errors are one line on stderr and exit code 2; test failures and
benchmark regressions exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "python -m iree_build"


class _Usage(Exception):
    """argparse wants to exit; we want one line and code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message)


def _add_selection(parser: argparse.ArgumentParser, what: str, holding: str) -> None:
    """What ``test`` and ``bench`` share: the build folder, and which of its entries to take."""
    parser.add_argument("build_dir", metavar="BUILD_DIR", help=f"build directory (holding {holding}")
    parser.add_argument(
        "--devices",
        metavar="A,B",
        help=f"only {what} on these devices (comma list, e.g. local-task,cuda; local-task@aarch64: "
        "aarch64 code, emulated here)",
    )
    parser.add_argument("--filter", metavar="GLOB", help=f"only {what} whose name matches GLOB")
    parser.add_argument(
        "--tags",
        metavar="TAGS",
        help=f"only {what} with one of these tags; -TAG leaves out a tag (--tags=gpu,-slow)",
    )
    parser.add_argument(
        "--require-devices",
        action="store_true",
        help=f"{what} whose device is absent fail instead of being skipped",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="IREE build tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    test = sub.add_parser(
        "test",
        help="run the tests of a built tree",
        description="Run the tests of a built tree with iree.runtime (no SCons needed).",
    )
    _add_selection(test, "tests", "iree_tests.json) or a manifest file")
    test.add_argument(
        "folders",
        metavar="FOLDER",
        nargs="*",
        help="only tests declared in these folders (or below), as `scons test FOLDER`",
    )
    test.add_argument("--retest", action="store_true", help="rerun tests whose stored result is up to date")
    test.add_argument(
        "-j", "--jobs", type=int, metavar="N", help="parallel CPU tests (default: number of CPUs)"
    )
    test.add_argument(
        "--junit", metavar="PATH", help="JUnit XML report (default: BUILD_DIR/iree_test_results.xml)"
    )
    test.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds one call (one check case) may take before it is stopped and "
        "reported as TIMEOUT, overriding the tests' own (default: theirs, else 300)",
    )
    test.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=os.environ.get("IREE_CLUSTER") or None,
        help="run the tests on the Dask cluster whose scheduler is at ADDRESS "
        "(default $IREE_CLUSTER); TLS files from $IREE_CLUSTER_TLS_CA_FILE, "
        "$IREE_CLUSTER_TLS_CERT, $IREE_CLUSTER_TLS_KEY or the options below",
    )
    test.add_argument(
        "--emulator",
        metavar="ARCH:COMMAND",
        action="append",
        default=[],
        help="run CPU tests of ARCH code under COMMAND, over $IREE_EMULATORS and what the manifest says "
        "(--emulator='aarch64:qemu-aarch64 -L /usr/aarch64-linux-gnu'); the ARCH "
        "tools come from $IREE_RUNTIME_TOOLS_<ARCH> or `runtime ARCH`",
    )
    test.add_argument(
        "--device-lanes",
        metavar="DRIVER:N",
        default=os.environ.get("IREE_DEVICE_LANES", ""),
        help="run DRIVER's tests on N lanes (worker processes, each its own device instance) "
        "instead of one per device listed by the driver, lane k on device k modulo their "
        "count (--device-lanes=vulkan:2); default $IREE_DEVICE_LANES",
    )
    test.add_argument("--tls-ca-file", metavar="PATH", help="CA certificate of a tls:// cluster")
    test.add_argument("--tls-cert", metavar="PATH", help="this client's certificate for a tls:// cluster")
    test.add_argument("--tls-key", metavar="PATH", help="this client's private key for a tls:// cluster")
    bench = sub.add_parser(
        "bench",
        help="run the benchmarks of a built tree",
        description="Measure the benchmarks of a built tree with iree-benchmark-module "
        "(no SCons needed); keep the run, compare with a baseline, draw the report.",
    )
    _add_selection(bench, "benchmarks", "iree_benchmarks.json) or a benchmark manifest")
    bench.add_argument("--baseline", metavar="FILE", help="compare with this saved run; a regression exits 1")
    bench.add_argument("--save", metavar="FILE", help="save this run as a baseline")
    runtime = sub.add_parser(
        "runtime",
        help="fetch IREE's runtime tools for another CPU architecture",
        description="Fetch the iree-base-runtime wheel of ARCH (at the installed runtime's version) "
        "and unpack its tools (iree-run-module, iree-benchmark-module) into this user's "
        "cache, where emulated test lanes find them ($IREE_RUNTIME_TOOLS_<ARCH> wins).",
    )
    runtime.add_argument("arch", metavar="ARCH", help="the architecture, as in LLVM triples: aarch64")
    runtime.add_argument("--version", help="the runtime version (default: the installed one)")
    runtime.add_argument("--force", action="store_true", help="fetch again even if it is there")
    agents = sub.add_parser(
        "agents",
        help="list or stop this user's cluster agents",
        description="The first build that uses a Dask cluster starts an agent holding the connection, "
        "which later builds attach to; it ends after $IREE_CLUSTER_KEEPALIVE seconds "
        "without work (600; 0: no agent). This lists them, or stops them.",
    )
    agents.add_argument("--stop", action="store_true", help="stop them (SIGTERM, then SIGKILL)")
    agents.add_argument("--address", metavar="ADDRESS", help="only the agents of this scheduler")
    return parser


def _devices(args: argparse.Namespace) -> list[str] | None:
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    if args.devices is not None and not devices:
        raise _Usage("--devices needs at least one device name")
    return devices


def _need_runtime(load: bool = True) -> None:
    """``iree.runtime`` is there; ``load=False``: found, not imported (the test runner's own
    process never calls it, its run workers do: ~0.1 s saved before the first test)."""
    try:
        if not load:
            import importlib.util

            if importlib.util.find_spec("iree.runtime") is None:
                raise ImportError("No module named 'iree.runtime'")
            return
        import iree.runtime  # noqa: F401
    except ImportError as exc:
        raise _Usage(f"iree.runtime is not importable ({exc}); pip install iree-base-runtime") from None


def _run_benchmarks(args: argparse.Namespace) -> int:
    _need_runtime()
    from iree_build.bench.runner import BenchOptions, run_manifest

    options = BenchOptions(
        devices=_devices(args),
        pattern=args.filter,
        tags=args.tags,
        baseline=args.baseline,
        save=args.save,
        require_devices=args.require_devices,
    )
    return run_manifest(args.build_dir, options)


def _run_tests(args: argparse.Namespace) -> int:
    _need_runtime(load=False)
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise _Usage("--timeout must be a positive number of seconds")
    if args.junit is not None and (Path(args.junit).name in ("", "..") or Path(args.junit).is_dir()):
        raise _Usage(f"--junit {args.junit}: a folder; give the report's file (report.xml)")
    from iree_build.testing.device_names import parse_lane_counts

    try:
        lanes = parse_lane_counts(args.device_lanes, "--device-lanes")
    except ValueError as e:
        raise _Usage(str(e)) from None
    if not args.cluster and Path(args.build_dir).exists():
        from iree_build.testing.run_pool import default_run_pool

        default_run_pool().prestart()  # the run workers' imports overlap this process' own
    from iree_build.testing.emulation import parse_emulators
    from iree_build.testing.runner import RunOptions, find_manifest, run_manifest

    options = RunOptions(
        device_lanes=lanes or None,
        devices=_devices(args),
        pattern=args.filter,
        tags=args.tags,
        folders=tuple(args.folders),
        require_devices=args.require_devices,
        retest=args.retest,
        jobs=args.jobs,
        junit=args.junit,
        timeout=args.timeout,
        emulators=parse_emulators(args.emulator, "--emulator") or None,
        remote=_cluster_tests(args) if args.cluster else None,
    )
    return run_manifest(find_manifest(args.build_dir), options).exit_code


def _cluster_tests(args: argparse.Namespace):
    """Tests on a Dask cluster; an unreachable scheduler is one line (exit 2)."""
    from iree_build.cluster.config import ClusterConfig
    from iree_build.cluster.connect import connect
    from iree_build.cluster.device_tests import ClusterTests

    tls = {"ca_file": args.tls_ca_file, "cert": args.tls_cert, "key": args.tls_key}
    return ClusterTests(connect(ClusterConfig.from_values(args.cluster, tls=tls)))


def _runtime(args: argparse.Namespace) -> int:
    """Fetch another architecture's runtime tools into the cache; print their folder."""
    from iree_build.testing.emulation import normal_arch
    from iree_build.testing.runtime_tools import fetch

    print(fetch(normal_arch(args.arch), args.version, args.force))
    return 0


def _agents(args: argparse.Namespace) -> int:
    """List (or stop) this user's cluster agents (iree_build/cluster/agent.py)."""
    from iree_build.cluster.agent import agent_dir, list_agents, stop_agents

    agents = list_agents(args.address)
    if not agents:
        print("no cluster agents running")
        return 0
    stopped = set(stop_agents(args.address)) if args.stop else set()
    for agent in agents:
        state = "stopped" if agent["pid"] in stopped else f"ends after {agent['keepalive']:g} s without work"
        print(f"PID {agent['pid']}  {agent['address']}  ({state})")
    if not args.stop:
        print(f"(their sockets and logs: {agent_dir()})")
    return 0


def _fork_server_first(argv: Sequence[str]) -> None:
    """``test`` on this machine's devices: fork the run workers' server before anything
    else, so that its imports (the runtime, numpy) run while this process parses its
    arguments and reads the manifest. Any other command, or help, starts nothing."""
    if not argv or argv[0] != "test" or os.environ.get("IREE_CLUSTER"):
        return
    if any(a in ("-h", "--help") or a.startswith("--cluster") for a in argv):
        return
    from iree_build.testing.run_zygote import fork_server

    fork_server()


def _os_error_line(exc: OSError) -> str:
    """``FILE: why``, and where the runner writes when it cannot (not Python's ``[Errno N]``)."""
    import errno

    from iree_build.util.atomic import os_error_text

    line = f"{exc.filename}: {os_error_text(exc)}" if exc.filename else os_error_text(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        line += " (the runner writes each test's result and its reports in the build folder)"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 test failures, 2 usage/manifest)."""
    _fork_server_first(sys.argv[1:] if argv is None else argv)
    from iree_build.errors import IreeBuildError

    try:
        args = _parser().parse_args(argv)
        if args.command == "test":
            return _run_tests(args)
        if args.command == "bench":
            return _run_benchmarks(args)
        if args.command == "runtime":
            return _runtime(args)
        if args.command == "agents":
            return _agents(args)
        raise _Usage(f"unknown command {args.command!r}")  # pragma: no cover
    except _Usage as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except IreeBuildError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a read-only build folder
        print(f"{PROG}: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    _code = main()
    from iree_build.util.quick_exit import skip_final_collection

    skip_final_collection()
    sys.exit(_code)

"""Command line: ``python -m iree_build test BUILD_DIR [options]``.

Runs a built tree's tests with ``iree.runtime`` only. Usage and manifest
errors are one line on stderr and exit code 2; test failures exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

PROG = "python -m iree_build"


class _Usage(Exception):
    """argparse wants to exit; we want one line and code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="IREE build tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    test = sub.add_parser(
        "test",
        help="run the tests of a built tree",
        description="Run the tests of a built tree with iree.runtime (no SCons needed).",
    )
    test.add_argument("build_dir", metavar="BUILD_DIR",
                      help="build directory (holding iree_tests.json) or a manifest file")
    test.add_argument("--devices", metavar="A,B",
                      help="only tests on these devices (comma list, e.g. local-task,cuda)")
    test.add_argument("--filter", metavar="GLOB", help="only tests whose name matches GLOB")
    test.add_argument("--require-devices", action="store_true",
                      help="a test whose device is absent fails instead of being skipped")
    test.add_argument("--retest", action="store_true",
                      help="rerun tests whose stored result is up to date")
    test.add_argument("-j", "--jobs", type=int, metavar="N",
                      help="parallel CPU tests (default: number of CPUs)")
    test.add_argument("--junit", metavar="PATH",
                      help="JUnit XML report (default: BUILD_DIR/iree_test_results.xml)")
    test.add_argument("--cluster", metavar="ADDRESS", default=os.environ.get("IREE_CLUSTER") or None,
                      help="run the tests on the Dask cluster whose scheduler is at ADDRESS "
                           "(default $IREE_CLUSTER); TLS files from $IREE_CLUSTER_TLS_CA_FILE, "
                           "$IREE_CLUSTER_TLS_CERT, $IREE_CLUSTER_TLS_KEY or the options below")
    test.add_argument("--tls-ca-file", metavar="PATH", help="CA certificate of a tls:// cluster")
    test.add_argument("--tls-cert", metavar="PATH", help="this client's certificate for a tls:// cluster")
    test.add_argument("--tls-key", metavar="PATH", help="this client's private key for a tls:// cluster")
    return parser


def _run_tests(args: argparse.Namespace) -> int:
    try:
        import iree.runtime  # noqa: F401
    except ImportError as exc:
        raise _Usage(f"iree.runtime is not importable ({exc}); pip install iree-base-runtime")
    from iree_build.testing.runner import RunOptions, find_manifest, run_manifest

    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    if args.devices is not None and not devices:
        raise _Usage("--devices needs at least one device name")
    options = RunOptions(
        devices=devices,
        pattern=args.filter,
        require_devices=args.require_devices,
        retest=args.retest,
        jobs=args.jobs,
        junit=args.junit,
        remote=_cluster_tests(args) if args.cluster else None,
    )
    return run_manifest(find_manifest(args.build_dir), options).exit_code


def _cluster_tests(args: argparse.Namespace):
    """Tests on a Dask cluster; an unreachable scheduler is one line (exit 2)."""
    from iree_build.cluster.client import connect
    from iree_build.cluster.config import ClusterConfig
    from iree_build.cluster.device_tests import ClusterTests

    tls = {"ca_file": args.tls_ca_file, "cert": args.tls_cert, "key": args.tls_key}
    return ClusterTests(connect(ClusterConfig.from_values(args.cluster, tls=tls)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 test failures, 2 usage/manifest)."""
    from iree_build.errors import IreeBuildError

    try:
        args = _parser().parse_args(argv)
        if args.command == "test":
            return _run_tests(args)
        raise _Usage(f"unknown command {args.command!r}")  # pragma: no cover
    except _Usage as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except IreeBuildError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a read-only build folder
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Command-line options of the IREE rules, in SCons' AddOption style.

SCons allows each option to be added once per process, and a project may load
the tool into several environments, so registration is guarded.
"""

from __future__ import annotations

from SCons.Script import AddOption, GetOption

OPTIONS: list[tuple[str, dict]] = [
    (
        "--iree-devices",
        dict(
            metavar="LIST",
            default="",
            help="run tests only on these HAL devices, e.g. cuda,local-task "
            "(local-task: this machine's code; local-task@aarch64: aarch64 code, emulated)",
        ),
    ),
    (
        "--iree-device-lanes",
        dict(
            metavar="DRIVER:N",
            default="",
            help="run DRIVER's tests on N lanes (each a worker with its own device instance) "
            "instead of one per device, e.g. --iree-device-lanes=vulkan:2 (default $IREE_DEVICE_LANES)",
        ),
    ),
    (
        "--iree-test-filter",
        dict(metavar="GLOB", default="", help="run only tests whose name matches GLOB, e.g. 'mm_*'"),
    ),
    (
        "--iree-test-tags",
        dict(
            metavar="TAGS",
            default="",
            help="run only tests and benchmarks with one of these tags; -TAG leaves "
            "out those with that tag, e.g. --iree-test-tags=gpu,-slow",
        ),
    ),
    (
        "--iree-list",
        dict(
            action="store_true",
            default=False,
            help="with -h: list every declared module and test, not just counts",
        ),
    ),
    (
        "--iree-bench-baseline",
        dict(metavar="FILE", default="", help="scons bench: compare with this saved run; a regression fails"),
    ),
    ("--iree-bench-save", dict(metavar="FILE", default="", help="scons bench: save this run as a baseline")),
    (
        "--iree-require-devices",
        dict(
            action="store_true",
            default=False,
            help="a test whose device is absent fails instead of being skipped",
        ),
    ),
    (
        "--iree-retest",
        dict(
            action="store_true",
            default=False,
            help="rerun tests even when their recorded result is up to date",
        ),
    ),
    (
        "--iree-test-timeout",
        dict(
            metavar="SECONDS",
            type="float",
            default=None,
            help="seconds one test call (one check case) may take before it is "
            "stopped and reported as TIMEOUT (default: the test's timeout=, "
            "else 300)",
        ),
    ),
    (
        "--iree-toolchain",
        dict(metavar="NAME", default="", help="target preset for every module that names none"),
    ),
    (
        "--iree-emulator",
        dict(
            metavar="ARCH:COMMAND",
            action="append",
            default=[],
            help="run tests of modules built for another CPU architecture under this "
            "emulator, e.g. --iree-emulator='aarch64:qemu-aarch64 -L "
            "/usr/aarch64-linux-gnu' (again for another ARCH)",
        ),
    ),
    (
        "--iree-export",
        dict(
            metavar="KIND:DIR",
            default="",
            help="write the modules and tests as a CMake project or Bazel workspace: cmake:DIR or bazel:DIR",
        ),
    ),
    (
        "--iree-commands",
        dict(
            action="store_true",
            default=False,
            help="write iree_compile_commands.json (every compile's exact command) beside the test manifest",
        ),
    ),
    (
        "--iree-progress",
        dict(
            metavar="MODE",
            type="choice",
            choices=["auto", "terminal", "lines", "none"],
            default="auto",
            help="how a build shows where it is: a status line on a terminal, [k/N] on "
            "each IREE action line in a log, or none (auto: terminal unless "
            "output is not one or CI is set)",
        ),
    ),
    (
        "--iree-verbose",
        dict(action="store_true", default=False, help="print the full compiler flag list of every compile"),
    ),
    (
        "--iree-cluster",
        dict(
            metavar="ADDRESS",
            default="",
            help="compile and test on the Dask cluster whose scheduler is at ADDRESS "
            "(tcp://HOST:8786); default $IREE_CLUSTER",
        ),
    ),
]


def register() -> None:
    """Add our flags to SCons' option parser. The parser lives as long as the process, not
    the build (a second environment loads the tool again), so a flag it already has is
    skipped: asked of the parser itself, no state of ours."""
    import SCons.Script.Main

    has_option = getattr(SCons.Script.Main.OptionsParser, "has_option", None)  # not on its stand-in
    for flag, kw in OPTIONS:
        if has_option is None or not has_option(flag):
            AddOption(flag, dest=flag[2:].replace("-", "_"), **kw)


def option(name: str):
    """The value of one of our options (``name`` as in the flag, without dashes)."""
    return GetOption(name.replace("-", "_"))

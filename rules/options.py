"""Command-line options of the IREE rules, in SCons' AddOption style.

SCons allows each option to be added once per process, and a project may load
the tool into several environments, so registration is guarded.
"""

from __future__ import annotations

from SCons.Script import AddOption, GetOption

_registered = False

OPTIONS: list[tuple[str, dict]] = [
    ("--iree-devices", dict(metavar="LIST", default="",
                            help="run tests only on these HAL devices, e.g. cuda,local-task")),
    ("--iree-test-filter", dict(metavar="GLOB", default="",
                                help="run only tests whose name matches GLOB, e.g. 'mm_*'")),
    ("--iree-require-devices", dict(action="store_true", default=False,
                                    help="a test whose device is absent fails instead of being skipped")),
    ("--iree-retest", dict(action="store_true", default=False,
                           help="rerun tests even when their recorded result is up to date")),
    ("--iree-toolchain", dict(metavar="NAME", default="",
                              help="target preset for every module that names none")),
    ("--iree-verbose", dict(action="store_true", default=False,
                            help="print the full compiler flag list of every compile")),
    ("--iree-cluster", dict(metavar="ADDRESS", default="",
                            help="compile and test on the Dask cluster whose scheduler is at ADDRESS "
                                 "(tcp://HOST:8786); default $IREE_CLUSTER")),
]


def register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for flag, kw in OPTIONS:
        AddOption(flag, dest=flag[2:].replace("-", "_"), **kw)


def option(name: str):
    """The value of one of our options (``name`` as in the flag, without dashes)."""
    return GetOption(name.replace("-", "_"))


def add_help(kind: str, line: str) -> None:
    """List a declared module or test under ``scons -h`` (SCons lists the options itself).

    One section, each line saying what it is, so that declarations made in any
    order (a loop of modules and tests) read correctly.
    """
    from SCons.Script import Help

    global _help_started
    if not _help_started:
        _help_started = True
        Help("\nIREE targets (scons TARGET builds a module; scons test runs the tests):\n", append=True)
    Help(f"  {kind:<7}{line}\n", append=True)


_help_started = False

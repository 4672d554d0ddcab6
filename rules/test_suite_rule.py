"""``iree_test_suite``: IREE's generated op tests, folder by folder, with their CI configuration.

IREE's test-suite generators write one folder per test: a ``model.mlir`` and a
``run_module_io_flags.txt`` whose ``--input``/``--expected_output`` lines name
``.bin`` files beside it. Each folder becomes a module and a test
(``SUITE/onnx/node/generated/test_abs[device]``) judged as ``iree-run-module
--expected_output`` judges it; a configuration file of IREE's CI
(``onnx_ops_cpu_llvm_sync.json``) is taken as it is: its compile flags, its run
flags (device, thresholds) and its skip and expected-failure lists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from iree_build.errors import IreeBuildError
from iree_build.suites.folders import find_tests
from iree_build.testing.device_names import file_part

from . import module_rule
from .arguments import checked, env_last
from .test_rule import DeclaredTest, declare_call_test, register
from .where import declared_at, fail

if TYPE_CHECKING:  # numpy comes with these: imported where a suite is declared, not by every build
    from iree_build.suites.config import SuiteConfig


def _config(env, config) -> SuiteConfig | None:
    from iree_build.suites.config import read_config  # numpy comes with it: only when used

    if config is None:
        return None
    node = env.File(config) if isinstance(config, str) else config
    return read_config(node.srcnode().get_abspath())


@checked("iree_test_suite")
def IreeTestSuite(
    env,
    name: str,
    root: str = ".",
    config=None,
    target_backends: Sequence[str] | None = None,
    toolchain: str | None = None,
    flags: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    timeout: float | None = None,
    tags: Sequence[str] = (),
) -> list:
    """Declare a module and a test for every test folder under ``root``."""
    from iree_build.values.flagfile import RunFlags, read_flagfile

    where = declared_at()
    here = env.Dir(".").srcnode().get_abspath()
    try:
        top = env.Dir(root).srcnode()
        if not os.path.isdir(top.get_abspath()):
            raise IreeBuildError(f"root {top.get_internal_path()} is not a folder")
        tests = find_tests(top.get_abspath())
        if not tests:
            raise IreeBuildError(
                f"no test folder under {top.get_internal_path()} (a folder holding "
                "one .mlir and a run_module_io_flags.txt)"
            )
        cfg = _config(env, config)
        if cfg is not None and (target_backends or toolchain):
            raise IreeBuildError(
                "the configuration chooses the target (its iree_compile_flags); "
                "drop target_backends/toolchain, or the configuration"
            )
        extra = [*(cfg.flags if cfg else []), *(flags or [])]
        module_kw = (
            dict(
                target_backends=cfg.target_backends or None,
                cpu=cfg.cpu,
                cpu_features=cfg.cpu_features,
                triple=cfg.triple,
                flags=extra,
            )
            if cfg is not None
            else dict(target_backends=target_backends, toolchain=toolchain, flags=extra)
        )
        run = cfg.run if cfg is not None else RunFlags()
        devices = list(devices or run.devices or env.get("IREE_TEST_DEVICES", ["local-task"]))
        suite_tags = tuple(tags)
    except IreeBuildError as e:
        fail(str(e) if e.where else e.message, where)

    results = []
    for test in tests:
        stem = name + "_" + re.sub(r"[^\w.-]", "_", test.name)
        short = f"{name}/{test.name}"

        def listed(key: str, t: str = test.name) -> str:
            return cfg.reason(key) if cfg and cfg.listed(key, t) else ""

        if listed("skip_compile_tests"):
            results += _skipped(env, short, stem, devices, listed("skip_compile_tests"), where, suite_tags)
            continue
        xfail = listed("expected_compile_failures") or listed("expected_run_failures")
        source = os.path.relpath(test.source, here)
        module = module_rule.IreeModule(
            env,
            stem,
            env.File(source),
            **module_kw,
            _IREE_ALLOW_FAILURE=bool(listed("expected_compile_failures")),
        )
        try:
            io_flags = run.merged(read_flagfile(test.flagfile))
        except IreeBuildError as e:
            fail(str(e), where)
        results += declare_call_test(
            env,
            short,
            stem,
            module[0],
            None,
            [],
            None,
            devices,
            None,
            None,
            [],
            "model",
            timeout,
            suite_tags,
            io_flags,
            xfail or None,
            listed("skip_run_tests") or None,
            where,
        )
    return results


def _skipped(
    env, short: str, stem: str, devices: list[str], reason: str, where: str, tags: tuple[str, ...]
) -> list:
    """A test not even compiled (``skip_compile_tests``): a SKIP line per device, no module."""
    return [
        register(
            env,
            DeclaredTest(
                short=short,
                label=device,
                device=device,
                module=env.File(f"{stem}.vmfb"),
                function="",
                inputs=[],
                expected=[],
                rtol=None,
                atol=None,
                declared_at=where,
                result=env.File(f"{stem}.{file_part(device)}.result.json"),
                parameters=[],
                parameter_scope="model",
                arch="",
                skip=reason,
                tags=tags,
            ),
            [],
        )
        for device in devices
    ]


iree_test_suite = env_last(
    IreeTestSuite,
    "iree_test_suite",
    """A module and a test per generated test folder under ``root`` (IREE's layout), with
    an IREE CI ``config`` file as it is.""",
)

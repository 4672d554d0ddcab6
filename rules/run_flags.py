"""A rule's ``flagfile=``: IREE's ``run_module_io_flags.txt`` in place of its arguments."""

from __future__ import annotations

from typing import Any

from iree_build.errors import IreeBuildError
from iree_build.targets.backends import HAL_DEVICES


def from_flagfile(
    flags: Any, function: str | None, inputs: Any, expected: Any = None, devices: Any = None
) -> tuple[str | None, list, Any, Any, dict[str, float]]:
    """(function, inputs, expected, devices, comparison overrides) with the flag file's
    values filling in what the call left out; naming a thing twice is an error."""
    if flags is None:
        return function, list(inputs or []), expected, devices, {}
    if inputs:
        raise IreeBuildError("inputs are given both here and in the flag file; give them in one place")
    if expected is not None and flags.expected:
        raise IreeBuildError(
            "expected values are given both here and in the flag file; give them in one place"
        )
    if function and flags.function and function != flags.function:
        raise IreeBuildError(
            f"function {function!r} differs from the flag file's --function={flags.function}"
        )
    if devices is None and flags.devices:
        unknown = [d for d in flags.devices if d not in HAL_DEVICES]
        if unknown:
            raise IreeBuildError(
                f"the flag file's --device={unknown[0]} is no HAL device this build "
                f"knows; known: {', '.join(HAL_DEVICES)}"
            )
        devices = list(flags.devices)
    return (
        function or flags.function or None,
        list(flags.inputs),
        expected if expected is not None else (list(flags.expected) or None),
        devices,
        dict(flags.compare),
    )

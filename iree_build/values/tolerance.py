"""How an output is judged when its test names no tolerance: as IREE's own tool judges it.

``iree-run-module --expected_output`` (3.13, ``--equality_mode=approximate``, its
default) passes an element of a float type when ``|actual - expected| <= atol +
rtol * |expected|``, NaN equal to NaN and an infinity equal only to itself, with a
per-type ``atol`` (``--expected_f16_threshold`` and its siblings) and one ``rtol``
(``--expected_rtol``); every other type (integers, i1, complex, the f8 family) must
match byte for byte. The figures below are that version's defaults, measured with
its ``--help`` and by running it (see the README's value table).
"""

from __future__ import annotations

from dataclasses import dataclass

# --expected_<type>_threshold defaults, by IREE's element type name.
IREE_ATOL = {"f16": 1e-3, "bf16": 1e-2, "f32": 1e-4, "f64": 1e-4}
IREE_RTOL = 1e-5  # --expected_rtol
# The flag that sets each threshold in a flag file, and the type it applies to.
THRESHOLD_FLAGS = {f"expected_{name}_threshold": name for name in IREE_ATOL}


@dataclass(frozen=True)
class Tolerance:
    """How one output is compared: ``approximate`` (atol + rtol * |expected|) or ``exact``."""

    mode: str  # "approximate" or "exact"
    atol: float = 0.0
    rtol: float = 0.0
    source: str = ""  # "IREE's f32 default" or "declared"

    def describe(self) -> str:
        if self.mode == "exact":
            return "exact compare" if not self.source else f"{self.source}: exact compare"
        text = f"rtol {self.rtol:.6g}, atol {self.atol:.6g}"
        return f"{self.source}: {text}" if self.source else text


def default_tolerance(
    type_name: str | None, thresholds: dict[str, float] | None = None, rtol: float | None = None
) -> Tolerance:
    """IREE's comparison for an output of element type ``type_name`` (``None``: unknown,
    judged exactly); ``thresholds`` and ``rtol`` are a flag file's overrides."""
    atol = {**IREE_ATOL, **(thresholds or {})}.get(type_name or "")
    if atol is None:
        return Tolerance("exact", source=f"IREE's {type_name} default" if type_name else "")
    return Tolerance("approximate", atol, IREE_RTOL if rtol is None else rtol, f"IREE's {type_name} default")


def declared_tolerance(rtol: float, atol: float) -> Tolerance:
    """A test's own ``rtol``/``atol`` (the caller fills in IREE's for the one not given)."""
    return Tolerance("approximate", float(atol), float(rtol))

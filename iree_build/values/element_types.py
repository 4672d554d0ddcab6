"""Element types as IREE spells them, as numpy holds them, and which of them can travel.

One table for every place that meets a type: IREE's value syntax (``2x3xbf16=...``),
the function signatures the runtime reflects (``tensor<2x3xf8E4M3FN>``), ``.npy``
files and the buffers handed to the runtime. numpy knows the ML types (bf16, the f8
family) through ``ml_dtypes``, which ``iree.runtime`` itself imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from iree_build.errors import IreeBuildError


@dataclass(frozen=True)
class ElementType:
    """One element type: its IREE spelling, its numpy dtype, and how a tolerance applies."""

    name: str  # IREE's spelling: "f32", "bf16", "f8E4M3FN", "i1"
    dtype: np.dtype
    hal: str  # the iree.runtime.HalElementType member a buffer of it is made with

    @property
    def inexact(self) -> bool:
        return self.dtype.kind in "fc" or self.dtype.type in _ML_FLOATS


_ML_FLOATS = {
    ml_dtypes.bfloat16,
    ml_dtypes.float8_e4m3fn,
    ml_dtypes.float8_e5m2,
    ml_dtypes.float8_e4m3fnuz,
    ml_dtypes.float8_e5m2fnuz,
    ml_dtypes.float8_e8m0fnu,
}

_TYPES = [
    ElementType("i1", np.dtype(np.bool_), "BOOL_8"),
    ElementType("i8", np.dtype(np.int8), "SINT_8"),
    ElementType("i16", np.dtype(np.int16), "SINT_16"),
    ElementType("i32", np.dtype(np.int32), "SINT_32"),
    ElementType("i64", np.dtype(np.int64), "SINT_64"),
    ElementType("ui8", np.dtype(np.uint8), "UINT_8"),
    ElementType("ui16", np.dtype(np.uint16), "UINT_16"),
    ElementType("ui32", np.dtype(np.uint32), "UINT_32"),
    ElementType("ui64", np.dtype(np.uint64), "UINT_64"),
    ElementType("f16", np.dtype(np.float16), "FLOAT_16"),
    ElementType("bf16", np.dtype(ml_dtypes.bfloat16), "BFLOAT_16"),
    ElementType("f32", np.dtype(np.float32), "FLOAT_32"),
    ElementType("f64", np.dtype(np.float64), "FLOAT_64"),
    ElementType("f8E4M3FN", np.dtype(ml_dtypes.float8_e4m3fn), "FLOAT_8_E4M3_FN"),
    ElementType("f8E5M2", np.dtype(ml_dtypes.float8_e5m2), "FLOAT_8_E5M2"),
    ElementType("f8E4M3FNUZ", np.dtype(ml_dtypes.float8_e4m3fnuz), "FLOAT_8_E4M3_FNUZ"),
    ElementType("f8E5M2FNUZ", np.dtype(ml_dtypes.float8_e5m2fnuz), "FLOAT_8_E5M2_FNUZ"),
    ElementType("f8E8M0FNU", np.dtype(ml_dtypes.float8_e8m0fnu), "FLOAT_8_E8M0_FNU"),
    ElementType("complex<f32>", np.dtype(np.complex64), "COMPLEX_64"),
    ElementType("complex<f64>", np.dtype(np.complex128), "COMPLEX_128"),
]
BY_NAME: dict[str, ElementType] = {t.name: t for t in _TYPES}
# IREE's tools also take the signed spellings; the signless ones are the canonical names.
BY_NAME.update({f"si{bits}": BY_NAME[f"i{bits}"] for bits in (8, 16, 32, 64)})
# IREE's tools spell complex types by their total width (cf64 = complex<f32>); IREE's
# test-suite generators write the f8 names in lower case (f8e4m3fn).
BY_NAME.update({"cf64": BY_NAME["complex<f32>"], "cf128": BY_NAME["complex<f64>"]})
BY_NAME.update({t.name.lower(): t for t in _TYPES if t.name.startswith("f8")})
_BY_DTYPE: dict[np.dtype, ElementType] = {t.dtype: t for t in _TYPES}

# Types IREE has that cannot be carried as one element per byte in a numpy array:
# sub-byte integers and floats are packed by the runtime.
_PACKED = ("i2", "i4", "si4", "ui4", "f4E2M1FN", "f6E2M3FN", "f6E3M2FN")
_PACKED_DTYPES = {
    np.dtype(getattr(ml_dtypes, n))
    for n in ("int2", "uint2", "int4", "uint4", "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn")
    if hasattr(ml_dtypes, n)
}


def by_name(name: str) -> ElementType:
    """The element type IREE spells ``name``; one clear line for any other."""
    known = BY_NAME.get(name)
    if known is not None:
        return known
    if name in _PACKED:
        raise IreeBuildError(
            f"element type {name} is packed (several elements per byte) by the "
            "runtime and cannot be given as test data; test it through a wider type"
        )
    from iree_build.validation import did_you_mean

    names = [t.name for t in _TYPES]
    raise IreeBuildError(
        f"unknown element type {name!r}{did_you_mean(name, names)}; known: {', '.join(names)}"
    )


def of_dtype(dtype: np.dtype) -> ElementType | None:
    """The element type of a numpy dtype (byte order aside), or None."""
    return _BY_DTYPE.get(np.dtype(dtype).newbyteorder("="))


def check_travels(dtype: np.dtype, what: str) -> ElementType:
    """The element type of ``dtype``, or one line saying why data of it cannot be used."""
    known = of_dtype(dtype)
    if known is not None:
        return known
    if dtype in _PACKED_DTYPES:
        raise IreeBuildError(
            f"{what} has element type {dtype}, which the runtime packs several to "
            "a byte; it cannot be given as test data (use a wider type)"
        )
    raise IreeBuildError(
        f"{what} has element type {dtype}, which IREE's runtime cannot take; "
        f"use one of: {', '.join(t.name for t in _TYPES)}"
    )


def hal_element_type(dtype: np.dtype) -> str | None:
    """The ``HalElementType`` member name for a buffer of ``dtype``, or None."""
    known = of_dtype(dtype)
    return known.hal if known is not None else None


def is_ml_dtype(dtype: np.dtype) -> bool:
    """bf16 and the f8 family: numpy holds them as opaque ('V') types from ml_dtypes."""
    return np.dtype(dtype).type.__module__.startswith("ml_dtypes")


def storage_view(array: np.ndarray) -> np.ndarray:
    """The same bytes as an unsigned integer array of the same shape, for a buffer copy
    (the runtime's buffer protocol reader does not know ml_dtypes' types)."""
    if not is_ml_dtype(array.dtype):
        return array
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))


def declared_types(declaration: str) -> tuple[list[str | None], list[str | None]]:
    """Element types of a function's inputs and outputs from its ``iree.abi.declaration``
    (``sync func @f(%input0: tensor<2x3xbf16>, %input1: i32) -> (%output0: tensor<f32>)``);
    None where an argument is not a tensor."""
    head, _, tail = declaration.partition("->")

    def types(text: str) -> list[str | None]:
        out: list[str | None] = []
        for arg in re.findall(r"%\w+:\s*(tensor<(?:[^<>]|<[^<>]*>)*>|[^,()\s]+)", text):
            m = re.fullmatch(r"tensor<(?:(?:\d+|\?)x)*(.+)>", arg)
            out.append(m.group(1) if m else None)
        return out

    return types(head), types(tail)

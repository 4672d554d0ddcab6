"""Values in IREE's own tool syntax, as ``iree-run-module --input=`` takes them.

``"2x3xf32=1 2 3 4 5 6"``, ``"f32=5"`` (0-d), ``"4xf32=1"`` (a splat),
``"2x0xf32="`` (empty), ``"4xf32"`` (no data: zeros, as IREE's tools take it; at
least one dimension), ``"4xi8=@x.bin"`` (raw little-endian bytes),
``"@x.npy"`` (the next array of a ``.npy`` file). A literal becomes an array
while the SConscript is read; a file is read when the build converts it into
the build tree, so that a generated file works too.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iree_build.errors import IreeBuildError

from .element_types import ElementType, by_name, is_ml_dtype

# SHAPE x TYPE = DATA, or @FILE. The type is what follows the last dimension.
_TYPED = re.compile(r"((?:(?:\d+)x)*)([a-zA-Z][\w<>]*)=(.*)", re.DOTALL)
_SHAPE_ONLY = re.compile(r"(?:\d+x)+[a-zA-Z][\w<>]*")  # "4xf32": no "=", no data
_SEPARATORS = re.compile(r"[\s,\[\]]+")


@dataclass(frozen=True)
class IreeValue:
    """One value in IREE's syntax: a literal array, a typed raw file, or a ``.npy`` file."""

    text: str
    element: ElementType | None = None  # None: "@x.npy", whose file says its type
    shape: tuple[int, ...] = ()
    file: str = ""  # the path after '@', as written
    npy_index: int = 0  # "@x.npy" named again in one list reads the file's next array
    array: np.ndarray | None = None  # a literal's values

    @property
    def is_literal(self) -> bool:
        return self.array is not None

    def with_index(self, index: int) -> IreeValue:
        return IreeValue(self.text, self.element, self.shape, self.file, index, self.array)

    def describe(self) -> str:
        """What decides the converted array, for a build signature."""
        kind = self.element.name if self.element is not None else "npy"
        return f"{kind} {self.shape} from {os.path.basename(self.file)} #{self.npy_index}"


def is_iree_value(value: object) -> bool:
    """A string in IREE's syntax (``TYPE=...`` or ``@file``), not a plain path."""
    return isinstance(value, str) and (
        value.startswith("@")
        or _TYPED.fullmatch(value) is not None
        or _SHAPE_ONLY.fullmatch(value) is not None
    )


def parse(text: str) -> IreeValue:
    """Parse one value; raises IreeBuildError with IREE's own words for what is wrong."""
    if text.startswith("@"):
        path = text[1:]
        if not path:
            raise IreeBuildError(f"{_shown(text)} names no file after '@'")
        if not path.endswith(".npy"):
            raise IreeBuildError(
                f"{_shown(text)}: a file without a type must be a .npy; give raw files "
                f"their shape and type, e.g. '2x3xf32=@{path}'"
            )
        return IreeValue(text, file=path)
    m = _TYPED.fullmatch(text + "=" if _SHAPE_ONLY.fullmatch(text) else text)
    if m is None:
        raise IreeBuildError(
            f"{_shown(text)} is not in IREE's value syntax (e.g. '2x3xf32=1 2 3 4 5 6', "
            "'f32=5', '4xi8=@x.bin', '@x.npy')"
        )
    dims, type_name, data = m.groups()
    element = by_name(type_name)
    shape = tuple(int(d) for d in dims.split("x") if d)
    if data.startswith("@"):
        if not data[1:]:
            raise IreeBuildError(f"{_shown(text)} names no file after '@'")
        return IreeValue(text, element, shape, file=data[1:])
    return IreeValue(text, element, shape, array=_literal(text, element, shape, data))


def _shown(text: str) -> str:
    """``text`` quoted for a message, its middle left out when long: a value of a million
    numbers is one line, not a megabyte of them."""
    if len(text) <= 120:
        return repr(text)
    return f"{text[:60]!r}...{text[-20:]!r} ({len(text)} characters)"


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not known here: no limit but numpy's own
        return 1 << 62


def _literal(text: str, element: ElementType, shape: tuple[int, ...], data: str) -> np.ndarray:
    count = math.prod(shape)
    need = count * element.dtype.itemsize
    if need > _memory():
        raise IreeBuildError(
            f"{_shown(text)}: shape {'x'.join(map(str, shape))} is {count} {element.name} "
            f"elements ({need} bytes), more than this machine's memory"
        )
    tokens = [t for t in _SEPARATORS.split(data) if t]
    if len(tokens) > 1 and len(tokens) != count:
        raise IreeBuildError(
            f"{_shown(text)} gives {len(tokens)} values for shape "
            f"{'x'.join(map(str, shape)) or '()'} ({count} elements); give "
            f"{count}, or one to fill them all"
        )
    values = [_element(t, element, text) for t in tokens]
    dtype = element.dtype
    if not values:
        return np.zeros(shape, dtype)
    wide: np.ndarray = np.array(values, dtype=_wide(element))
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = wide.astype(dtype)
    if len(values) == 1:
        return np.full(shape, narrow[0], dtype)
    return narrow.reshape(shape)


def _wide(element: ElementType) -> type:
    kind = element.dtype.kind
    if element.name == "i1":
        return np.bool_
    if kind in "iu":
        return element.dtype.type
    return np.complex128 if kind == "c" else np.float64


def _element(token: str, element: ElementType, text: str) -> object:
    kind = element.dtype.kind
    try:
        if element.name == "i1":
            lowered = token.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            value = int(token, 0)
            if value not in (0, 1):
                raise ValueError
            return bool(value)
        if kind in "iu":
            value = int(token, 0)
            info = np.iinfo(element.dtype)
            if not info.min <= value <= info.max:
                raise IreeBuildError(
                    f"{_shown(text)}: {token} does not fit in {element.name} ({info.min} to {info.max})"
                )
            return value
        if kind == "c":
            return complex(token.replace("i", "j"))
        try:
            return float(token)
        except ValueError:
            return float(int(token, 0))
    except ValueError:
        raise IreeBuildError(f"{_shown(text)}: {token!r} is not a {element.name} value") from None


def read_file_value(value: IreeValue, path: str | os.PathLike[str]) -> np.ndarray:
    """The array a file value names, read from ``path`` (its resolved location).

    Raises ValueError or OSError with the reason (size, format); the caller names the file.
    """
    if value.element is None:
        return _npy_at(path, value.npy_index)
    element = value.element
    count = math.prod(value.shape)
    size = Path(path).stat().st_size
    if element.name == "i1" and size == (count + 7) // 8 and size != count:
        bits = np.unpackbits(np.fromfile(path, np.uint8), bitorder="little")[:count]
        return bits.astype(np.bool_).reshape(value.shape)
    need = count * element.dtype.itemsize
    if size != need:
        raise ValueError(
            f"holds {size} bytes, but {'x'.join(map(str, value.shape)) or 'a scalar'} "
            f"{element.name} takes {need}"
        )
    if element.name == "i1":
        raw = np.fromfile(path, np.uint8, count=count) != 0
    elif is_ml_dtype(element.dtype):
        storage = np.dtype(f"<u{element.dtype.itemsize}")
        raw = np.fromfile(path, storage, count=count).astype(storage.newbyteorder("=")).view(element.dtype)
    else:
        raw = np.fromfile(path, element.dtype.newbyteorder("<"), count=count).astype(element.dtype)
    return raw.reshape(value.shape)


def _npy_at(path: str | os.PathLike[str], index: int) -> np.ndarray:
    """The ``index``-th array of a ``.npy`` file holding several back to back."""
    from .arrays import load_npy

    if index == 0:
        array = load_npy(path)
        if not isinstance(array, np.ndarray):
            raise ValueError("is not a single .npy array")
        return array
    import ml_dtypes  # noqa: F401  (registers the ML type names a header may use)

    with open(path, "rb") as f:
        for i in range(index + 1):
            if not f.read(1):
                raise ValueError(
                    f"holds {i} array(s); array {index + 1} was asked for (the file is named that many times)"
                )
            f.seek(-1, os.SEEK_CUR)
            array = np.load(f, allow_pickle=False)
    return array


def number_files(values: list[IreeValue]) -> list[IreeValue]:
    """Give each repeated ``@x.npy`` the index of the array it reads, as IREE's tools do."""
    seen: dict[str, int] = {}
    out = []
    for value in values:
        if value.element is None and value.file:
            index = seen.get(value.file, 0)
            seen[value.file] = index + 1
            value = value.with_index(index)
        out.append(value)
    return out

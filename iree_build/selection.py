"""Which declared tests (and benchmarks) a run takes: devices, a name glob, tags, folders.

One definition for ``scons test`` and the standalone runner, so both select alike.
Standard library only (the runner imports it on machines with just the runtime).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from iree_build.testing.device_names import canonical_device


def parse_tag_filter(text: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """``"gpu,-slow"`` -> ({"gpu"}, {"slow"}): tags to include (any of) and to exclude."""
    include, exclude = set(), set()
    for raw in (text or "").split(","):
        tag = raw.strip()
        if tag.startswith("-") and tag[1:]:
            exclude.add(tag[1:])
        elif tag:
            include.add(tag)
    return frozenset(include), frozenset(exclude)


def tags_selected(tags: Iterable[str], include: frozenset[str], exclude: frozenset[str]) -> bool:
    """No excluded tag, and one of the included ones when any are named."""
    have = set(tags)
    if have & exclude:
        return False
    return not include or bool(have & include)


def name_matches(name: str, pattern: str | None) -> bool:
    """``fnmatch`` on the whole name; a literal ``[device]`` in the pattern also matches."""
    if not pattern:
        return True
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern.replace("[", "[[]"))


def in_folders(folders: Iterable[str], wanted: Sequence[str]) -> bool:
    """Whether one of a test's folders is one of ``wanted`` or below it."""
    if not wanted:
        return True
    for folder in folders:
        f = posixpath.normpath(folder or ".")
        for w in wanted:
            w = posixpath.normpath(w.strip("/") or ".")
            if w == "." or f == w or f.startswith(w + "/"):
                return True
    return False


@dataclass(frozen=True)
class Selection:
    """What a command line asked for; empty fields select everything."""

    devices: tuple[str, ...] = ()
    pattern: str = ""
    tags: str = ""
    folders: tuple[str, ...] = ()
    _tags: tuple[frozenset[str], frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tags", parse_tag_filter(self.tags))

    def matches(self, name: str, device: str, tags: Iterable[str] = (),
                folders: Iterable[str] = ()) -> bool:
        if self.devices and canonical_device(device) not in {canonical_device(d) for d in self.devices}:
            return False
        return (name_matches(name, self.pattern) and tags_selected(tags, *self._tags)
                and in_folders(folders, self.folders))

"""Which declared tests and benchmarks a run takes: devices, a name glob, tags, folders.

One definition for ``scons test``/``scons bench`` and the standalone runners, so all
select alike. A device names a lane: ``local-task`` is native code on it,
``local-task@aarch64`` aarch64 code (emulated here, or native on an aarch64 host). Tags: ``--iree-test-tags=gpu,-slow`` (``--tags`` for the runners), a comma
list; a leading ``-`` excludes. Standard library only.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iree_build.errors import IreeBuildError
from iree_build.hardware import KNOWN_ARCHES, architecture, normal_arch
from iree_build.testing.device_names import (
    CPU_DEVICES,
    KNOWN_DEVICES,
    canonical_device,
    driver_name,
    lane_index,
)
from iree_build.validation import did_you_mean

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")


def check_tag(tag: object) -> str:
    """``tag`` if it is a valid tag name, else a one-line error naming it."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise IreeBuildError(
            f"tag {tag!r} is not a tag name (letters, digits, '_', '.', '+', '-'; not starting with '-')"
        )
    return tag


def check_tags(tags: object) -> tuple[str, ...]:
    """A declaration's ``tags=``: a list (or one string) of tag names, sorted, unique."""
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, (list, tuple, set, frozenset)):
        raise IreeBuildError(f"tags must be a list of tag names, not {tags!r:.60}")
    return tuple(sorted({check_tag(t) for t in tags}))


def parse_tag_filter(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """``"gpu,-slow"`` -> (include {gpu}, exclude {slow}); empty text selects all."""
    include: set[str] = set()
    exclude: set[str] = set()
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        if part.startswith("-"):
            exclude.add(check_tag(part[1:]))
        else:
            include.add(check_tag(part))
    both = include & exclude
    if both:
        raise IreeBuildError(f"tag filter {text!r} both selects and excludes {', '.join(sorted(both))}")
    return frozenset(include), frozenset(exclude)


def tags_selected(tags: Iterable[str], include: frozenset[str], exclude: frozenset[str]) -> bool:
    """No excluded tag, and (if any tag is asked for) at least one asked-for tag."""
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


def lane(device: str, arch: str = "") -> tuple[str, str]:
    """(device, architecture) that ``device`` with code for ``arch`` runs on: the
    architecture is '' for this machine's own (``local-task@x86_64`` on x86-64 is
    ``local-task``) and for code of no CPU (GPU, VM)."""
    name, at, given = device.partition("@")
    arch = normal_arch(given if at else arch)
    name = canonical_device(name)
    return name, ("" if arch == architecture() or driver_name(name) not in CPU_DEVICES else arch)


@dataclass(frozen=True)
class Selection:
    """What a command line asked for; empty fields select everything. A bad tag filter
    raises IreeBuildError when the selection is made."""

    devices: tuple[str, ...] = ()
    pattern: str = ""
    tags: str = ""
    folders: tuple[str, ...] = ()
    _tags: tuple[frozenset[str], frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tags", parse_tag_filter(self.tags))

    def matches(
        self,
        name: str,
        device: str,
        tags: Iterable[str] = (),
        folders: Iterable[str] = (),
        arch: str = "",
    ) -> bool:
        """``arch``: the CPU architecture of the entry's code ('' for none in particular)."""
        if self.devices and not device_selected(device, self.devices, arch):
            return False
        return (
            name_matches(name, self.pattern)
            and tags_selected(tags, *self._tags)
            and in_folders(folders, self.folders)
        )

    def select(self, entries: Iterable[Any]) -> list[Any]:
        """The tests or benchmarks (manifest entries: ``name``, ``device``, ``tags``,
        ``base``, ``arch`` and, for tests, ``folder``) that this selection takes, in their order."""
        return [
            e
            for e in entries
            if self.matches(e.name, e.device, e.tags, folders_of(e), getattr(e, "arch", ""))
        ]


def device_selected(device: str, chosen: Iterable[str], arch: str = "") -> bool:
    """Whether a test on ``device`` (code for ``arch``) is one ``chosen`` asks for: the same
    device and architecture, or a GPU of its driver (``cuda://1`` takes the tests declared
    on ``cuda``, to run on GPU 1)."""
    mine = lane(device, arch)
    for name in chosen:
        theirs = lane(name)
        if mine == theirs:
            return True
        one_gpu = lane_index(theirs[0]) is not None and "://" not in mine[0]
        if one_gpu and driver_name(theirs[0]) == mine[0]:
            return True
    return False


def folders_of(entry: Any) -> tuple[str, ...]:
    """An entry's source folder and its label's folder (``models/mlp:smoke[cuda]``)."""
    base = getattr(entry, "base", "")
    label = base.split(":", 1)[0] if ":" in base else ""
    return (getattr(entry, "folder", "") or label, label)


def check_devices(
    devices: Iterable[str],
    named: Iterable[str],
    usage: type[IreeBuildError] = IreeBuildError,
    option: str = "--devices",
) -> None:
    """Refuse a typo among ``devices`` (it would silently select nothing): each must be a
    known device or one that an entry (``named``) runs on, and an ``@ARCH`` lane a CPU one."""
    known = {driver_name(d) for d in (*KNOWN_DEVICES, *named)}
    for name in devices:
        device, at, arch = name.partition("@")
        driver, uri, index = device.partition("://")
        if at and (device not in CPU_DEVICES or not _TAG.match(arch)):
            raise usage(
                f"{option}: {name!r} is not a lane: write a CPU device and an architecture, "
                f"e.g. local-task@aarch64"
            )
        if at and normal_arch(arch) not in (*KNOWN_ARCHES, architecture()):
            raise usage(
                f"{option}: unknown architecture {arch!r} in {name!r}"
                f"{did_you_mean(arch, KNOWN_ARCHES)} (known: {', '.join(KNOWN_ARCHES)})"
            )
        if driver_name(device) not in known:
            raise usage(
                f"unknown device {name!r} in {option}{did_you_mean(name, KNOWN_DEVICES)} "
                f"(known: {', '.join(KNOWN_DEVICES)})"
            )
        if uri and (driver in CPU_DEVICES or not index.isdigit()):
            raise usage(
                f"{option}: {name!r} is not one GPU: write DRIVER://N, N the GPU's index "
                f"among its driver's devices, e.g. cuda://1"
            )

"""Tag selection shared by tests and benchmarks: ``--iree-test-tags=gpu,-slow``.

One spelling everywhere (SCons option, ``python -m iree_build test|bench
--tags``): a comma list of tags; a leading ``-`` excludes. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from iree_build.errors import IreeBuildError

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")


def check_tag(tag: object) -> str:
    """``tag`` if it is a valid tag name, else a one-line error naming it."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise IreeBuildError(
            f"tag {tag!r} is not a tag name (letters, digits, '_', '.', '+', '-'; "
            "not starting with '-')")
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

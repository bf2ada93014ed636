"""Tag membership: the :class:`Tags` leaf and its builders."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs

from membermkt.core.segments._nodes import Not, Segment
from membermkt.errors import SegmentError


def _to_tag_names(value: Iterable[str]) -> tuple[str, ...]:
    names = sorted(set(value))
    if not names:
        raise SegmentError("tag membership needs at least one tag")
    for n in names:
        if not isinstance(n, str) or not n:
            raise SegmentError(f"tag names are non-empty str, got {n!r}")
    return tuple(names)


@attrs.frozen(slots=True)
class Tags(Segment):
    """Tag membership: the member has any (``mode="any"``) or all (``"all"``) of ``names``."""

    mode: str
    names: tuple[str, ...] = attrs.field(converter=_to_tag_names)
    kind: ClassVar[str] = "tags"

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("any", "all"):
            raise SegmentError(f"tag mode is 'any' or 'all', got {self.mode!r}")


def tag(name: str) -> Segment:
    """Members with tag ``name``."""
    return Tags("any", (name,))


def any_tag(*names: str) -> Segment:
    """Members with at least one of ``names``."""
    return Tags("any", names)


def all_tags(*names: str) -> Segment:
    """Members with every one of ``names``."""
    return Tags("all", names)


def no_tags(*names: str) -> Segment:
    """Members with none of ``names``."""
    return Not.of(Tags("any", names))

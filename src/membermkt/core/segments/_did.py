"""Behaviour: the :class:`Did` leaf (event counts in a window) and :func:`did`."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import ClassVar

import attrs

from membermkt.core.segments._fields import _EVENT_RE, _NAME_RE
from membermkt.core.segments._nodes import Segment
from membermkt.errors import SegmentError


def _to_where(
    value: Mapping[str, object] | Iterable[tuple[str, object]] | None,
) -> tuple[tuple[str, str | int | float | bool], ...]:
    if value is None:
        return ()
    items = list(value.items()) if isinstance(value, Mapping) else list(value)
    out: dict[str, str | int | float | bool] = {}
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise SegmentError(f"did(where=...) items are (property, value) pairs, got {item!r}")
        k, v = item
        if not isinstance(k, str) or not _NAME_RE.match(k):
            raise SegmentError(f"invalid event property name {k!r}")
        if not isinstance(v, str | int | float | bool) or (
            isinstance(v, float) and not math.isfinite(v)
        ):
            raise SegmentError(f"did(where={{{k!r}: ...}}) needs a str/int/float/bool, got {v!r}")
        out[k] = v
    return tuple(sorted(out.items()))


@attrs.frozen(slots=True)
class Did(Segment):
    """Behaviour: the member's events of ``event`` type whose properties equal every
    ``where`` item, in the window ``(as_of - within, as_of]`` (no lower bound when
    ``within`` is ``None``), number at least ``at_least`` and at most ``at_most``."""

    event: str
    where: tuple[tuple[str, str | int | float | bool], ...] = attrs.field(
        default=(), converter=_to_where
    )
    at_least: int = 1
    at_most: int | None = None
    within: int | None = None
    """Window length in seconds."""
    kind: ClassVar[str] = "did"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.event, str) or not _EVENT_RE.match(self.event):
            raise SegmentError(f"invalid event type {self.event!r}")
        for name, v in (("at_least", self.at_least), ("at_most", self.at_most)):
            if v is None and name == "at_most":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise SegmentError(f"did({name}=...) must be a non-negative int, got {v!r}")
        if self.within is not None and (
            isinstance(self.within, bool) or not isinstance(self.within, int) or self.within <= 0
        ):
            raise SegmentError(f"did(within=...) must be a positive duration, got {self.within!r}")


def did(
    event_type: str,
    *,
    where: Mapping[str, object] | None = None,
    at_least: int = 1,
    at_most: int | None = None,
    within: dt.timedelta | None = None,
) -> Did:
    """Members who did ``event_type`` (with properties equal to ``where``) at least
    ``at_least`` and at most ``at_most`` times in ``(as_of - within, as_of]``.

    Raises:
        SegmentError: for invalid arguments (negative counts, non-positive window...).
    """
    secs: int | None = None
    if within is not None:
        if not isinstance(within, dt.timedelta):
            raise SegmentError(f"did(within=...) takes a timedelta, got {within!r}")
        total = within.total_seconds()
        if total != int(total):
            raise SegmentError("did(within=...) must be whole seconds")
        secs = int(total)
    return Did(event_type, _to_where(where), at_least, at_most, secs)

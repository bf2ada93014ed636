"""When a campaign may send: quiet hours and the schedule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from membermkt.core.members import Member
from membermkt.core.quotas import DEFAULT_TZ, zone
from membermkt.errors import UsageError


def _check_time(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dt.time) or value.tzinfo is not None:
        raise UsageError(f"QuietHours.{attribute.name} must be a naive datetime.time")


@attrs.frozen(slots=True, kw_only=True)
class QuietHours:
    """No sends between ``start`` and ``end`` local time (``start > end`` wraps midnight).

    Args:
        start: local time the quiet period begins (inclusive).
        end: local time it ends (exclusive).
        tz: the campaign's time zone (IANA name), default Asia/Shanghai.
        member_tz_attribute: a custom attribute holding a member's own IANA zone; members
            without a valid one use ``tz``. ``None`` disables per-member zones.

    Raises:
        UsageError: for an empty period or an unknown zone.
    """

    start: dt.time = attrs.field(validator=_check_time)
    end: dt.time = attrs.field(validator=_check_time)
    tz: str = DEFAULT_TZ
    member_tz_attribute: str | None = "timezone"

    def __attrs_post_init__(self) -> None:
        if self.start == self.end:
            raise UsageError("QuietHours start and end are equal; omit quiet hours instead")
        zone(self.tz)

    def contains(self, at: dt.datetime, member: Member | None = None) -> bool:
        """Whether ``at`` falls in the quiet period for ``member``."""
        tz = zone(self.tz)
        if member is not None and self.member_tz_attribute:
            name = member.attributes.get(self.member_tz_attribute)
            if isinstance(name, str):
                try:
                    tz = zone(name)
                except UsageError:
                    tz = zone(self.tz)
        t = at.astimezone(tz).time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def _opt_aware(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, dt.datetime) or value.utcoffset() is None):
        raise UsageError(f"Schedule.{attribute.name} must be a timezone-aware datetime or None")


@attrs.frozen(slots=True, kw_only=True)
class Schedule:
    """When the campaign may send: ``start <= at < end`` (either bound optional)."""

    start: dt.datetime | None = attrs.field(default=None, validator=_opt_aware)
    end: dt.datetime | None = attrs.field(default=None, validator=_opt_aware)

    def __attrs_post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("Schedule.end must be after Schedule.start")

    def contains(self, at: dt.datetime) -> bool:
        """Whether ``at`` is within the schedule."""
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)

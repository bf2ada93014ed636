"""Staff metrics for WeCom customer contact: interactions per staff per day, first-reply
time, customers added and lost.

Inputs are events:

* conversation messages ``Event(member_id, "message", at, {"channel": "wecom", "staff":
  userid, "direction": "in" | "out"})`` — ``"in"`` is customer → staff, ``"out"`` staff →
  customer;
* ``contact_added`` (property ``staff``) and ``contact_deleted`` (properties ``staff`` and
  ``by`` = ``"customer"`` | ``"staff"``).

**First-reply time**: per (staff, member) conversation, in time order (at equal times an
``"in"`` comes before an ``"out"``), the first ``"in"`` not yet answered starts a wait and the
next ``"out"`` ends it; later ``"in"`` messages while waiting do not restart the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs

from membermkt.core.analytics._common import Table, check_as_of
from membermkt.core.events import Event
from membermkt.errors import UsageError

__all__ = [
    "ReplyTracker",
    "StaffResult",
    "StaffRow",
    "staff_metrics",
    "staff_rows",
    "wecom_message",
]


def wecom_message(event: Event) -> tuple[str, str] | None:
    """``(staff, direction)`` when ``event`` is a WeCom conversation message, else ``None``."""
    if event.type != "message":
        return None
    p = event.properties
    staff, direction = p.get("staff"), p.get("direction")
    if p.get("channel") != "wecom" or not isinstance(staff, str) or not staff:
        return None
    if direction not in ("in", "out"):
        return None
    assert isinstance(direction, str)
    return staff, direction


class ReplyTracker:
    """Accumulates first-reply times from one conversation's messages, fed in order
    (time, then ``"in"`` before ``"out"``). Used by the pure and the SQL runners alike."""

    __slots__ = ("_key", "_pending", "count", "total_seconds")

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._pending: dt.datetime | None = None
        self.count = 0
        self.total_seconds = 0.0

    def feed(self, staff: str, member_id: str, at: dt.datetime, direction: str) -> float | None:
        """One message; returns the reply time in seconds when it answers a waiting ``in``.
        A new (staff, member) key starts a new conversation."""
        key = (staff, member_id)
        if key != self._key:
            self._key = key
            self._pending = None
        if direction == "in":
            if self._pending is None:
                self._pending = at
            return None
        if self._pending is None:
            return None
        secs = (at - self._pending).total_seconds()
        self._pending = None
        self.count += 1
        self.total_seconds += secs
        return secs


@attrs.frozen(slots=True, kw_only=True)
class StaffRow:
    """One staff member's numbers over the period."""

    staff: str
    messages_in: int
    messages_out: int
    active_days: int
    replies: int
    reply_seconds_total: float
    customers_added: int
    lost_by_customer: int
    lost_by_staff: int

    @property
    def interactions(self) -> int:
        """Messages both ways."""
        return self.messages_in + self.messages_out

    @property
    def interactions_per_day(self) -> float | None:
        """Messages per day with at least one message."""
        return self.interactions / self.active_days if self.active_days else None

    @property
    def avg_first_reply_seconds(self) -> float | None:
        """Mean first-reply time (``None`` without any reply)."""
        return self.reply_seconds_total / self.replies if self.replies else None

    @property
    def customers_lost(self) -> int:
        """Contacts deleted, by either side."""
        return self.lost_by_customer + self.lost_by_staff


@attrs.frozen(slots=True, kw_only=True)
class StaffResult:
    """Per-staff rows (sorted by staff) and daily interaction counts.

    Attributes:
        since / as_of: the period ``(since, as_of]`` (``since`` may be ``None``).
        rows: one :class:`StaffRow` per staff member seen.
        daily: ``(staff, day, interactions)`` sorted by staff, day (UTC days).
    """

    since: dt.datetime | None
    as_of: dt.datetime
    rows: tuple[StaffRow, ...]
    daily: tuple[tuple[str, dt.date, int], ...]

    def row(self, staff: str) -> StaffRow | None:
        """The row of ``staff``."""
        return next((r for r in self.rows if r.staff == staff), None)

    def table(self) -> Table:
        """One row per staff member."""
        return Table(
            (
                "staff",
                "interactions",
                "active_days",
                "interactions_per_day",
                "replies",
                "avg_first_reply_seconds",
                "customers_added",
                "customers_lost",
                "lost_by_customer",
                "lost_by_staff",
            ),
            tuple(
                (
                    r.staff,
                    r.interactions,
                    r.active_days,
                    r.interactions_per_day,
                    r.replies,
                    r.avg_first_reply_seconds,
                    r.customers_added,
                    r.customers_lost,
                    r.lost_by_customer,
                    r.lost_by_staff,
                )
                for r in self.rows
            ),
            title="WeCom staff",
        )

    def _repr_html_(self) -> str:
        return f"<p><b>Staff</b> — {len(self.rows)} staff</p>" + self.table().to_html()


@attrs.define
class _Acc:
    messages_in: int = 0
    messages_out: int = 0
    days: dict[dt.date, int] = attrs.Factory(dict)
    replies: int = 0
    reply_total: float = 0.0
    added: int = 0
    lost_customer: int = 0
    lost_staff: int = 0


def staff_rows(
    *,
    messages: Iterable[tuple[str, str, dt.datetime, str]],
    contacts: Iterable[tuple[str, str, str | None, int]],
) -> tuple[tuple[StaffRow, ...], tuple[tuple[str, dt.date, int], ...]]:
    """Build rows from **ordered** message tuples ``(staff, member_id, at, direction)``
    (by staff, member, time, direction) and contact counts ``(staff, type, by, n)``.

    Raises:
        UsageError: when the messages are not in that order.
    """
    acc: dict[str, _Acc] = {}
    tracker = ReplyTracker()
    last: tuple[str, str, dt.datetime, str] | None = None
    for staff, member_id, at, direction in messages:
        cur = (staff, member_id, at, direction)
        if last is not None and cur < last:
            raise UsageError("staff messages must be ordered by staff, member, time, direction")
        last = cur
        a = acc.setdefault(staff, _Acc())
        if direction == "in":
            a.messages_in += 1
        else:
            a.messages_out += 1
        day = at.astimezone(dt.UTC).date()
        a.days[day] = a.days.get(day, 0) + 1
        secs = tracker.feed(staff, member_id, at, direction)
        if secs is not None:
            a.replies += 1
            a.reply_total += secs
    for staff, etype, by, n in contacts:
        a = acc.setdefault(staff, _Acc())
        if etype == "contact_added":
            a.added += n
        elif by == "staff":
            a.lost_staff += n
        else:
            a.lost_customer += n
    rows = tuple(
        StaffRow(
            staff=s,
            messages_in=a.messages_in,
            messages_out=a.messages_out,
            active_days=len(a.days),
            replies=a.replies,
            reply_seconds_total=a.reply_total,
            customers_added=a.added,
            lost_by_customer=a.lost_customer,
            lost_by_staff=a.lost_staff,
        )
        for s, a in sorted(acc.items())
    )
    daily = tuple((s, d, n) for s, a in sorted(acc.items()) for d, n in sorted(a.days.items()))
    return rows, daily


def _in_period(at: dt.datetime, since: dt.datetime | None, as_of: dt.datetime) -> bool:
    return at <= as_of and (since is None or at > since)


def staff_metrics(
    events: Iterable[Event], *, as_of: dt.datetime, since: dt.datetime | None = None
) -> StaffResult:
    """Staff metrics over events in ``(since, as_of]`` (any order; other events ignored).

    Raises:
        UsageError: for bad ``as_of``/``since``.
    """
    as_of = check_as_of(as_of)
    lo = check_as_of(since, "since") if since is not None else None
    msgs: list[tuple[str, str, dt.datetime, str]] = []
    contacts: list[tuple[str, str, str | None, int]] = []
    for e in events:
        if not _in_period(e.at, lo, as_of):
            continue
        m = wecom_message(e)
        if m is not None:
            msgs.append((m[0], e.member_id, e.at_utc, m[1]))
        elif e.type in ("contact_added", "contact_deleted"):
            staff = e.properties.get("staff")
            if isinstance(staff, str) and staff:
                by = e.properties.get("by")
                contacts.append((staff, e.type, by if isinstance(by, str) else None, 1))
    msgs.sort()
    rows, daily = staff_rows(messages=msgs, contacts=contacts)
    return StaffResult(since=lo, as_of=as_of, rows=rows, daily=daily)

"""「联系客户统计」: staff behaviour data (``get_user_behavior_data``) into staff metrics.

``POST /cgi-bin/externalcontact/get_user_behavior_data`` with ``userid`` (≤ 100) and/or
``partyid`` (≤ 100), ``start_time`` and ``end_time`` (unix seconds, both required) answers
one row per **day** (``stat_time`` = 00:00 Beijing time): ``chat_cnt``, ``message_cnt``,
``reply_percentage``, ``avg_reply_time`` (minutes; only on days with chats),
``negative_feedback_cnt``, ``new_apply_cnt``, ``new_contact_cnt`` (WeCom doc path/92275,
seen in two SDKs). Rows for several members are **summed** over them, so per-staff metrics
need one call per member (:func:`staff_behavior`). The span limit (≤ 30 days) and the
history limit (the last 180 days) are from the doc as recalled — **unconfirmed**.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import EC, post, strs
from membermkt.core.redpackets import BEIJING
from membermkt.errors import UsageError

__all__ = [
    "MAX_SPAN_DAYS",
    "BehaviorDay",
    "StaffBehavior",
    "behavior_data",
    "staff_behavior",
    "staff_metrics",
]

PATH: Final = f"{EC}/get_user_behavior_data"
MAX_SPAN_DAYS: Final = 30
HISTORY_DAYS: Final = 180
MAX_IDS: Final = 100


@attrs.frozen(slots=True, kw_only=True)
class BehaviorDay:
    """One day (Beijing) of behaviour data."""

    day: dt.date
    chat_cnt: int = 0
    message_cnt: int = 0
    reply_percentage: float | None = None
    avg_reply_time: int | None = None
    negative_feedback_cnt: int = 0
    new_apply_cnt: int = 0
    new_contact_cnt: int = 0

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> BehaviorDay:
        def opt(key: str) -> Any:
            v = d.get(key)
            return None if v is None else v

        pct = opt("reply_percentage")
        avg = opt("avg_reply_time")
        return cls(
            day=dt.datetime.fromtimestamp(int(d.get("stat_time", 0)), BEIJING).date(),
            chat_cnt=int(d.get("chat_cnt", 0) or 0),
            message_cnt=int(d.get("message_cnt", 0) or 0),
            reply_percentage=float(pct) if pct is not None else None,
            avg_reply_time=int(avg) if avg is not None else None,
            negative_feedback_cnt=int(d.get("negative_feedback_cnt", 0) or 0),
            new_apply_cnt=int(d.get("new_apply_cnt", 0) or 0),
            new_contact_cnt=int(d.get("new_contact_cnt", 0) or 0),
        )


def _midnight(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), BEIJING).timestamp())


def behavior_data(
    *,
    start: dt.date,
    end: dt.date,
    today: dt.date,
    userids: Sequence[str] = (),
    partyids: Sequence[int] = (),
) -> ApiCall[tuple[BehaviorDay, ...]]:
    """One call for the Beijing days ``start..end`` (inclusive), summed over the members.

    Raises:
        UsageError: without any member or department, with more than 100 of either, for a
            reversed range, more than 30 days, or a start more than 180 days ago.
    """
    users = strs(userids, "userids", max_items=MAX_IDS)
    if len(partyids) > MAX_IDS:
        raise UsageError(f"partyids takes at most {MAX_IDS} ids")
    if not users and not partyids:
        raise UsageError("get_user_behavior_data needs userids or partyids")
    if start > end:
        raise UsageError(f"start {start} is after end {end}")
    if (end - start).days + 1 > MAX_SPAN_DAYS:
        raise UsageError(f"at most {MAX_SPAN_DAYS} days per call")
    if (today - start).days > HISTORY_DAYS:
        raise UsageError(f"behaviour data covers the last {HISTORY_DAYS} days only")
    body: dict[str, Any] = {"start_time": _midnight(start), "end_time": _midnight(end)}
    if users:
        body["userid"] = users
    if partyids:
        body["partyid"] = list(partyids)
    return post(
        PATH,
        body,
        lambda d: tuple(BehaviorDay.from_api(r) for r in d.get("behavior_data") or ()),
        idempotent=True,
    )


def staff_behavior(
    userids: Sequence[str], *, start: dt.date, end: dt.date, today: dt.date
) -> Generator[ApiCall[Any], Any, dict[str, tuple[BehaviorDay, ...]]]:
    """Operation flow (``wecom.run(...)``): per-member rows, one call per member."""
    out: dict[str, tuple[BehaviorDay, ...]] = {}
    for u in strs(userids, "userids"):
        out[u] = yield behavior_data(start=start, end=end, today=today, userids=[u])
    return out


@attrs.frozen(slots=True, kw_only=True)
class StaffBehavior:
    """A member's totals over the days: chats, messages, new contacts, the reply rate
    (weighted by chats) and the average first-reply time in minutes (weighted by chats
    on days that report one)."""

    userid: str
    days: int
    chats: int
    messages: int
    new_contacts: int
    negative_feedback: int
    reply_rate: float | None
    avg_reply_minutes: float | None


def staff_metrics(per_user: Mapping[str, Sequence[BehaviorDay]]) -> dict[str, StaffBehavior]:
    """Fold per-member behaviour days into :class:`StaffBehavior` (pure)."""
    out: dict[str, StaffBehavior] = {}
    for userid, days in sorted(per_user.items()):
        chats = sum(d.chat_cnt for d in days)
        rated = [d for d in days if d.reply_percentage is not None and d.chat_cnt]
        timed = [d for d in days if d.avg_reply_time is not None and d.chat_cnt]
        rate_w = sum(d.chat_cnt for d in rated)
        time_w = sum(d.chat_cnt for d in timed)
        out[userid] = StaffBehavior(
            userid=userid,
            days=len(days),
            chats=chats,
            messages=sum(d.message_cnt for d in days),
            new_contacts=sum(d.new_contact_cnt for d in days),
            negative_feedback=sum(d.negative_feedback_cnt for d in days),
            reply_rate=(
                sum((d.reply_percentage or 0.0) * d.chat_cnt for d in rated) / rate_w / 100
                if rate_w
                else None
            ),
            avg_reply_minutes=(
                sum((d.avg_reply_time or 0) * d.chat_cnt for d in timed) / time_w
                if time_w
                else None
            ),
        )
    return out

"""「联系客户统计」: ``get_user_behavior_data`` over seeded per-member days.

Rows are summed over the requested members per Beijing day (as the platform does);
``reply_percentage`` and ``avg_reply_time`` are averaged weighted by ``chat_cnt`` and only
present on days with chats (emulator choice for the aggregation). Refusals with 40058
(emulator choice: the reference has no code): neither userid nor partyid, more than 100 of
either, a missing or reversed time range, a span over 30 days or a start more than 180 days
ago (both limits **unconfirmed**), an unknown member.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from membermkt.core.redpackets import BEIJING
from membermkt.errors import UsageError
from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import _INVALID, _Refuse

_FIELDS = ("chat_cnt", "message_cnt", "negative_feedback_cnt", "new_apply_cnt", "new_contact_cnt")


class _BehaviorMixin(_EmulatorBase):
    """``get_user_behavior_data``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._behavior: dict[tuple[str, str, dt.date], dict[str, float]] = {}

    def seed_behavior(self, corpid: str, userid: str, day: dt.date, **metrics: float) -> None:
        """Set a member's numbers for one Beijing day (``chat_cnt``, ``message_cnt``,
        ``reply_percentage``, ``avg_reply_time``, ...).

        Raises:
            UsageError: for an unknown corp or member, or an unknown metric.
        """
        known = {*_FIELDS, "reply_percentage", "avg_reply_time"}
        if set(metrics) - known:
            raise UsageError(f"unknown behaviour metrics {sorted(set(metrics) - known)}")
        with self.lock:
            corp = self.corps.get(corpid)
            if corp is None or userid not in corp.staff:
                raise UsageError(f"{userid!r} is not staff of {corpid!r}")
            self._behavior[(corpid, userid, day)] = dict(metrics)

    def _behavior_data(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        users = body.get("userid") or []
        parties = body.get("partyid") or []
        if not users and not parties:
            raise _Refuse(_INVALID, "userid and partyid both empty")
        if len(users) > 100 or len(parties) > 100:
            raise _Refuse(_INVALID, "at most 100 userid / partyid")
        try:
            start = dt.datetime.fromtimestamp(int(body["start_time"]), BEIJING).date()
            end = dt.datetime.fromtimestamp(int(body["end_time"]), BEIJING).date()
        except (KeyError, TypeError, ValueError):
            raise _Refuse(_INVALID, "start_time and end_time are required") from None
        today = dt.datetime.fromtimestamp(self.now(), BEIJING).date()
        if start > end or (end - start).days + 1 > 30 or (today - start).days > 180:
            raise _Refuse(_INVALID, "invalid time range")
        for u in users:
            if u not in corp.staff:
                raise _Refuse(60111, "invalid userid")  # userid not found (global list)
        rows = []
        day = start
        while day <= end:
            rows.append(self._day_row(corp, users, day))
            day += dt.timedelta(days=1)
        return {"behavior_data": rows}

    def _day_row(self, corp: Corp, users: list[str], day: dt.date) -> dict[str, Any]:
        seeded = [self._behavior.get((corp.corpid, u, day), {}) for u in users]
        row: dict[str, Any] = {
            "stat_time": int(dt.datetime.combine(day, dt.time(), BEIJING).timestamp())
        }
        for f in _FIELDS:
            row[f] = int(sum(m.get(f, 0) for m in seeded))
        chats = [(m, m.get("chat_cnt", 0)) for m in seeded if m.get("chat_cnt", 0)]
        weight = sum(w for _, w in chats)
        if weight:
            row["reply_percentage"] = round(
                sum(m.get("reply_percentage", 0) * w for m, w in chats) / weight, 2
            )
            row["avg_reply_time"] = round(
                sum(m.get("avg_reply_time", 0) * w for m, w in chats) / weight
            )
        return row

"""Staff behaviour data against the emulator: Beijing days, sums over members, per-staff
calls, refusals, and the fold into staff metrics."""

from __future__ import annotations

import datetime as dt

import pytest

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom._errcodes import WECOM_ERRCODES
from membermkt.channels.wecom.api.behavior import (
    BehaviorDay,
    behavior_data,
    staff_behavior,
    staff_metrics,
)
from membermkt.core.redpackets import BEIJING
from membermkt.errors import PlatformError, UsageError
from membermkt.testing.emulator.wecom import Corp, WeComEmulator
from membermkt.wire.http import HttpRequest

from .conftest import CORPID, ManualClock, Twin


def _today(clock: ManualClock) -> dt.date:
    return clock.now().astimezone(BEIJING).date()


async def test_per_staff_days_and_metrics(
    twin: Twin, emu: WeComEmulator, corp: Corp, clock: ManualClock
) -> None:
    today = _today(clock)
    d1, d2 = today - dt.timedelta(2), today - dt.timedelta(1)
    emu.seed_behavior(
        CORPID,
        "clerk1",
        d1,
        chat_cnt=10,
        message_cnt=40,
        reply_percentage=90.0,
        avg_reply_time=5,
        new_contact_cnt=3,
    )
    emu.seed_behavior(
        CORPID, "clerk1", d2, chat_cnt=30, message_cnt=60, reply_percentage=50.0, avg_reply_time=15
    )
    emu.seed_behavior(
        CORPID, "clerk2", d2, chat_cnt=5, message_cnt=5, reply_percentage=100.0, avg_reply_time=1
    )
    per = await twin.run(staff_behavior(["clerk1", "clerk2"], start=d1, end=d2, today=today))
    assert [d.day for d in per["clerk1"]] == [d1, d2]  # Beijing days
    assert per["clerk1"][0].chat_cnt == 10
    assert per["clerk2"][0].reply_percentage is None  # no chats that day: not reported
    metrics = staff_metrics(per)
    m1 = metrics["clerk1"]
    assert (m1.chats, m1.messages, m1.new_contacts) == (40, 100, 3)
    assert m1.reply_rate == pytest.approx((0.9 * 10 + 0.5 * 30) / 40)
    assert m1.avg_reply_minutes == pytest.approx((5 * 10 + 15 * 30) / 40)
    # one call for both members sums them per day
    both = await twin.call(
        behavior_data(start=d2, end=d2, today=today, userids=["clerk1", "clerk2"])
    )
    assert both[0].chat_cnt == 35
    assert both[0].message_cnt == 65


def test_client_side_refusals() -> None:
    today = dt.date(2026, 6, 1)
    with pytest.raises(UsageError, match="userids or partyids"):
        behavior_data(start=today, end=today, today=today)
    with pytest.raises(UsageError, match="30 days"):
        behavior_data(start=today - dt.timedelta(40), end=today, today=today, userids=["u"])
    with pytest.raises(UsageError, match="180 days"):
        behavior_data(
            start=today - dt.timedelta(200),
            end=today - dt.timedelta(190),
            today=today,
            userids=["u"],
        )
    with pytest.raises(UsageError, match="at most 100"):
        behavior_data(start=today, end=today, today=today, userids=[f"u{i}" for i in range(101)])


async def test_emulator_refusals(twin: Twin, corp: Corp, clock: ManualClock) -> None:
    now = int(clock())

    def raw(body: dict[str, object]) -> ApiCall[object]:
        return ApiCall(
            request=HttpRequest.post_json("/cgi-bin/externalcontact/get_user_behavior_data", body),
            parse=lambda d: d,
            table=WECOM_ERRCODES,
        )

    for body in (
        {"start_time": now - 86400, "end_time": now},
        {"userid": ["clerk1"], "start_time": now - 40 * 86400, "end_time": now},
        {"userid": ["clerk1"], "start_time": now, "end_time": now - 86400},
        {"userid": ["clerk1"]},
    ):
        with pytest.raises(PlatformError) as exc:
            await twin.call(raw(body))
        assert exc.value.errcode == 40058
    with pytest.raises(PlatformError) as unknown:
        await twin.call(raw({"userid": ["ghost"], "start_time": now - 86400, "end_time": now}))
    assert unknown.value.errcode == 60111


def test_staff_metrics_without_chats() -> None:
    day = BehaviorDay(day=dt.date(2026, 1, 1), new_contact_cnt=2)
    m = staff_metrics({"u": [day]})["u"]
    assert m.reply_rate is None
    assert m.avg_reply_minutes is None
    assert m.new_contacts == 2

"""Data-cube fetchers against the emulator (span limits, yesterday rule, windows) and
conversion by hour/weekday for any event pair."""

from __future__ import annotations

import datetime as dt

import pytest

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.api.datacube import datacube, fetch_range, windows
from membermkt.core.analytics.timing import conversion_by_time
from membermkt.core.events import Event
from membermkt.core.redpackets import BEIJING
from membermkt.errors import PlatformError, UsageError
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.http import HttpRequest

from .conftest import APPID, ManualClock, Twin


def _today(clock: ManualClock) -> dt.date:
    return clock.now().astimezone(BEIJING).date()


def test_windows_and_client_side_refusals() -> None:
    d = dt.date(2026, 1, 1)
    assert windows("getusersummary", d, d + dt.timedelta(15)) == [
        (d, d + dt.timedelta(6)),
        (d + dt.timedelta(7), d + dt.timedelta(13)),
        (d + dt.timedelta(14), d + dt.timedelta(15)),
    ]
    today = dt.date(2026, 2, 1)
    with pytest.raises(UsageError, match="at most 7"):
        datacube("getusersummary", d, d + dt.timedelta(7), today=today)
    with pytest.raises(UsageError, match="at most 1"):
        datacube("getarticlesummary", d, d + dt.timedelta(1), today=today)
    with pytest.raises(UsageError, match="yesterday"):
        datacube("getusersummary", today, today, today=today)
    with pytest.raises(UsageError, match="2014-12-01"):
        datacube("getusersummary", dt.date(2014, 11, 30), dt.date(2014, 12, 1), today=today)
    with pytest.raises(UsageError, match="unknown"):
        datacube("getsecrets", d, d, today=today)


async def test_fetch_range_against_emulator(
    twin: Twin, emu: WeChatEmulator, clock: ManualClock
) -> None:
    today = _today(clock)
    begin = today - dt.timedelta(10)
    rows = [
        {
            "ref_date": (begin + dt.timedelta(i)).isoformat(),
            "user_source": 0,
            "new_user": i,
            "cancel_user": 0,
        }
        for i in range(10)
    ]
    emu.seed_datacube(APPID, "getusersummary", rows)
    got = await twin.run(fetch_range("getusersummary", begin, today - dt.timedelta(1), today=today))
    assert [r["new_user"] for r in got] == list(range(10))
    assert emu.calls["/datacube/getusersummary"] == 2  # 10 days = 7 + 3
    # the fixture's 30 followers followed "today": yesterday they were not there yet
    before = await twin.call(
        datacube("getusercumulate", today - dt.timedelta(1), today - dt.timedelta(1), today=today)
    )
    assert [r["cumulate_user"] for r in before] == [0]
    clock.advance(3 * 86400)
    today = _today(clock)
    cumulate = await twin.call(
        datacube("getusercumulate", today - dt.timedelta(2), today - dt.timedelta(1), today=today)
    )
    assert [r["cumulate_user"] for r in cumulate] == [30, 30]


@pytest.mark.parametrize(
    ("begin_offset", "end_offset", "code"), [(-9, -1, 61501), (-1, 0, 61501), (-1, -3, 61501)]
)
async def test_emulator_refuses_bad_spans(
    twin: Twin, clock: ManualClock, begin_offset: int, end_offset: int, code: int
) -> None:
    today = _today(clock)
    body = {
        "begin_date": (today + dt.timedelta(begin_offset)).isoformat(),
        "end_date": (today + dt.timedelta(end_offset)).isoformat(),
    }
    call: ApiCall[object] = ApiCall(
        request=HttpRequest.post_json("/datacube/getusersummary", body), parse=lambda d: d
    )
    with pytest.raises(PlatformError) as exc:
        await twin.call(call)
    assert exc.value.errcode == code


def test_conversion_by_hour_and_weekday() -> None:
    def at(day: int, hour: int) -> dt.datetime:
        return dt.datetime(2026, 3, day, hour, 30, tzinfo=BEIJING)

    events = [
        Event("a", "follow", at(2, 23)),  # Monday 23:30 → buys 20 min later
        Event("a", "purchase", at(2, 23) + dt.timedelta(minutes=20)),
        Event("b", "follow", at(2, 23)),  # Monday 23:30 → buys 3 days later (outside)
        Event("b", "purchase", at(5, 10)),
        Event("c", "follow", at(3, 9)),  # Tuesday 09:30 → never
        Event("c", "follow", at(4, 23)),  # a second follow, counted unless first_only
        Event("c", "purchase", at(4, 23) + dt.timedelta(hours=1)),
        Event("d", "purchase", at(3, 8)),  # purchase before any follow: no trial
    ]
    hours = conversion_by_time(
        events, start="follow", goal="purchase", within=dt.timedelta(days=1), tz=BEIJING
    )
    assert len(hours) == 24
    assert (hours[23].starts, hours[23].conversions) == (3, 2)
    assert (hours[9].starts, hours[9].conversions) == (1, 0)
    assert hours[0].rate is None
    first = conversion_by_time(
        events,
        start="follow",
        goal="purchase",
        within=dt.timedelta(days=1),
        tz=BEIJING,
        by="weekday",
        first_only=True,
    )
    assert (first[0].starts, first[0].conversions) == (2, 1)  # Monday: a converts, b not
    assert (first[1].starts, first[1].conversions) == (1, 0)  # Tuesday: c buys 38 h later
    with pytest.raises(UsageError):
        conversion_by_time(
            events, start="follow", goal="purchase", within=dt.timedelta(0), tz=BEIJING
        )

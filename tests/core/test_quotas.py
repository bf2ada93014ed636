"""Quota data and safe templates."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membermkt import Member, Profile
from membermkt.core.quotas import (
    DEFAULT_RULES,
    OA_CUSTOM_WINDOW_2021,
    WECOM_MASS_DAILY,
    WECOM_MASS_DAYS_IN_MONTH,
    WECOM_MASS_LEGACY_MONTHLY,
    WECOM_MASS_WEEKLY,
    Cap,
    PastSend,
)
from membermkt.core.templating import MissingField, Template
from membermkt.errors import UsageError

SH = dt.timezone(dt.timedelta(hours=8))


def sends(*days: int, month: int = 2, channel: str = "wecom.mass") -> list[PastSend]:
    return [
        PastSend(member_id="m", channel=channel, at=dt.datetime(2026, month, d, 10, tzinfo=SH))
        for d in days
    ]


def test_wecom_mass_cap_defaults_to_days_in_month_with_older_rules_available() -> None:
    """Rule: ref §3.4 current doc — days in the month; 7/week, 1/day, 4/month selectable."""
    assert DEFAULT_RULES["wecom.mass"].caps == (WECOM_MASS_DAYS_IN_MONTH,)
    feb = dt.datetime(2026, 2, 28, 12, tzinfo=SH)
    assert WECOM_MASS_DAYS_IN_MONTH.limit_at(feb) == 28
    assert WECOM_MASS_DAYS_IN_MONTH.limit_at(feb.replace(month=3, day=31)) == 31
    assert not WECOM_MASS_DAYS_IN_MONTH.allows(sends(*range(1, 29)), feb, "wecom.mass")
    assert WECOM_MASS_DAYS_IN_MONTH.allows(sends(*range(1, 28)), feb, "wecom.mass")
    assert not WECOM_MASS_LEGACY_MONTHLY.allows(sends(1, 2, 3, 4), feb, "wecom.mass")
    assert not WECOM_MASS_DAILY.allows(sends(28), feb, "wecom.mass")
    # 2026-02-23 is a Monday: the week is 23..28 (+ Mar 1)
    assert WECOM_MASS_WEEKLY.used(sends(20, 22, 23, 27), feb, "wecom.mass") == 2


def test_calendar_periods_are_counted_in_china_time() -> None:
    """Rule: "natural month" boundaries are local (Asia/Shanghai), not UTC."""
    cap = Cap(limit=1, period="month", channels={"wechat.mass"})
    # 2026-02-28 20:00 UTC is already March 1st in Shanghai
    late_utc = PastSend(
        member_id="m", channel="wechat.mass", at=dt.datetime(2026, 2, 28, 20, tzinfo=dt.UTC)
    )
    march = dt.datetime(2026, 3, 5, tzinfo=SH)
    assert cap.used([late_utc], march, "wechat.mass") == 1


def test_cap_scope() -> None:
    """Rule: channels=None counts the campaign's channel, {'*'} every channel."""
    s = sends(1, channel="wechat.template") + sends(2, channel="wechat.mass")
    at = dt.datetime(2026, 2, 3, tzinfo=SH)
    assert Cap(limit=5, period="month").used(s, at, "wechat.mass") == 1
    assert Cap(limit=5, period="month", channels={"*"}).used(s, at, "wechat.mass") == 2


@given(st.integers(1, 5), st.lists(st.integers(0, 24 * 30), max_size=12))
def test_rolling_cap_counts_every_window_containing_the_send(limit: int, hours: list[int]) -> None:
    """Rule: a rolling cap admits a send only if no window of its length would overflow."""
    cap = Cap(limit=limit, period=dt.timedelta(days=2), channels={"x"})
    t0 = dt.datetime(2026, 1, 1, tzinfo=SH)
    accepted: list[PastSend] = []
    for h in sorted(hours):
        at = t0 + dt.timedelta(hours=h)
        if cap.allows(accepted, at, "x"):
            accepted.append(PastSend(member_id="m", channel="x", at=at))
    for s in accepted:
        window = [x for x in accepted if s.at - cap.period < x.at <= s.at]  # type: ignore[operator]
        assert len(window) <= limit


def test_older_customer_service_rule_is_selectable() -> None:
    """Rule: ref §1.6 conflict — the 2021 counts are data, not code."""
    msg = next(t for t in OA_CUSTOM_WINDOW_2021.triggers if t.event_type == "message")
    assert msg.limit == 20


def test_cap_validation() -> None:
    """Rule: bad caps fail at construction."""
    with pytest.raises(UsageError):
        Cap(limit=-1, period="day")
    with pytest.raises(UsageError):
        Cap(limit=1, period="fortnight")
    with pytest.raises(UsageError, match="time zone"):
        Cap(limit=1, period="day", tz="Nowhere/City")
    with pytest.raises(UsageError, match="month"):
        Cap(limit=None, period="day")


# --------------------------------------------------------------------------- templating


def test_template_renders_fields_with_fallbacks() -> None:
    """Rule: placeholders render member fields; a fallback covers a missing one."""
    m = Member("m1", Profile(city="杭州"), attributes={"points": 120, "vip": True})
    t = Template('{{ city }}的朋友 {{ tier | "会员" }}: {{points}} 分 {{ vip }} {{ id }} {{{{x}}}}')
    assert t.render(m) == "杭州的朋友 会员: 120 分 是 m1 {{x}}"
    assert t.fields == ("city", "tier", "points", "vip", "id")
    with pytest.raises(MissingField) as exc:
        Template("hi {{ tier }}").render(m)
    assert exc.value.field == "tier"
    assert Template('{{ tier | "say \\"hi\\"" }}').render(m) == 'say "hi"'


@pytest.mark.parametrize(
    "source",
    [
        "{{ profile.city }}",
        "{{ m.__class__ }}",
        "{{ city() }}",
        "{{ city | upper }}",
        "{{ city[0] }}",
        "{{ 1 + 1 }}",
        "{{ city",
        "oops }}",
        "{{ age }}",
        "{{ }}",
    ],
)
def test_template_refuses_anything_but_plain_fields(source: str) -> None:
    """Rule: no attribute access, calls, filters or expressions — they do not parse."""
    with pytest.raises(UsageError):
        Template(source)


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40))
def test_text_without_braces_is_static(text: str) -> None:
    """Rule: literal text renders to itself."""
    t = Template(text)
    assert t.is_static
    assert t.render(Member("m")) == text

"""Campaign planning: the partition, determinism, splits, caps and validation rules."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membermkt import Consent, Event, Identity, Member, MemberState, Profile
from membermkt.core.campaigns import (
    HOLDOUT,
    Campaign,
    QuietHours,
    Schedule,
    Skip,
    SkipReason,
    Variant,
    check,
    delivery_key,
    plan,
    summarize,
    validate,
)
from membermkt.core.delivery import ChannelCapabilities, Delivery
from membermkt.core.quotas import Cap, PastSend
from membermkt.errors import UsageError
from membermkt.segments import TRUE, attr, tag

SH = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 3, 10, 12, 0, tzinfo=SH)
APPID = "wx-app"
TEXT = {"msgtype": "text", "text": {"content": "春季上新"}}


def member(
    i: int,
    *,
    city: str | None = "杭州",
    tags: tuple[str, ...] = (),
    openid: bool = True,
    subscribed: bool | None = True,
    marketing: bool = True,
    opted_out: tuple[str, ...] = (),
    attributes: dict[str, str] | None = None,
) -> Member:
    return Member(
        f"m{i:06d}",
        Profile(city=city),
        tags=tags,
        attributes=attributes or {},
        identities=[Identity("openid", f"o{i}", APPID)] if openid else [],
        state=MemberState(subscribed=subscribed),
        consent=Consent(marketing=marketing, opted_out_channels=opted_out),
    )


def mass(**kw: object) -> Campaign:
    base: dict[str, object] = {
        "id": "spring",
        "audience": TRUE,
        "channel": "wechat.mass",
        "variants": (Variant(name="A", content=TEXT),),
        "address_namespace": APPID,
    }
    base.update(kw)
    return Campaign(**base)  # type: ignore[arg-type]


members_st = st.lists(
    st.builds(
        member,
        st.integers(0, 5000),
        city=st.sampled_from([None, "杭州", "上海"]),
        tags=st.sampled_from([(), ("vip",)]),
        openid=st.booleans(),
        subscribed=st.sampled_from([None, True, False]),
        marketing=st.booleans(),
        opted_out=st.sampled_from([(), ("wechat.mass",), ("wechat.template",)]),
    ),
    max_size=40,
    unique_by=lambda m: m.id,
)


@settings(max_examples=150, deadline=None)
@given(
    members=members_st,
    holdout=st.sampled_from([0.0, 0.1, 0.5]),
    audience=st.sampled_from([TRUE, attr("city") == "杭州", tag("vip") | (attr("city") == "上海")]),
    personalised=st.booleans(),
)
def test_every_audience_member_is_delivered_or_skipped_exactly_once(
    members: list[Member], holdout: float, audience: object, personalised: bool
) -> None:
    """Rule: each audience member yields exactly one delivery or skip; others none."""
    content = (
        {"template_id": "T1", "data": {"city": {"value": "{{ city }}"}}}
        if personalised
        else {"template_id": "T1", "data": {"x": {"value": "hi"}}}
    )
    c = mass(
        channel="wechat.template",
        audience=audience,
        holdout=holdout,
        variants=(Variant(name="A", content=content), Variant(name="B", content=content)),
    )
    items = list(plan(c, members, None, AS_OF))
    ids = [i.member_id for i in items]
    assert len(ids) == len(set(ids))
    from membermkt.core.evaluate import compile_predicate

    pred = compile_predicate(audience, AS_OF)  # type: ignore[arg-type]
    assert set(ids) == {m.id for m in members if pred(m, ())}
    for item in items:
        m = next(x for x in members if x.id == item.member_id)
        if isinstance(item, Delivery):
            assert m.consent.allows("wechat.template")
            assert m.state.subscribed is not False
            assert item.address == f"o{int(m.id[1:])}"
            assert item.key == delivery_key("spring", m.id)
            if personalised:
                assert item.payload["data"]["city"]["value"] == m.profile.city
        else:
            assert isinstance(item, Skip)
    assert items == list(plan(c, members, None, AS_OF)), "plans are deterministic"


def test_skip_reasons_follow_the_documented_order() -> None:
    """Rule: consent, subscription, address, personalisation fields each give their reason."""
    c = mass(
        channel="wechat.template",
        variants=(
            Variant(name="A", content={"template_id": "T", "data": {"c": {"value": "{{ city }}"}}}),
        ),
    )
    ms = [
        member(1, marketing=False),
        member(2, opted_out=("wechat.template",)),
        member(3, subscribed=False),
        member(4, openid=False),
        member(5, city=None),
        member(6),
    ]
    got = {i.member_id: i for i in plan(c, ms, None, AS_OF)}
    assert got["m000001"].reason is SkipReason.NO_CONSENT  # type: ignore[union-attr]
    assert got["m000002"].reason is SkipReason.NO_CONSENT  # type: ignore[union-attr]
    assert got["m000003"].reason is SkipReason.UNSUBSCRIBED  # type: ignore[union-attr]
    assert got["m000004"].reason is SkipReason.NO_ADDRESS  # type: ignore[union-attr]
    skip5 = got["m000005"]
    assert isinstance(skip5, Skip)
    assert (skip5.reason, skip5.detail, skip5.variant) == (SkipReason.MISSING_FIELD, "city", "A")
    assert isinstance(got["m000006"], Delivery)


def test_variant_and_holdout_split_is_deterministic_and_within_2_percent_on_20k() -> None:
    """Rule: holdout and variant assignment are deterministic and track the weights."""
    c = mass(
        holdout=0.1,
        variants=(
            Variant(name="A", content=TEXT, weight=5),
            Variant(name="B", content=TEXT, weight=3),
            Variant(name="C", content=TEXT, weight=2),
        ),
    )
    n = 20_000
    ms = [member(i) for i in range(n)]
    s = summarize(c.id, plan(c, ms, None, AS_OF))
    held = s.skipped[HOLDOUT]["holdout"]
    assert abs(held / n - 0.1) <= 0.02
    treated = n - held
    for name, w in (("A", 0.5), ("B", 0.3), ("C", 0.2)):
        assert abs(s.deliveries[name] / treated - w) <= 0.02
    again = summarize(c.id, plan(c, ms, None, AS_OF))
    assert again == s
    # the split does not depend on who else is in the audience
    single = {i.member_id: i for i in plan(c, ms[:100], None, AS_OF)}
    full = {i.member_id: i for i in plan(c, ms[:1000], None, AS_OF)}
    assert all(full[k] == v for k, v in single.items())


def test_holdout_is_independent_of_variant_hash() -> None:
    """Rule: holdout uses its own salt, so every variant loses the same share to it."""
    c = mass(
        holdout=0.2,
        variants=(Variant(name="A", content=TEXT), Variant(name="B", content=TEXT)),
    )
    ms = [member(i) for i in range(20_000)]
    by_variant = Counter(c.variant_for(m.id) for m in ms)
    assert abs(by_variant["A"] - by_variant["B"]) / 20_000 <= 0.02


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(0, 60 * 24 * 90), min_size=1, max_size=14),
    cap_limit=st.integers(1, 3),
    cap_period=st.sampled_from(["day", "week", dt.timedelta(days=3)]),
    wecom=st.booleans(),
)
def test_caps_and_platform_quotas_hold_over_a_sequence_of_campaigns(
    offsets: list[int], cap_limit: int, cap_period: str | dt.timedelta, wecom: bool
) -> None:
    """Rule: across many campaigns, no member exceeds a campaign cap or platform quota."""
    start = dt.datetime(2026, 1, 28, tzinfo=SH)
    times = sorted(start + dt.timedelta(minutes=o) for o in offsets)
    cap = Cap(limit=cap_limit, period=cap_period, name="house cap")
    ms = [member(i) for i in range(6)]
    if wecom:
        ms = [
            Member(
                m.id,
                identities=[Identity("external_userid", f"w{m.id}", "corp")],
                state=MemberState(wecom_contact=True),
            )
            for m in ms
        ]
    history: dict[str, list[PastSend]] = defaultdict(list)
    for n, at in enumerate(times):
        c = mass(
            id=f"c{n}",
            caps=(cap,),
            channel="wecom.mass" if wecom else "wechat.mass",
            address_kind="external_userid" if wecom else "openid",
            address_namespace="corp" if wecom else APPID,
            variants=(Variant(name="A", content={"text": {"content": "hi"}} if wecom else TEXT),),
        )
        for item in plan(c, ms, history, at):
            if isinstance(item, Delivery):
                history[item.member_id].append(
                    PastSend(member_id=item.member_id, channel=c.channel, at=at)
                )
    for sends in history.values():
        for s in sends:
            if isinstance(cap_period, str):
                assert cap.used(sends, s.at, s.channel) <= cap_limit
            for platform_cap in c.platform_rules.caps:
                lo, hi = platform_cap.window(s.at)
                in_period = [x for x in sends if lo <= x.at < hi]
                assert len(in_period) <= platform_cap.limit_at(s.at)
        if isinstance(cap_period, dt.timedelta):
            for s in sends:
                assert sum(1 for x in sends if s.at - cap_period < x.at <= s.at) <= cap_limit


def test_monthly_mass_quota_counts_console_and_other_campaign_sends() -> None:
    """Rule: the 4-per-month mass quota (ref §1.4) skips with platform_quota."""
    m = member(1)
    hist = {
        m.id: [
            PastSend(member_id=m.id, channel="wechat.mass", at=AS_OF.replace(day=d))
            for d in (1, 2, 3, 4)
        ]
    }
    (item,) = plan(mass(), [m], hist, AS_OF)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.PLATFORM_QUOTA
    # next calendar month: allowed again
    (item,) = plan(mass(), [m], hist, dt.datetime(2026, 4, 1, 0, 1, tzinfo=SH))
    assert isinstance(item, Delivery)


def test_customer_service_window() -> None:
    """Rule: wechat.custom sends only inside a window with budget left (ref §1.6)."""
    c = mass(channel="wechat.custom")
    m = member(1)
    msg = Event(m.id, "message", AS_OF - dt.timedelta(hours=47))
    (item,) = plan(c, [(m, [msg])], None, AS_OF)
    assert isinstance(item, Delivery)
    (item,) = plan(c, [(m, [])], None, AS_OF)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.OUTSIDE_WINDOW
    sends = [
        PastSend(member_id=m.id, channel="wechat.custom", at=AS_OF - dt.timedelta(hours=1))
    ] * 5
    (item,) = plan(c, [(m, [msg])], {m.id: sends}, AS_OF)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.PLATFORM_QUOTA
    old = Event(m.id, "message", AS_OF - dt.timedelta(hours=49))
    (item,) = plan(c, [(m, [old])], None, AS_OF)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.OUTSIDE_WINDOW


def test_quiet_hours_wrap_midnight_and_respect_member_zone() -> None:
    """Rule: quiet hours use explicit zones; a member's own zone wins when valid."""
    q = QuietHours(start=dt.time(21), end=dt.time(9))
    late = dt.datetime(2026, 3, 10, 22, 30, tzinfo=SH)
    assert q.contains(late)
    assert q.contains(late.replace(hour=8))
    assert not q.contains(late.replace(hour=12))
    london = member(1, attributes={"timezone": "Europe/London"})  # 14:30 in London
    assert not q.contains(late, london)
    bogus = member(2, attributes={"timezone": "Mars/Base"})
    assert q.contains(late, bogus)
    (item,) = plan(mass(quiet_hours=q), [member(3)], None, late)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.QUIET_HOURS


def test_schedule_outside_skips_everyone() -> None:
    """Rule: outside the schedule, every audience member is skipped with its reason."""
    c = mass(schedule=Schedule(start=AS_OF + dt.timedelta(days=1)))
    items = list(plan(c, [member(1), member(2)], None, AS_OF))
    assert {i.reason for i in items if isinstance(i, Skip)} == {SkipReason.OUTSIDE_SCHEDULE}
    assert len(items) == 2


def test_validate_finds_what_the_platform_would_refuse() -> None:
    """Rule: validate() reports content, batch and address problems before anything runs."""
    personal = mass(
        variants=(
            Variant(name="A", content={"msgtype": "text", "text": {"content": "hi {{ city }}"}}),
        )
    )
    assert any("cannot be personalised" in p.message for p in validate(personal))
    assert any(
        "msgtype" in p.path
        for p in validate(mass(variants=(Variant(name="A", content={"msgtype": "music"}),)))
    )
    # plain values are wrapped by the client (#12: no false positive); a list is refused
    template = mass(
        channel="wechat.template", variants=(Variant(name="A", content={"data": {"k": ["v"]}}),)
    )
    msgs = [str(p) for p in validate(template)]
    assert any("template_id" in m for m in msgs)
    assert any('{"value"' in m for m in msgs)
    plain = mass(
        channel="wechat.template",
        variants=(Variant(name="A", content={"template_id": "T", "data": {"k": "v"}}),),
    )
    assert validate(plain) == ()
    wecom = mass(
        channel="wecom.mass",
        address_kind="external_userid",
        variants=(
            Variant(
                name="A",
                content={
                    "text": {"content": "长" * 1400},
                    "attachments": [{"msgtype": "image"}] * 10,
                },
            ),
        ),
    )
    msgs = [str(p) for p in validate(wecom)]
    assert any("4000" in m for m in msgs)
    assert any("limit 9" in m for m in msgs)
    caps = ChannelCapabilities(max_batch_size=20_000, address_kind="external_userid")
    msgs = [str(p) for p in validate(mass(), capabilities=caps)]
    assert any("10000" in m for m in msgs)
    assert any("address_kind" in m for m in msgs)
    assert validate(mass()) == ()
    with pytest.raises(UsageError, match="would be refused"):
        check(personal)


def test_rendered_content_over_the_byte_limit_is_skipped() -> None:
    """Rule: a personalised text that renders too long is skipped, not sent to be refused."""
    c = Campaign(
        id="c",
        audience=TRUE,
        channel="wecom.mass",
        address_kind="external_userid",
        address_namespace="corp",
        variants=(Variant(name="A", content={"text": {"content": "{{ note }}"}}),),
    )
    m = Member(
        "m1",
        attributes={"note": "x" * 4001},
        identities=[Identity("external_userid", "w1", "corp")],
    )
    (item,) = plan(c, [m], None, AS_OF)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.CONTENT_INVALID


def test_campaign_construction_errors() -> None:
    """Rule: invalid campaigns fail at construction with a UsageError naming the field."""
    with pytest.raises(UsageError, match="holdout"):
        mass(holdout=1.0)
    with pytest.raises(UsageError, match="unique"):
        mass(variants=(Variant(name="A", content=TEXT), Variant(name="A", content=TEXT)))
    with pytest.raises(UsageError, match="reserved"):
        Variant(name="holdout", content=TEXT)
    with pytest.raises(UsageError, match="weight"):
        Variant(name="A", content=TEXT, weight=0)
    with pytest.raises(UsageError, match="timezone-aware"):
        list(plan(mass(), [], None, dt.datetime(2026, 1, 1)))
    with pytest.raises(UsageError, match="equal"):
        QuietHours(start=dt.time(9), end=dt.time(9))

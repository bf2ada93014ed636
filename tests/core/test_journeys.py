"""Journeys in the core: construction checks, validate(), JSON round-trip and the replay
properties (deterministic in (version, events, time); order and duplicates of events do not
matter; every side effect has one key)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.core.journeys import (
    Branch,
    ChannelRule,
    EventTrigger,
    Exit,
    Goal,
    Grant,
    Journey,
    Reentry,
    ScheduleTrigger,
    SegmentTrigger,
    Send,
    StaffTask,
    Tag,
    Variant,
    Wait,
    WaitForEvent,
    WaitUntil,
    replay,
    validate,
)
from membermkt.core.members import Member
from membermkt.errors import JourneyError
from membermkt.segments import did, tag

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
DAY = 86400


def welcome_journey(version: int = 1, holdout: int = 0) -> Journey:
    """welcome → wait 3 days → coupon unless purchased (the goal ends it early)."""
    return Journey(
        id="welcome",
        version=version,
        trigger=EventTrigger("follow"),
        steps=[
            Send("hello", "wechat.template", {"default": {"text": "hi"}}, next="wait3"),
            Wait("wait3", 3 * DAY, next="coupon"),
            Grant("coupon", "stock-1"),
        ],
        goal=Goal("purchase"),
        holdout_percent=holdout,
    )


def rich_journey() -> Journey:
    return Journey(
        id="rich",
        version=2,
        name="everything",
        trigger=EventTrigger("scan", {"scene": "store-1"}),
        steps=[
            Tag("t1", "scanned", next="b1"),
            Branch("b1", did("purchase", at_least=1), then="vip", otherwise="w1"),
            Send("vip", "wecom.customer", {"A": {"text": "a"}, "B": {"text": "b"}}, next="x"),
            WaitForEvent("w1", "view", 2 * DAY, on_event="task", on_timeout="wu"),
            StaffTask("task", "Call them", "Hello, saw you looking!", next="x"),
            WaitUntil("wu", "09:30", next="g"),
            Grant("g", "coupon-5"),
            Exit("x", "handled"),
        ],
        goal=Goal("purchase", {"category": "durian"}),
        reentry=Reentry("after_exit", cooldown_seconds=DAY, max_entries=3),
        holdout_percent=10,
        variants=[Variant("A", 1), Variant("B", 3)],
        migrations={1: {"old": "w1"}},
    )


def test_json_round_trip_and_string_form() -> None:
    j = rich_journey()
    doc = j.to_json()
    assert Journey.from_json(doc) == j
    assert Journey.from_json(json.dumps(doc)) == j
    s = Journey(
        id="sched",
        version=1,
        trigger=ScheduleTrigger([T0, T0 + dt.timedelta(days=7)], tag("vip")),
        steps=[Send("s", "wechat.mass", {"default": {"text": "x"}})],
    )
    assert Journey.from_json(s.to_json()) == s
    seg = Journey(id="seg", version=1, trigger=SegmentTrigger(tag("vip")), steps=[Exit("e")])
    assert Journey.from_json(seg.to_json()) == seg


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(format=2), "format"),
        (lambda d: d["steps"][0].update(kind="teleport"), "journey.steps[0].kind"),
        (lambda d: d["steps"][1].update(bogus=1), "unknown keys ['bogus']"),
        (lambda d: d.update(holdout_percent=80), "holdout_percent"),
        (lambda d: d["trigger"].update(kind="cron"), "journey.trigger.kind"),
        (lambda d: d["steps"][3].update(timeout_seconds=-1), "journey.steps[3]"),
    ],
)
def test_bad_json_names_the_problem(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    doc = rich_journey().to_json()
    mutate(doc)
    with pytest.raises(JourneyError, match=r".*" + needle.replace("[", r"\[").replace("]", r"\]")):
        Journey.from_json(doc)


def test_validate_catches_graph_errors() -> None:
    rich_journey().validate()
    welcome_journey().validate()
    dangling = Journey(
        id="j", version=1, trigger=EventTrigger("follow"), steps=[Tag("a", "x", next="nope")]
    )
    with pytest.raises(JourneyError, match="'nope', which is not a step"):
        validate(dangling)
    unreachable = Journey(
        id="j", version=1, trigger=EventTrigger("follow"), steps=[Tag("a", "x"), Tag("b", "y")]
    )
    with pytest.raises(JourneyError, match=r"unreachable steps \['b'\]"):
        validate(unreachable)
    loop = Journey(
        id="j",
        version=1,
        trigger=EventTrigger("follow"),
        steps=[Tag("a", "x", next="b"), Branch("b", tag("vip"), then="a", otherwise=None)],
    )
    with pytest.raises(JourneyError, match="loop with no wait: a -> b -> a"):
        validate(loop)
    waited = Journey(
        id="j",
        version=1,
        trigger=EventTrigger("follow"),
        steps=[Tag("a", "x", next="w"), Wait("w", 60, next="b"), Branch("b", tag("vip"), then="a")],
    )
    validate(waited)  # a loop with a wait on it is fine


def test_validate_channel_rules() -> None:
    j = Journey(
        id="j",
        version=1,
        trigger=EventTrigger("follow"),
        steps=[
            Send("s1", "wechat.mass", {"default": {"text": "a"}}, next="w"),
            Wait("w", DAY, next="s2"),
            Send("s2", "wechat.mass", {"default": {"text": "b"}}),
        ],
    )
    validate(j, channel_rules={"wechat.mass": ChannelRule(min_gap_seconds=DAY)})
    with pytest.raises(JourneyError, match="only 86400s apart"):
        validate(j, channel_rules={"wechat.mass": ChannelRule(min_gap_seconds=2 * DAY)})
    with pytest.raises(JourneyError, match=r"lacks \['media_id'\]"):
        validate(j, channel_rules={"wechat.mass": ChannelRule(required_keys=("media_id",))})
    novariant = Journey(
        id="j",
        version=1,
        trigger=EventTrigger("follow"),
        variants=[Variant("A"), Variant("B")],
        steps=[Send("s1", "x", {"A": {"text": "a"}})],
    )
    with pytest.raises(JourneyError, match="no content for variant 'B'"):
        validate(novariant)


def test_construction_errors_name_the_field() -> None:
    with pytest.raises(JourneyError, match=r"duplicate step ids"):
        Journey(id="j", version=1, trigger=EventTrigger("f"), steps=[Exit("a"), Exit("a")])
    with pytest.raises(JourneyError, match=r"Wait\.seconds"):
        Wait("w", 0)
    with pytest.raises(JourneyError, match="HH:MM"):
        WaitUntil("w", "25:00")
    with pytest.raises(JourneyError, match=r"Reentry\.mode"):
        Reentry("sometimes")


def test_welcome_replay_walkthrough() -> None:
    j = welcome_journey()
    m = Member("m1")
    follow = Event("m1", "follow", T0, key="f1")
    r = replay(j, m, [follow], T0 + dt.timedelta(days=1))
    assert [e.step_id for e in r.effects] == ["hello"]
    assert r.entries[0].status == "waiting"
    assert r.entries[0].due_at == T0 + dt.timedelta(days=3)
    assert r.next_due == T0 + dt.timedelta(days=3)
    r = replay(j, m, [follow], T0 + dt.timedelta(days=3))
    assert [e.step_id for e in r.effects] == ["hello", "coupon"]
    assert r.entries[0].status == "completed"
    buy = Event("m1", "purchase", T0 + dt.timedelta(days=2), {"amount_fen": 100}, key="p1")
    r = replay(j, m, [buy, follow], T0 + dt.timedelta(days=10))
    assert [e.step_id for e in r.effects] == ["hello"]
    assert r.entries[0].status == "goal"
    assert r.entries[0].ended_at == buy.at
    # re-entry "never": a second follow does nothing
    again = Event("m1", "follow", T0 + dt.timedelta(days=20), key="f2")
    assert len(replay(j, m, [follow, again], T0 + dt.timedelta(days=30)).entries) == 1


def test_wait_until_uses_member_offset() -> None:
    j = Journey(
        id="j",
        version=1,
        trigger=EventTrigger("follow"),
        steps=[WaitUntil("w", "09:00", next="s"), Send("s", "c", {"default": {"t": 1}})],
    )
    ev = Event("m", "follow", dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC))  # 10:00 at +8
    r = replay(j, Member("m"), [ev], ev.at)
    assert r.entries[0].due_at == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
    r = replay(j, Member("m", attributes={"utc_offset_minutes": 0}), [ev], ev.at)
    assert r.entries[0].due_at == dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def test_holdout_has_no_effects_but_is_tracked() -> None:
    j = welcome_journey(holdout=50)
    held = kept = 0
    for i in range(200):
        m = Member(f"m{i}")
        r = replay(j, m, [Event(m.id, "follow", T0)], T0 + dt.timedelta(days=5))
        e = r.entries[0]
        assert e.status == "completed"
        if e.holdout:
            held += 1
            assert r.effects == ()
        else:
            kept += 1
            assert len(r.effects) == 2
    assert 60 < held < 140
    assert held + kept == 200


def test_reentry_after_exit_and_cooldown() -> None:
    j = Journey(
        id="j",
        version=1,
        trigger=EventTrigger("scan"),
        steps=[Send("s", "c", {"default": {"t": 1}}, next="w"), Wait("w", DAY)],
        reentry=Reentry("after_exit", cooldown_seconds=3 * DAY),
    )
    scans = [Event("m", "scan", T0 + dt.timedelta(hours=h), key=f"s{h}") for h in (0, 12, 48, 100)]
    r = replay(j, Member("m"), scans, T0 + dt.timedelta(days=10))
    # 12h: still running; 48h: ended but inside cooldown; 100h: enters again
    assert [e.entered_at for e in r.entries] == [T0, T0 + dt.timedelta(hours=100)]
    assert len({e.key for e in r.effects}) == 2


events_st = st.lists(
    st.tuples(
        st.sampled_from(["follow", "purchase", "view", "scan"]),
        st.integers(min_value=0, max_value=12 * 24),
        st.sampled_from(["durian", "tea"]),
    ),
    max_size=12,
)


def _events(raw: list[tuple[str, int, str]]) -> list[Event]:
    out = []
    for i, (typ, hours, cat) in enumerate(raw):
        props: dict[str, str | int] = {"category": cat, "scene": "store-1"}
        if typ == "purchase":
            props["amount_fen"] = 100 + i
        out.append(Event("m", typ, T0 + dt.timedelta(hours=hours), props, key=f"e{i}"))
    return out


@settings(max_examples=60, deadline=None)
@given(raw=events_st, hours=st.integers(min_value=0, max_value=20 * 24), seed=st.randoms())
def test_replay_is_order_and_duplicate_insensitive(raw, hours, seed) -> None:  # type: ignore[no-untyped-def]
    now = T0 + dt.timedelta(hours=hours)
    for j in (welcome_journey(), rich_journey()):
        evs = _events(raw)
        base = replay(j, Member("m"), evs, now)
        shuffled = evs + evs[: len(evs) // 2]
        seed.shuffle(shuffled)
        assert replay(j, Member("m"), shuffled, now) == base
        # effects have unique keys, and a later replay only adds effects, never changes one
        keys = [e.key for e in base.effects]
        assert len(keys) == len(set(keys))
        later = replay(j, Member("m"), evs, now + dt.timedelta(days=3))
        assert set(keys) <= {e.key for e in later.effects}
        assert {e.key: e for e in later.effects if e.key in keys} == {
            e.key: e for e in base.effects
        }


@settings(max_examples=40, deadline=None)
@given(raw=events_st)
def test_purchasers_never_get_the_coupon(raw) -> None:  # type: ignore[no-untyped-def]
    evs = _events(raw)
    r = replay(welcome_journey(), Member("m"), evs, T0 + dt.timedelta(days=30))
    for entry in r.entries:
        bought = any(
            e.type == "purchase"
            and entry.entered_at < e.at <= entry.entered_at + dt.timedelta(days=3)
            for e in evs
        )
        coupon = [e for e in r.effects if e.step_id == "coupon" and e.entry == entry.entry]
        assert (len(coupon) == 0) if bought else (len(coupon) == 1)


def test_replay_rejects_foreign_events_and_naive_time() -> None:
    with pytest.raises(JourneyError, match="event of member 'x'"):
        replay(welcome_journey(), Member("m"), [Event("x", "follow", T0)], T0)
    with pytest.raises(JourneyError, match="timezone-aware"):
        replay(welcome_journey(), Member("m"), [], dt.datetime(2026, 1, 1))


def test_simulate_and_report_with_holdout_lift() -> None:
    from membermkt.core.journeys import simulate

    j = welcome_journey(holdout=30)
    history = []
    for i in range(300):
        m = Member(f"m{i:03d}")
        evs = [Event(m.id, "follow", T0, key=f"f{i}")]
        if i % 4 == 0:
            evs.append(Event(m.id, "purchase", T0 + dt.timedelta(days=1), {"amount_fen": 1}))
        history.append((m, evs))
    history.append((Member("never"), []))
    sim = simulate(j, history, as_of=T0 + dt.timedelta(days=2))
    assert len(sim.entered()) == 300
    assert "never" not in sim.entered()
    assert [e.step_id for e in sim.received("m001")] in ([], ["hello"])
    rep = sim.report()
    assert rep.entered == 300
    assert dict(rep.ended) == {"goal": 75}
    assert dict(rep.waiting) == {"wait3": 225}
    assert rep.time_to_goal == (75, 86400.0, 86400.0)
    arms = {a: (n, g) for a, n, g, _ in rep.arms}
    assert sum(n for n, _ in arms.values()) == 300
    assert sum(g for _, g in arms.values()) == 75
    assert set(arms) == {"default", "holdout"}
    ((name, lift),) = rep.lift
    assert name == "default"
    assert lift is not None
    assert rep.to_dict()["ended"] == {"goal": 75}
    assert "holdout" in rep._repr_html_()

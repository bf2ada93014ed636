"""Hand-computed expectations for every pure analytics computation on small fixed histories."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from membermkt import Event, Member
from membermkt.core import analytics as an
from membermkt.core.evaluate import compile_predicate
from membermkt.errors import UsageError
from membermkt.segments import tag

from ._data import AS_OF, DAY, at, buy, ev, history

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


# --------------------------------------------------------------------------- RFM


def rfm_history() -> list[tuple[Member, list[Event]]]:
    return history(
        [
            buy("a", at(1), 1000),
            buy("a", at(10), 2000),
            buy("b", at(5), 500),
            buy("c", at(30), 1000),
            buy("c", at(20), 1000),
            buy("c", at(3), 1000),
            buy("d", at(100), 10000),
            ev("e", "follow", at(2)),
            buy("f", AS_OF + DAY, 999),  # after as_of: not a buyer yet
        ]
    )


def test_rfm_scores_by_position_with_ties() -> None:
    """R, F, M scores are 1 + bins * position // n in a total order; ties are broken by the
    other dimensions (b and d both have one order: d spent more, so d's F is higher; a and c
    both spent 3000: c has more orders, so c's M is higher)."""
    result = an.rfm(rfm_history(), as_of=AS_OF, bins=4)
    got = {s.member_id: (s.r, s.f, s.m) for s in result.scores}
    assert got == {"a": (4, 3, 2), "b": (2, 1, 1), "c": (3, 4, 3), "d": (1, 2, 4)}
    a = result.score_of("a")
    assert a is not None
    assert (a.recency_days, a.frequency, a.monetary_fen, a.code) == (1, 2, 3000, "432")
    assert result.score_of("e") is None
    assert result.score_of("f") is None
    assert len(result) == 4


def test_rfm_groups_and_grid() -> None:
    """Groups follow the ordered default rules on the rescaled 1..5 scores."""
    result = an.rfm(rfm_history(), as_of=AS_OF, bins=4)
    assert {s.member_id: s.group for s in result.scores} == {
        "a": "champions",
        "b": "promising",
        "c": "champions",
        "d": "at_risk",
    }
    assert result.group_counts()["champions"] == 2
    assert result.members("champions") == ("a", "c")
    grid = result.grid()
    assert grid[3][2] == 1
    assert grid[2][3] == 1
    assert grid[0][1] == 1
    assert sum(map(sum, grid)) == 4
    assert an.tag_names(result)["rfm:champions"] == ("a", "c")
    with pytest.raises(UsageError, match="unknown RFM group"):
        result.members("nope")


def test_rfm_ties_never_leave_an_empty_bin() -> None:
    """Most buyers with one order (the demo's shape) still fill every F score, each score
    holding n // bins or n // bins + 1 buyers, ties split by spend."""
    events = [buy(f"m{i:02}", at(1 + i % 7), 100 + i) for i in range(23)]
    events += [buy(f"m{i:02}", at(2), 50) for i in range(20, 23)]  # three buyers of two orders
    result = an.rfm(history(events), as_of=AS_OF, bins=5)
    for dim in ("r", "f", "m"):
        sizes = sorted(Counter(getattr(s, dim) for s in result.scores).items())
        assert [k for k, _ in sizes] == [1, 2, 3, 4, 5], dim
        assert {n for _, n in sizes} <= {23 // 5, 23 // 5 + 1}, dim
    top = [s.member_id for s in result.scores if s.f == 5]
    assert {"m20", "m21", "m22"} <= set(top)  # more orders always rank above fewer


def test_rfm_bad_input() -> None:
    with pytest.raises(UsageError, match="bins"):
        an.rfm([], as_of=AS_OF, bins=1)
    with pytest.raises(UsageError, match="timezone-aware"):
        an.rfm([], as_of=dt.datetime(2026, 1, 1))
    with pytest.raises(UsageError, match="low <= high"):
        an.RFMGroup(name="x", r=(3, 2))


# --------------------------------------------------------------------------- activity


def activity_history() -> list[tuple[Member, list[Event]]]:
    return history(
        [
            ev("m1", "menu_click", at(10), key="A"),
            ev("m2", "purchase", at(40), order_id="o", amount_fen=1, category="x"),
            ev("m3", "message", at(100)),
            ev("m4", "follow", at(200)),
            ev("m5", "follow", at(10)),
            ev("m5", "unfollow", at(5)),
            ev("m7", "view", at(30), url="/x"),
        ],
        ids=["m6"],
    )


def test_activity_classes_partition_and_match_segments() -> None:
    """Each member is in exactly one class and the segment agrees with activity_class."""
    expected = {
        "m1": "active",
        "m2": "to_be_activated",
        "m3": "dormant",
        "m4": "churned",
        "m5": "churned",  # unfollowed
        "m6": "churned",  # never active
        "m7": "active",  # exactly on the 30-day boundary
    }
    w = an.ActivityWindows(active_days=30, dormant_days=90, churn_days=180)
    hist = activity_history()
    for member, events in hist:
        assert an.activity_class(member, AS_OF, w) == expected[member.id]
        inside = [
            c
            for c in an.ACTIVITY_CLASSES
            if compile_predicate(an.activity(c, w), AS_OF)(member, events)
        ]
        assert inside == [expected[member.id]]
    result = an.activity_counts([m for m, _ in hist], as_of=AS_OF, windows=w)
    assert result.as_dict() == {"active": 2, "to_be_activated": 1, "dormant": 1, "churned": 3}
    assert result.total == 7


def test_activity_bad_windows() -> None:
    with pytest.raises(UsageError, match="active_days < dormant_days"):
        an.ActivityWindows(active_days=90, dormant_days=30)
    with pytest.raises(UsageError, match="unknown activity class"):
        an.activity("sleepy")


# --------------------------------------------------------------------------- funnels

FUNNEL = an.Funnel.of(
    an.step("scan", "scan"),
    an.step("follow", "follow", within=DAY),
    an.step("purchase", "purchase"),
    an.step("repeat", "purchase", within=30 * DAY),
)


def funnel_history() -> list[tuple[Member, list[Event]]]:
    t0 = at(50)
    return history(
        [
            ev("u1", "scan", t0, source="qr:a"),
            ev("u1", "follow", t0 + 2 * H, source="qr:a"),
            buy("u1", t0 + DAY, 100),
            buy("u1", t0 + 2 * DAY, 100),
            ev("u2", "scan", t0, source="qr:b"),
            ev("u2", "follow", t0 + 2 * DAY),  # outside the 1-day window
            ev("u3", "follow", t0, source="qr:a"),  # never scanned: not in the funnel
            ev("u4", "scan", t0, source="qr:a"),
            ev("u4", "follow", t0),  # same instant counts
            buy("u4", t0 + H, 100),
            ev("u5", "scan", t0, source="qr:b"),
            ev("u5", "follow", t0 + H),
            buy("u5", t0 + 2 * H, 100),
            buy("u5", t0 + 2 * H, 200),  # same instant as the first: not a repeat
            buy("u5", t0 + 40 * DAY, 300),  # outside the 30-day repeat window
        ]
    )


def test_funnel_counts_windows_and_groups() -> None:
    """Windows bound each step; a same-type step must be strictly later."""
    result = an.funnel(FUNNEL, funnel_history(), as_of=AS_OF)
    assert result.steps == ("scan", "follow", "purchase", "repeat")
    assert result.counts == (4, 3, 3, 1)
    assert result.groups == (("qr:a", (2, 2, 2, 1)), ("qr:b", (2, 1, 1, 0)))
    assert result.conversion() == (None, 0.75, 1.0, 1 / 3)
    assert result.overall() == 0.25


def test_funnel_as_of_and_since() -> None:
    hist = funnel_history()
    early = an.funnel(FUNNEL, hist, as_of=at(50) + 90 * M, by=None)
    assert early.counts == (4, 2, 1, 0)
    assert early.groups == ()
    assert an.funnel(FUNNEL, hist, as_of=AS_OF, since=at(50)).counts == (0, 0, 0, 0)


def test_funnel_a_then_c() -> None:
    """'Members who click A then C' is a two-step funnel."""
    hist = history(
        [
            ev("x", "menu_click", at(3), key="A"),
            ev("x", "menu_click", at(2), key="B"),
            ev("x", "menu_click", at(1), key="C"),
            ev("y", "menu_click", at(3), key="C"),
            ev("y", "menu_click", at(1), key="A"),
        ]
    )
    f = an.Funnel.of(
        an.step("A", "menu_click", where={"key": "A"}),
        an.step("C", "menu_click", where={"key": "C"}),
    )
    assert an.funnel(f, hist, as_of=AS_OF).counts == (2, 1)


def test_funnel_bad_steps() -> None:
    with pytest.raises(UsageError, match="unique"):
        an.Funnel.of(an.step("a", "scan"), an.step("a", "follow"))
    with pytest.raises(UsageError, match="at least one step"):
        an.Funnel.of()


# --------------------------------------------------------------------------- paths


def paths_history() -> list[tuple[Member, list[Event]]]:
    t = at(5)
    return history(
        [
            ev("p1", "menu_click", t, key="A"),
            ev("p1", "view", t + M, url="/x", dwell_seconds=10),
            ev("p1", "menu_click", t + 2 * M, key="C"),
            ev("p1", "menu_click", t + 2 * H, key="A"),  # new session
            ev("p1", "menu_click", t + 2 * H + M, key="C"),
            ev("p2", "menu_click", t, key="A"),
            ev("p2", "menu_click", t + M, key="C"),
            ev("p2", "view", t + 3 * M, url="/x", dwell_seconds=30),
            ev("p3", "view", t, url="/x", dwell_seconds=20),
            ev("p3", "purchase", t, order_id="o", amount_fen=1),
        ]
    )


def test_paths_transitions_shares_top_paths_dwell() -> None:
    result = an.paths(paths_history(), as_of=AS_OF)
    assert result.transitions == (
        ("menu:A", "menu:C", 2),
        ("menu:A", "page:/x", 1),
        ("menu:C", "page:/x", 1),
        ("page:/x", "menu:C", 1),
    )
    shares = result.shares()
    assert shares["menu:A"] == {"menu:C": 2 / 3, "page:/x": 1 / 3}
    assert result.top_paths == (
        (("menu:A", "menu:C", "page:/x"), 1),
        (("menu:A", "page:/x", "menu:C"), 1),
    )
    ((node, d),) = result.dwell
    assert node == "page:/x"
    assert (d.count, d.mean, d.p50, d.p90, d.max) == (3, 20.0, 20, 30, 30)
    assert d.histogram == (0, 0, 2, 1, 0, 0, 0, 0)
    assert result.nodes() == ("menu:C", "menu:A", "page:/x")
    assert result.count("menu:A", "menu:C") == 2


def test_paths_session_gap_config() -> None:
    result = an.paths(paths_history(), as_of=AS_OF, config=an.PathConfig(session_gap=30))
    assert result.transitions == ()
    with pytest.raises(UsageError, match="path_length"):
        an.PathConfig(path_length=1)


# --------------------------------------------------------------------------- attribution


def test_attribution_by_first_touch_source() -> None:
    hist = history(
        [
            ev("x1", "follow", at(20), source="qr:a"),
            buy("x1", at(10), 100),
            buy("x1", at(5), 200),
            ev("x2", "follow", at(20), source="qr:a"),
            ev("x3", "scan", at(20), source="qr:b"),
            ev("x3", "follow", at(19), source="qr:c"),  # later touch: source stays qr:b
            buy("x3", at(3), 500),
            buy("x4", AS_OF + DAY, 700),
        ]
    )
    result = an.attribution(hist, as_of=AS_OF)
    rows = [
        (r.source, r.members, r.followers, r.buyers, r.orders, r.revenue_fen) for r in result.rows
    ]
    assert rows == [
        ("qr:b", 1, 1, 1, 1, 500),
        ("qr:a", 2, 2, 1, 2, 300),
        ("(unknown)", 1, 0, 0, 0, 0),
    ]
    assert result.totals().revenue_fen == 800


def test_attribution_credits_only_revenue_after_arrival() -> None:
    hist = history(
        [
            buy("x1", at(30), 1000),  # imported marketplace order, before the parcel QR
            ev("x1", "scan", at(20), source="parcel"),
            buy("x1", at(10), 300),
            ev("x1", "follow", at(8), source="store"),
            buy("x1", at(2), 50),
        ]
    )

    def rows(**kw: object) -> list[tuple[str, int, int, int, int]]:
        r = an.attribution(hist, as_of=AS_OF, **kw)  # type: ignore[arg-type]
        return [(x.source, x.members, x.buyers, x.orders, x.revenue_fen) for x in r.rows]

    assert rows() == [("(unknown)", 0, 0, 1, 1000), ("parcel", 1, 1, 2, 350)]
    assert rows(model="last_touch") == [
        ("(unknown)", 0, 0, 1, 1000),
        ("parcel", 0, 0, 1, 300),
        ("store", 1, 1, 1, 50),
    ]
    assert rows(window=15 * DAY) == [("(unknown)", 0, 0, 2, 1050), ("parcel", 1, 1, 1, 300)]
    with pytest.raises(UsageError, match="attribution model"):
        an.attribution(hist, as_of=AS_OF, model="linear")
    # as of a time before the arrival, nothing is credited to the parcel
    early = an.attribution(hist, as_of=at(25))
    assert [(x.source, x.members, x.orders) for x in early.rows] == [("(unknown)", 1, 1)]


def test_campaign_lift_against_holdout() -> None:
    start, end = at(10), at(0)
    hist = history(
        [
            buy("t1", at(5), 1000),
            buy("t1", at(4), 1000),
            buy("t2", at(20), 1000),  # before the window
            buy("h1", at(5), 500),
            buy("z", at(5), 500),  # in neither arm
        ],
        ids=["t3", "t4", "h2"],
    )
    lift = an.campaign_lift(
        hist, treatment=["t1", "t2", "t3", "t4"], holdout=["h1", "h2"], start=start, end=end
    )
    assert (lift.treatment.members, lift.treatment.converted, lift.treatment.revenue_fen) == (
        4,
        1,
        2000,
    )
    assert (lift.holdout.members, lift.holdout.converted, lift.holdout.revenue_fen) == (2, 1, 500)
    assert lift.uplift == pytest.approx(-0.25)
    assert lift.relative_uplift == pytest.approx(-0.5)
    assert lift.incremental_revenue_fen == pytest.approx(1000.0)  # (500 - 250) * 4
    with pytest.raises(UsageError, match="both"):
        an.campaign_lift(hist, treatment=["t1"], holdout=["t1"], start=start, end=end)


# --------------------------------------------------------------------------- cohorts


def cohort_history() -> list[tuple[Member, list[Event]]]:
    d = lambda y, m, day: dt.datetime(y, m, day, 9, tzinfo=dt.UTC)  # noqa: E731
    return history(
        [
            ev("c1", "follow", d(2026, 2, 10)),
            ev("c1", "menu_click", d(2026, 2, 17), key="A"),
            ev("c2", "follow", d(2026, 2, 11)),
            ev("c2", "view", d(2026, 2, 25), url="/x"),
            ev("c3", "follow", d(2026, 2, 24)),
            ev("c4", "view", d(2026, 2, 24), url="/x"),  # never followed
        ]
    )


def test_cohorts_weekly_triangle() -> None:
    """AS_OF (Sunday 2026-03-01) is in the week starting Monday 2026-02-23."""
    result = an.cohorts(cohort_history(), as_of=AS_OF, period="week")
    got = [(r.start, r.size, r.retained) for r in result.rows]
    assert got == [
        (dt.date(2026, 2, 9), 2, (2, 1, 1)),
        (dt.date(2026, 2, 23), 1, (1,)),
    ]
    assert result.matrix() == ((1.0, 0.5, 0.5), (1.0, None, None))


def test_cohorts_monthly() -> None:
    result = an.cohorts(cohort_history(), as_of=AS_OF, period="month")
    assert [(r.start, r.size, r.retained) for r in result.rows] == [
        (dt.date(2026, 2, 1), 3, (3, 0))
    ]
    with pytest.raises(UsageError, match="period"):
        an.cohorts([], as_of=AS_OF, period="day")


# --------------------------------------------------------------------------- staff


def test_staff_metrics_first_reply_and_contacts() -> None:
    t = dt.datetime(2026, 2, 20, 10, tzinfo=dt.UTC)

    def msg(mid: str, when: dt.datetime, staff: str, direction: str) -> Event:
        return ev(mid, "message", when, channel="wecom", staff=staff, direction=direction)

    events = [
        msg("a", t, "s1", "in"),
        msg("a", t + 5 * M, "s1", "in"),  # still waiting: the clock keeps running
        msg("a", t + 20 * M, "s1", "out"),  # reply after 20 minutes
        msg("a", t + H, "s1", "in"),
        msg("a", t + H + M, "s1", "out"),  # reply after 1 minute
        msg("b", t - H, "s1", "out"),  # nothing to answer
        msg("b", t + 2 * H, "s1", "in"),  # unanswered
        msg("c", t + DAY, "s2", "out"),
        ev("a", "message", t),  # not a WeCom conversation message
        ev("a", "contact_added", t, staff="s1", source="wecom:shop"),
        ev("b", "contact_added", t, staff="s1"),
        ev("a", "contact_deleted", t + DAY, staff="s1", by="customer"),
        ev("b", "contact_deleted", t + DAY, staff="s1", by="staff"),
    ]
    result = an.staff_metrics(events, as_of=AS_OF)
    s1 = result.row("s1")
    assert s1 is not None
    assert (s1.messages_in, s1.messages_out, s1.interactions, s1.active_days) == (4, 3, 7, 1)
    assert s1.replies == 2
    assert s1.avg_first_reply_seconds == pytest.approx(630.0)
    assert (s1.customers_added, s1.customers_lost, s1.lost_by_customer, s1.lost_by_staff) == (
        2,
        2,
        1,
        1,
    )
    assert s1.interactions_per_day == 7.0
    s2 = result.row("s2")
    assert s2 is not None
    assert s2.avg_first_reply_seconds is None
    assert result.daily == (("s1", t.date(), 7), ("s2", (t + DAY).date(), 1))


# --------------------------------------------------------------------------- offers


def test_next_offers_first_rule_wins() -> None:
    rules = (
        an.affinity_offer("durian", offer="durian-coupon", at_least=3),
        an.trial_offer("apple", offer="apple-trial"),
        an.membership_offer(offer="membership", member_tag="member"),
    )
    evs = [
        buy("o1", at(30), 1, "durian"),
        buy("o1", at(20), 1, "durian"),
        buy("o1", at(10), 1, "durian"),
        buy("o1", at(9), 1, "apple"),
        buy("o2", at(30), 1, "durian"),
        buy("o2", at(20), 1, "durian"),
        buy("o3", at(5), 1, "apple"),
        buy("o4", at(5), 1, "apple"),
        buy("o5", at(30), 1, "durian"),
        buy("o5", at(20), 1, "durian"),
    ]
    hist = history(evs)
    hist = [(m.with_tags("member") if m.id in ("o4", "o5") else m, e) for m, e in hist]
    result = an.recommend(rules, hist, as_of=AS_OF)
    assert result.recommendations == (
        ("o1", "durian-coupon"),
        ("o2", "membership"),
        ("o3", "apple-trial"),
        ("o4", "apple-trial"),
    )
    assert result.counts() == {"durian-coupon": 1, "apple-trial": 2, "membership": 1}
    assert result.offer_for("o5") is None
    # the same answer from per-rule selections (what a store computes)
    sel = [[m.id for m, e in hist if compile_predicate(r.segment, AS_OF)(m, e)] for r in rules]
    assert an.offers_from_selections(rules, sel, as_of=AS_OF) == result
    assert an.category_affinity(evs, as_of=AS_OF)[0] == ("durian", 7)


def test_offer_rule_needs_segment() -> None:
    with pytest.raises(UsageError, match="Segment"):
        an.OfferRule("x", "not a segment")  # type: ignore[arg-type]
    assert an.OfferRule("x", tag("vip")).offer == "x"


def test_tables_and_html() -> None:
    """Every result has a table face and an HTML repr."""
    hist = funnel_history()
    results = [
        an.rfm(hist, as_of=AS_OF),
        an.activity_counts([m for m, _ in hist], as_of=AS_OF, by="source"),
        an.funnel(FUNNEL, hist, as_of=AS_OF),
        an.paths(paths_history(), as_of=AS_OF),
        an.attribution(hist, as_of=AS_OF),
        an.cohorts(cohort_history(), as_of=AS_OF),
        an.staff_metrics([e for _, es in hist for e in es], as_of=AS_OF),
        an.recommend([an.trial_offer("apple", offer="t")], hist, as_of=AS_OF),
    ]
    for r in results:
        html = r._repr_html_()
        assert "<table" in html
        t = r.table()
        assert all(len(row) == len(t.columns) for row in t.rows)

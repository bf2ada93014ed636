"""Small fixed histories (hand-computed expectations live in the tests) and a hypothesis
strategy for analytics-rich random histories."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from membermkt import Event, Member, fold

AS_OF = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def at(days_before: float, hours: float = 0) -> dt.datetime:
    """``AS_OF`` minus days (plus hours)."""
    return AS_OF - days_before * DAY + dt.timedelta(hours=hours)


def ev(mid: str, etype: str, when: dt.datetime, **props: Any) -> Event:
    return Event(mid, etype, when, props)


def buy(mid: str, when: dt.datetime, fen: int, category: str = "apple") -> Event:
    return ev(
        mid,
        "purchase",
        when,
        order_id=f"{mid}-{when:%Y%m%d%H%M}",
        amount_fen=fen,
        category=category,
    )


def history(events: list[Event], ids: list[str] | None = None) -> list[tuple[Member, list[Event]]]:
    """(member, events) pairs, members folded from their events, sorted by id."""
    by: dict[str, list[Event]] = {i: [] for i in ids or []}
    for e in events:
        by.setdefault(e.member_id, []).append(e)
    return [(fold(Member(i), es), es) for i, es in sorted(by.items())]


# --------------------------------------------------------------------------- random

IDS = tuple(f"m{i:02d}" for i in range(30))
SOURCES = ("qr:parcel", "qr:store", "wecom:shop", "platform")
CATEGORIES = ("durian", "apple", "cherry")
MENUS = ("A", "B", "C")
URLS = ("/a", "/b")
STAFF = ("s1", "s2")
MINUTES = (0, 1, 5, 20, 40, 90, 60 * 24, 60 * 24 * 3, 60 * 24 * 10, 60 * 24 * 40, 60 * 24 * 100)


@st.composite
def _event(draw: st.DrawFn, ids: tuple[str, ...]) -> Event:
    mid = draw(st.sampled_from(ids))
    # times on a grid before AS_OF (a few after it), many equal: ties happen
    minutes = draw(st.sampled_from(MINUTES)) + draw(st.sampled_from((0, 0, 3, 7)))
    when = (
        AS_OF - dt.timedelta(minutes=minutes) + draw(st.sampled_from([dt.timedelta(0)] * 9 + [DAY]))
    )
    etype = draw(
        st.sampled_from(
            (
                "follow",
                "unfollow",
                "scan",
                "menu_click",
                "view",
                "message",
                "purchase",
                "purchase",
                "redpacket_claim",
                "contact_added",
                "contact_deleted",
                "menu_click",
            )
        )
    )
    props: dict[str, Any] = {}
    if etype in ("follow", "scan", "contact_added"):
        if draw(st.booleans()):
            props["source"] = draw(st.sampled_from(SOURCES))
        if etype == "contact_added":
            props["staff"] = draw(st.sampled_from(STAFF))
    elif etype == "contact_deleted":
        props = {
            "staff": draw(st.sampled_from(STAFF)),
            "by": draw(st.sampled_from(("customer", "staff"))),
        }
    elif etype == "menu_click":
        props = {"key": draw(st.sampled_from(MENUS))}
    elif etype == "view":
        props = {"url": draw(st.sampled_from(URLS))}
        if draw(st.booleans()):
            props["dwell_seconds"] = draw(st.sampled_from((0, 3, 12, 45, 700)))
    elif etype == "purchase":
        props = {
            "order_id": draw(st.sampled_from(("o1", "o2", "o3"))),
            "amount_fen": draw(st.sampled_from((0, 990, 1990, 10000))),
            "category": draw(st.sampled_from(CATEGORIES)),
        }
    elif etype == "message" and draw(st.booleans()):
        props = {
            "channel": "wecom",
            "staff": draw(st.sampled_from(STAFF)),
            "direction": draw(st.sampled_from(("in", "out"))),
        }
    return Event(mid, etype, when, props)


@st.composite
def histories(
    draw: st.DrawFn, max_members: int = 12, max_events: int = 60
) -> list[tuple[Member, list[Event]]]:
    """Random (member, events) pairs: members folded from their events (some have none)."""
    ids = tuple(sorted(draw(st.sets(st.sampled_from(IDS), min_size=1, max_size=max_members))))
    events = draw(st.lists(_event(ids), max_size=max_events))
    # browsing sessions: a few menu clicks / page views minutes apart (ties sometimes)
    for _ in range(draw(st.integers(0, 2))):
        mid = draw(st.sampled_from(ids))
        t0 = AS_OF - dt.timedelta(minutes=draw(st.sampled_from(MINUTES)))
        for step in range(draw(st.integers(2, 4))):
            at = t0 + dt.timedelta(minutes=step * draw(st.sampled_from((0, 1, 2))))
            if draw(st.booleans()):
                events.append(Event(mid, "menu_click", at, {"key": draw(st.sampled_from(MENUS))}))
            else:
                events.append(
                    Event(mid, "view", at, {"url": draw(st.sampled_from(URLS)), "dwell_seconds": 9})
                )
    # WeCom conversations: a customer writes (maybe twice), staff answer (maybe)
    for _ in range(draw(st.integers(0, 3))):
        mid, staff = draw(st.sampled_from(ids)), draw(st.sampled_from(STAFF))
        t0 = AS_OF - dt.timedelta(minutes=draw(st.sampled_from(MINUTES)))
        msgs = [
            ("in", 0),
            *draw(st.lists(st.sampled_from([("in", 2), ("out", 5), ("out", 0)]), max_size=3)),
        ]
        events.extend(
            Event(
                mid,
                "message",
                t0 + dt.timedelta(minutes=m),
                {"channel": "wecom", "staff": staff, "direction": d},
            )
            for d, m in msgs
        )
    tags = {i: draw(st.sampled_from((frozenset(), frozenset({"member"})))) for i in ids}
    by: dict[str, list[Event]] = {i: [] for i in ids}
    for e in events:
        by[e.member_id].append(e)
    return [(fold(Member(i, tags=tags[i]), es), es) for i, es in sorted(by.items())]

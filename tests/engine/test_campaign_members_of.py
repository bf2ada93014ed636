"""``members_of`` hands the plan what it needs to take the audience as of ``as_of``: a member
whose stored derived fields are newer than ``as_of`` comes with its events, so the plan's
predicate refolds it and agrees with the store's ``select``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.segments import attr
from membermkt.engine.campaigns import members_of, simulate
from membermkt.stores import InMemoryStore
from membermkt.stores.sql import SqlStore

AS_OF = dt.datetime(2026, 6, 30, 12, tzinfo=dt.UTC)


def _purchase(mid: str, at: dt.datetime, n: int) -> Event:
    return Event(
        mid, "purchase", at, {"order_id": f"{mid}-{n}", "amount_fen": 1000}, key=f"{mid}-{n}"
    )


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_buyers_with_later_events_stay_in_the_planned_audience(
    backend: str, tmp_path: Path
) -> None:
    store: InMemoryStore | SqlStore = (
        InMemoryStore() if backend == "memory" else SqlStore(f"sqlite:///{tmp_path / 'm.db'}")
    )
    try:
        store.upsert_members([Member(f"m{i}") for i in range(4)])
        day = dt.timedelta(days=1)
        store.append_events(
            [
                _purchase("m0", AS_OF - day, 1),  # bought before, nothing after
                _purchase("m1", AS_OF - day, 1),  # bought before and after as_of
                _purchase("m1", AS_OF + day, 2),
                _purchase("m2", AS_OF + day, 1),  # bought only after as_of
            ]
        )
        c = Campaign(
            id="buyers",
            audience=attr("orders_count") >= 1,
            channel="wechat.mass",
            variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "x"}}),),
            address_namespace="wx",
        )
        assert sorted(store.select(c.audience, AS_OF)) == ["m0", "m1"]
        sim = simulate(c, members_of(store, c, AS_OF), None, AS_OF)
        assert sim.summary.audience == 2
        assert sorted(d.member_id for d in sim.deliveries) + sorted(
            s.member_id for s in sim.skips
        ) == ["m0", "m1"]
    finally:
        if isinstance(store, SqlStore):
            store.close()

"""The durable journey engine on the in-memory store and on SQL (SQLite always, PostgreSQL
and MariaDB when configured): timers by due time, effects through the ledger once,
goal exits, version migration, tags and coupons as ledger effects."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt import Identity, Member
from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.core.events import Event
from membermkt.core.journeys import (
    EventTrigger,
    Goal,
    Grant,
    Journey,
    Send,
    Tag,
    Wait,
    effect_key,
)
from membermkt.engine.journeys import (
    InMemoryJourneyProgress,
    JourneyEngine,
    SqlJourneyProgress,
    campaign_id_for,
)
from membermkt.engine.runner import DeliveryRetry
from membermkt.errors import JourneyError
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
URLS = {
    "postgresql": os.environ.get("MEMBERMKT_TEST_POSTGRES_URL"),
    "mysql": os.environ.get("MEMBERMKT_TEST_MYSQL_URL"),
}


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.t = now

    def now(self) -> dt.datetime:
        return self.t


class Recorder:
    """A channel that records what it was asked to send (counted per key)."""

    def __init__(self, name: str = "sms.test") -> None:
        self.name = name
        self.capabilities = ChannelCapabilities(max_batch_size=50, address_kind="phone")
        self.got: dict[str, int] = {}
        self.payloads: dict[str, Any] = {}

    def send(self, batch: list[Delivery]) -> list[SendResult]:
        for d in batch:
            self.got[d.key] = self.got.get(d.key, 0) + 1
            self.payloads[d.key] = dict(d.payload)
        return [SendResult(key=d.key, outcome=SendOutcome.SENT) for d in batch]


def welcome(version: int = 1, **kw: Any) -> Journey:
    return Journey(
        id="welcome",
        version=version,
        trigger=EventTrigger("follow"),
        steps=[
            Send("hello", "sms.test", {"default": {"text": "welcome"}}, next="wait3"),
            Wait("wait3", 3 * 86400, next="coupon"),
            Send("coupon", "sms.test", {"default": {"text": "coupon"}}, next="tagged"),
            Tag("tagged", "welcomed"),
        ],
        goal=Goal("purchase"),
        **kw,
    )


@pytest.fixture(params=["memory", "sqlite", "postgresql", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    kind = request.param
    if kind == "memory":
        s = InMemoryStore()
        yield s, InMemoryJourneyProgress()
        return
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'j.db'}"
    else:
        url = URLS[kind]  # type: ignore[assignment]
        if not url:
            pytest.skip(
                f"MEMBERMKT_TEST_{'POSTGRES' if kind == 'postgresql' else 'MYSQL'}_URL not set"
            )
    store = SqlStore(url, table_prefix=f"jy{uuid.uuid4().hex[:8]}_", phones=TEST_PHONES)
    progress = SqlJourneyProgress(store)
    try:
        yield store, progress
    finally:
        progress.drop_tables()
        store.drop_tables()
        store.close()


def _members(store: Any, n: int) -> None:
    store.upsert_members(
        Member(f"m{i}", identities=[TEST_PHONES.identity(f"138{i:08d}")]) for i in range(n)
    )


def _run(engine: JourneyEngine, now: dt.datetime) -> None:
    engine.run_due(now=now)
    engine.dispatch(clock=FakeClock(now), retry=DeliveryRetry(attempts=2, backoff=0.0))


def test_welcome_wait_coupon_goal(backend: tuple[Any, Any]) -> None:
    store, progress = backend
    ch = Recorder()
    engine = JourneyEngine(store, progress, [welcome()], channels=[ch])
    _members(store, 6)
    follows = [Event(f"m{i}", "follow", T0, key=f"f{i}") for i in range(6)]
    store.append_events(follows)
    engine.observe(follows, now=T0)
    _run(engine, T0 + dt.timedelta(minutes=1))
    assert sorted(ch.got) == sorted(effect_key("welcome", 1, f"m{i}", "hello", 0) for i in range(6))
    # nothing is due before the timer; re-running changes nothing
    assert progress.due_count(T0 + 2 * DAY) == 0
    _run(engine, T0 + 2 * DAY)
    assert len(ch.got) == 6
    buys = [Event("m0", "purchase", T0 + DAY, {"amount_fen": 500}, key="p0")]
    store.append_events(buys)
    engine.observe(buys, now=T0 + DAY)
    _run(engine, T0 + 3 * DAY + dt.timedelta(minutes=1))
    coupon = {k for k in ch.got if ":coupon:" in k}
    assert coupon == {effect_key("welcome", 1, f"m{i}", "coupon", 0) for i in range(1, 6)}
    assert all(v == 1 for v in ch.got.values())
    # tags went through the ledger too
    assert "welcomed" in store.get_member("m1").tags
    assert "welcomed" not in store.get_member("m0").tags
    counts = store.status_counts(campaign_id_for("welcome"))
    assert counts.get("sent") == 6 + 5 + 5
    by_status = {e.member_id: e.state.status for e in progress.entries("welcome")}
    assert by_status["m0"] == "goal"
    assert by_status["m1"] == "completed"
    rep = engine.report("welcome")
    assert dict(rep.ended) == {"goal": 1, "completed": 5}
    assert rep.time_to_goal == (1, 86400.0, 86400.0)
    # a second pass over everything (a crashed worker's retry) plans nothing new
    for i in range(6):
        progress.wake("welcome", [f"m{i}"], at=T0 + 4 * DAY, version=1)
    r = engine.run_due(now=T0 + 4 * DAY)
    assert r.processed == 6
    assert r.planned == 0


def test_version_pinning_and_migration(backend: tuple[Any, Any]) -> None:
    store, progress = backend
    ch = Recorder()
    engine = JourneyEngine(store, progress, [welcome()], channels=[ch])
    _members(store, 2)
    follows = [Event(f"m{i}", "follow", T0, key=f"f{i}") for i in range(2)]
    store.append_events(follows)
    engine.observe(follows, now=T0)
    _run(engine, T0 + dt.timedelta(minutes=1))
    # v2 shortens the wait and renames the coupon step; m0 is migrated, pinned otherwise
    v2 = Journey(
        id="welcome",
        version=2,
        trigger=EventTrigger("follow"),
        steps=[
            Send("hello", "sms.test", {"default": {"text": "welcome v2"}}, next="wait1"),
            Wait("wait1", 86400, next="coupon2"),
            Send("coupon2", "sms.test", {"default": {"text": "coupon v2"}}),
        ],
        goal=Goal("purchase"),
        migrations={1: {"wait3": "wait1"}},
    )
    engine.add(v2)
    progress.wake("welcome", ["m0", "m1"], at=T0 + DAY, version=2)
    _run(engine, T0 + DAY)
    row = progress.get("welcome", "m0")
    assert [e.version for e in row.epochs] == [1, 2]
    assert row.due_at == T0 + 2 * DAY  # the mapped wait starts afresh at the migration
    _run(engine, T0 + 2 * DAY)
    keys = set(ch.got)
    assert effect_key("welcome", 2, "m0", "coupon2", 0) in keys
    assert effect_key("welcome", 1, "m0", "coupon", 0) not in keys
    assert effect_key("welcome", 2, "m0", "hello", 0) not in keys  # not repeated
    assert all(v == 1 for v in ch.got.values())


def test_unregistered_channel_is_refused() -> None:
    store = InMemoryStore()
    engine = JourneyEngine(store, InMemoryJourneyProgress(), [welcome()])
    _members(store, 1)
    ev = Event("m0", "follow", T0)
    store.append_events([ev])
    engine.observe([ev], now=T0)
    with pytest.raises(JourneyError, match=r"channel 'sms\.test'"):
        engine.tick(now=T0)


def test_grant_without_address_waits_for_one() -> None:
    store = InMemoryStore()
    ch = Recorder()
    grant = Recorder("journey.grant")
    grant.capabilities = ChannelCapabilities(max_batch_size=5, address_kind="openid")
    j = Journey(id="g", version=1, trigger=EventTrigger("follow"), steps=[Grant("c", "stock-1")])
    engine = JourneyEngine(store, InMemoryJourneyProgress(), [j], channels=[ch, grant])
    store.upsert_members([Member("m0")])
    ev = Event("m0", "follow", T0)
    store.append_events([ev])
    engine.observe([ev], now=T0)
    r = engine.tick(now=T0)
    assert (r.planned, r.no_address) == (0, 1)
    store.upsert_members([Member("m0", identities=[Identity("openid", "o-1", "wx1")])])
    r = engine.tick(now=T0 + dt.timedelta(hours=1))
    assert r.planned == 1
    engine.dispatch(clock=FakeClock(T0))
    assert grant.payloads[effect_key("g", 1, "m0", "c", 0)]["benefit"] == "stock-1"


@settings(max_examples=25, deadline=None)
@given(
    ticks=st.lists(st.integers(min_value=0, max_value=10 * 24), min_size=1, max_size=8),
    buys=st.lists(st.integers(min_value=0, max_value=5), max_size=4),
    dup=st.booleans(),
)
def test_any_tick_schedule_sends_each_effect_once(ticks, buys, dup) -> None:  # type: ignore[no-untyped-def]
    """Whatever the times the engine runs at (in any order of arrival of events, with
    duplicates), each effect is sent once and the result equals the pure replay."""
    from membermkt.core.journeys import replay

    store = InMemoryStore()
    ch = Recorder()
    engine = JourneyEngine(store, InMemoryJourneyProgress(), [welcome()], channels=[ch])
    _members(store, 6)
    follows = [Event(f"m{i}", "follow", T0, key=f"f{i}") for i in range(6)]
    purchases = [
        Event(f"m{i}", "purchase", T0 + dt.timedelta(days=1), {"amount_fen": 1}, key=f"p{i}")
        for i in buys
    ]
    for batch in ([*purchases, *follows], follows if dup else []):
        store.append_events(batch)
        engine.observe(batch, now=T0)
    end = T0
    for h in sorted(ticks):
        end = T0 + dt.timedelta(hours=h)
        _run(engine, end)
    assert all(n == 1 for n in ch.got.values())
    expected = set()
    for i in range(6):
        m = store.get_member(f"m{i}")
        r = replay(welcome(), m, store.events_for(m.id, until=end), end)
        expected |= {e.key for e in r.effects if e.channel == "sms.test"}
    assert set(ch.got) == expected

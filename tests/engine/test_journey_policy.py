"""Journey sends are re-checked at hand-off (#12 item 5), on the in-memory store and on SQL
(SQLite always, PostgreSQL when configured): an opt-out recorded between planning (tick)
and hand-off (dispatch) is skipped, as are sends inside quiet hours in the member's zone and
sends over a frequency cap — counting the journey's own earlier sends — and no "runs without
a hand-off policy" warning is logged."""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from membermkt import Consent, Member
from membermkt.core.campaigns import QuietHours
from membermkt.core.delivery import (
    ChannelCapabilities,
    Delivery,
    DeliveryStatus,
    SendOutcome,
    SendResult,
)
from membermkt.core.events import Event
from membermkt.core.journeys import EventTrigger, Journey, Reentry, Send, Tag
from membermkt.core.quotas import Cap
from membermkt.engine.journeys import (
    InMemoryJourneyProgress,
    JourneyEngine,
    JourneyPolicy,
    SqlJourneyProgress,
    campaign_id_for,
)
from membermkt.engine.runner import NO_HANDOFF_CHECKS, DeliveryRetry, RunResult
from membermkt.errors import UsageError
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.t = now

    def now(self) -> dt.datetime:
        return self.t


class Recorder:
    """A phone-addressed channel that counts, on its own side, each key it is handed."""

    name = "sms.test"

    def __init__(self) -> None:
        self.capabilities = ChannelCapabilities(max_batch_size=50, address_kind="phone")
        self.got: dict[str, int] = {}

    def send(self, batch: list[Delivery]) -> list[SendResult]:
        for d in batch:
            self.got[d.key] = self.got.get(d.key, 0) + 1
        return [SendResult(key=d.key, outcome=SendOutcome.SENT) for d in batch]


T0 = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)  # 12:00 in Beijing, 04:00 in London
CID = campaign_id_for("hello")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    kind = request.param
    if kind == "memory":
        yield InMemoryStore(), InMemoryJourneyProgress()
        return
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'jp.db'}"
    else:
        url = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL", "")
        if not url:
            pytest.skip("MEMBERMKT_TEST_POSTGRES_URL not set")
    store = SqlStore(url, table_prefix=f"jp{uuid.uuid4().hex[:8]}_", phones=TEST_PHONES)
    progress = SqlJourneyProgress(store)
    try:
        yield store, progress
    finally:
        progress.drop_tables()
        store.drop_tables()
        store.close()


def hello(*steps: Any, **kw: Any) -> Journey:
    return Journey(
        id="hello",
        version=1,
        trigger=EventTrigger("follow"),
        steps=steps
        or [
            Send("hi", "sms.test", {"default": {"text": "hi"}}, next="tagged"),
            Tag("tagged", "greeted"),
        ],
        **kw,
    )


def _people(n: int) -> list[Member]:
    return [Member(f"m{i}", identities=[TEST_PHONES.identity(f"139{i:08d}")]) for i in range(n)]


def _follow(engine: JourneyEngine, ids: list[str], at: dt.datetime, tag: str = "") -> None:
    evs = [Event(m, "follow", at, key=f"f:{m}:{tag}{at.isoformat()}") for m in ids]
    engine.store.append_events(evs)
    engine.observe(evs, now=at)


def _by_channel(results: list[RunResult], engine: JourneyEngine) -> dict[str, RunResult]:
    names = list(engine.channels)
    return dict(zip(names, results, strict=True))


def _no_policy_warning(caplog: pytest.LogCaptureFixture) -> None:
    texts = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [t for t in texts if "hand-off policy" in t], texts


def test_opt_out_between_planning_and_hand_off_is_skipped(
    backend: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Rule: a member who opts out (of marketing, or of the step's channel) after the
    journey planned their send gets nothing: the delivery ends skipped("no_consent"), the
    channel never sees it, the others are sent; no policy warning."""
    store, progress = backend
    ch = Recorder()
    engine = JourneyEngine(store, progress, [hello()], channels=[ch])
    people = _people(4)
    store.upsert_members(people)
    _follow(engine, [p.id for p in people], T0)
    assert engine.run_due(now=T0).planned == 8  # a send and a tag each
    # between planning and hand-off: m1 refuses marketing, m2 refuses this channel
    store.upsert_members(
        [
            attrs.evolve(people[1], consent=Consent(marketing=False)),
            attrs.evolve(people[2], consent=Consent(opted_out_channels={"sms.test"})),
        ]
    )
    caplog.set_level(logging.WARNING)
    results = engine.dispatch(clock=FakeClock(T0 + dt.timedelta(minutes=5)))
    _no_policy_warning(caplog)
    sms = _by_channel(results, engine)["sms.test"]
    assert sms.policy_checked
    assert (sms.sent, sms.skipped) == (2, 2)
    assert sms.skips == {"no_consent": 2}
    recs = {
        r.delivery.member_id: r for r in store.deliveries(CID) if r.delivery.channel == "sms.test"
    }
    assert {m for m, r in recs.items() if r.status is DeliveryStatus.SENT} == {"m0", "m3"}
    for m in ("m1", "m2"):
        assert recs[m].status is DeliveryStatus.SKIPPED
        assert recs[m].reason == "no_consent"
        assert recs[m].key not in ch.got, "the channel never saw the opted-out member"
    assert sum(ch.got.values()) == 2
    # tags change the store only: not re-checked, still applied
    tag = _by_channel(results, engine)["journey.tag"]
    assert tag.sent == 4
    # a later dispatch sends nothing more (skipped is final)
    again = engine.dispatch(clock=FakeClock(T0 + dt.timedelta(hours=1)))
    assert sum(r.sent for r in again) == 0
    assert sum(ch.got.values()) == 2


def test_quiet_hours_in_the_members_zone_at_hand_off(
    backend: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Rule: a send planned at noon and handed off at 23:30 Beijing time is skipped
    ("quiet_hours") for members in Beijing; a member whose own zone (London, 15:30) is
    outside the quiet period is sent."""
    store, progress = backend
    ch = Recorder()
    quiet = QuietHours(start=dt.time(22), end=dt.time(8))
    engine = JourneyEngine(store, progress, [hello()], channels=[ch], quiet_hours=quiet)
    people = _people(3)
    people[2] = attrs.evolve(people[2], attributes={"timezone": "Europe/London"})
    store.upsert_members(people)
    _follow(engine, [p.id for p in people], T0)
    engine.run_due(now=T0)
    late = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)  # 23:30 Beijing, 15:30 London
    caplog.set_level(logging.WARNING)
    sms = _by_channel(engine.dispatch(clock=FakeClock(late)), engine)["sms.test"]
    _no_policy_warning(caplog)
    assert sms.sent == 1
    assert sms.skips == {"quiet_hours": 2}
    sent = [
        r.delivery.member_id
        for r in store.deliveries(CID)
        if r.status is DeliveryStatus.SENT and r.delivery.channel == "sms.test"
    ]
    assert sent == ["m2"]


def test_caps_count_the_journeys_own_earlier_sends(backend: tuple[Any, Any]) -> None:
    """Rule: a journey sends to a member more than once; a cap of 2 sends a day counts the
    journey's own earlier sends (the same ledger campaign) and the same batch: a member who
    re-enters three times the same day gets two messages, the third is
    skipped("frequency_cap:...")."""
    store, progress = backend
    ch = Recorder()
    j = hello(
        Send("hi", "sms.test", {"default": {"text": "hi"}}),
        reentry=Reentry(mode="always"),
    )
    cap = Cap(limit=2, period="day", name="2/day")
    engine = JourneyEngine(store, progress, [j], channels=[ch], caps=[cap])
    store.upsert_members(_people(1))
    for k in range(3):  # three entries planned in one tick: one batch at hand-off
        _follow(engine, ["m0"], T0 + dt.timedelta(minutes=k))
    engine.run_due(now=T0 + dt.timedelta(minutes=5))
    first = _by_channel(engine.dispatch(clock=FakeClock(T0 + dt.timedelta(minutes=6))), engine)
    assert first["sms.test"].sent == 2
    assert first["sms.test"].skips == {"frequency_cap:2/day": 1}
    # the next day's entry: the cap window moved on
    _follow(engine, ["m0"], T0 + dt.timedelta(days=1), tag="d1")
    engine.run_due(now=T0 + dt.timedelta(days=1))
    nxt = _by_channel(engine.dispatch(clock=FakeClock(T0 + dt.timedelta(days=1))), engine)
    assert nxt["sms.test"].sent == 1
    assert sum(ch.got.values()) == 3
    assert all(n == 1 for n in ch.got.values()), "nothing sent twice"


def test_a_policy_override_and_the_policy_of_each_channel() -> None:
    """Rule: ``dispatch(policy=...)`` replaces the journeys' policy (NO_HANDOFF_CHECKS: the
    opt-out is not re-checked, on purpose, and without a warning); ``policy_for`` gives a
    JourneyPolicy for addressed channels and no checks for the built-in tags."""
    store = InMemoryStore()
    ch = Recorder()
    engine = JourneyEngine(store, InMemoryJourneyProgress(), [hello()], channels=[ch])
    assert isinstance(engine.policy_for("hello", ch), JourneyPolicy)
    assert engine.policy_for("hello", engine.channels["journey.tag"]) is NO_HANDOFF_CHECKS
    people = _people(2)
    store.upsert_members(people)
    _follow(engine, ["m0", "m1"], T0)
    engine.run_due(now=T0)
    store.upsert_members([attrs.evolve(people[1], consent=Consent(marketing=False))])
    res = engine.dispatch(
        clock=FakeClock(T0), policy=NO_HANDOFF_CHECKS, retry=DeliveryRetry(attempts=1)
    )
    sms = _by_channel(res, engine)["sms.test"]
    assert (sms.sent, sms.skipped, sms.policy_checked) == (2, 0, False)


def test_bad_rules_are_refused() -> None:
    with pytest.raises(UsageError, match="QuietHours"):
        JourneyEngine(InMemoryStore(), InMemoryJourneyProgress(), quiet_hours="22-08")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Cap"):
        JourneyEngine(InMemoryStore(), InMemoryJourneyProgress(), caps=["2/day"])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="account type"):
        JourneyEngine(InMemoryStore(), InMemoryJourneyProgress(), account_type="enterprise")

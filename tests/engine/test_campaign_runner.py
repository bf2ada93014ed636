"""The campaign runner over the in-memory ledger: outcomes, retries, recovery, exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt import Event, Identity, Member, MemberState
from membermkt.core.campaigns import Campaign, Variant, delivery_key
from membermkt.core.delivery import (
    ChannelCapabilities,
    Delivery,
    DeliveryStatus,
    SendOutcome,
    SendResult,
)
from membermkt.engine.campaigns import (
    CampaignReport,
    CampaignRunner,
    DeliveryRetry,
    Progress,
    history_from_ledger,
    members_of,
    prepare,
    simulate,
    tqdm_progress,
)
from membermkt.errors import ConfigError, TransportError, UsageError
from membermkt.segments import TRUE
from membermkt.stores import InMemoryStore
from membermkt.testing.capture import RecordingChannel, capture_sends

SH = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 3, 10, 12, tzinfo=SH)
CHANNEL = "test.recording"


async def no_sleep(seconds: float) -> None:
    """Backoff waits are recorded, never slept (no timed behaviour in tests)."""


def members(n: int) -> list[Member]:
    return [
        Member(
            f"m{i:05d}",
            identities=[Identity("openid", f"o{i}", "wx")],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    ]


def campaign(cid: str = "c1", *, holdout: float = 0.0, variants: int = 1) -> Campaign:
    return Campaign(
        id=cid,
        audience=TRUE,
        channel=CHANNEL,
        variants=tuple(Variant(name=n, content={"text": "hi {{ id }}"}) for n in "AB"[:variants]),
        holdout=holdout,
        address_namespace="wx",
    )


def planned_store(n: int, **kw: object) -> tuple[InMemoryStore, Campaign]:
    store = InMemoryStore()
    c = campaign(**kw)  # type: ignore[arg-type]
    prepare(store, c, members(n), None, AS_OF)
    return store, c


def runner(store: InMemoryStore, channel: RecordingChannel, **kw: object) -> CampaignRunner:
    kw.setdefault("sleep", no_sleep)
    return CampaignRunner(store, channel, **kw)  # type: ignore[arg-type]


def test_every_delivery_is_sent_once_in_batches_within_the_limit() -> None:
    """Rule: a run sends each planned delivery once, never exceeding the batch limit."""
    store, c = planned_store(1050)
    ch = RecordingChannel(capabilities=ChannelCapabilities(max_batch_size=100))
    seen: list[Progress] = []
    result = runner(store, ch, concurrency=4, progress=seen.append).run(c.id)
    assert result.sent == 1050
    assert store.status_counts(c.id)["sent"] == 1050
    assert set(ch.received.values()) == {1}
    assert max(ch.batches) <= 100
    assert seen[-1].finished
    assert seen[-1].done == seen[-1].total == 1050
    # a second run has nothing left to do
    assert runner(store, ch).run(c.id).claimed == 0


async def test_async_run_and_sync_channel_in_threads() -> None:
    """Rule: arun() works from async code; sync channels are driven from worker threads."""
    store, c = planned_store(300)
    ch = RecordingChannel(capabilities=ChannelCapabilities(max_batch_size=7))
    result = await runner(store, ch, concurrency=8).arun(c.id)
    assert result.sent == 300
    assert max(ch.batches) <= 7
    with pytest.raises(UsageError, match="event loop"):
        runner(store, ch).run(c.id)


async def test_async_channel() -> None:
    """Rule: an AsyncChannel is awaited directly."""

    class Async:
        name = CHANNEL
        capabilities = ChannelCapabilities(max_batch_size=10)

        def __init__(self) -> None:
            self.keys: list[str] = []

        async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
            await asyncio.sleep(0)
            self.keys.extend(d.key for d in batch)
            return [SendResult(key=d.key, outcome=SendOutcome.SENT) for d in batch]

    store, c = planned_store(55)
    ch = Async()
    result = await CampaignRunner(store, ch, sleep=no_sleep).arun(c.id)
    assert result.sent == 55
    assert len(ch.keys) == len(set(ch.keys)) == 55


def test_outcomes_are_classified_and_retried() -> None:
    """Rule: retryable → retried then sent; permanent → failed(reason); exhausted → failed."""
    store, c = planned_store(30)
    keys = sorted(d.key for d in (r.delivery for r in store.deliveries(c.id)))
    flaky, dead, hopeless = set(keys[:10]), set(keys[10:15]), set(keys[15:18])

    def script(d: Delivery, attempt: int) -> SendOutcome | SendResult | None:
        if d.key in dead:
            return SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="errcode:43004")
        if d.key in hopeless:
            return SendOutcome.RETRYABLE
        if d.key in flaky and attempt < 3:
            return SendResult(key=d.key, outcome=SendOutcome.RETRYABLE, retry_after=2.0)
        return None

    ch = RecordingChannel(script=script)
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    # one batch of 30 (a non-idempotent channel is handed one delivery at a time by default)
    result = runner(store, ch, sleep=sleep, retry=DeliveryRetry(attempts=4), batch_size=30).run(
        c.id
    )
    counts = store.status_counts(c.id)
    assert counts["sent"] == 22
    assert counts["failed"] == 8
    reasons = {r.key: r.reason for r in store.deliveries(c.id, status=DeliveryStatus.FAILED)}
    assert {reasons[k] for k in dead} == {"errcode:43004"}
    assert all(reasons[k].startswith("retries exhausted") for k in hopeless)
    assert all(ch.attempts[k] == 4 for k in hopeless)
    assert all(ch.attempts[k] == 3 for k in flaky)
    assert min(waits) >= 2.0, "retry_after hints are honoured"
    assert result.failures["errcode:43004"] == 5


@pytest.mark.parametrize("idempotent", [True, False])
def test_unknown_answers_are_final(idempotent: bool) -> None:
    """Rule: a per-delivery `unknown` is never blindly re-sent (the channel reports it only
    when a re-send could duplicate)."""
    store, c = planned_store(20)

    def script(d: Delivery, attempt: int) -> SendOutcome | None:
        return SendOutcome.UNKNOWN if attempt == 1 else None

    ch = RecordingChannel(
        script=script,
        capabilities=ChannelCapabilities(max_batch_size=5, idempotent=idempotent),
    )
    runner(store, ch).run(c.id)
    assert store.status_counts(c.id)["unknown"] == 20
    assert set(ch.attempts.values()) == {1}
    assert ch.duplicates == 0


@pytest.mark.parametrize("idempotent", [True, False])
def test_missing_results(idempotent: bool) -> None:
    """Rule: a delivery missing from the channel's answer is retried with its key on an
    idempotent channel, reported unknown otherwise."""

    class Forgetful(RecordingChannel):
        def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
            res = super().send(batch)
            return res[:-1] if len(self.batches) == 1 else res

    store, c = planned_store(6)
    ch = Forgetful(capabilities=ChannelCapabilities(max_batch_size=6, idempotent=idempotent))
    runner(store, ch, concurrency=1, batch_size=6).run(c.id)
    counts = store.status_counts(c.id)
    assert counts["sent" if idempotent else "unknown"] == 6
    assert ch.duplicates == 0


@pytest.mark.parametrize("idempotent", [True, False])
def test_batch_level_transport_errors(idempotent: bool) -> None:
    """Rule: a send that raises leaves the batch uncertain: retried (idempotent) or unknown;
    a TransportError(ambiguous=False) is always safe to retry."""

    class Flaky(RecordingChannel):
        calls = 0

        def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
            self.calls += 1
            if self.calls == 1:
                raise TransportError("timeout", ambiguous=True)
            if self.calls == 2:
                raise TransportError("connection refused", ambiguous=False)
            return super().send(batch)

    store, c = planned_store(5)
    ch = Flaky(capabilities=ChannelCapabilities(max_batch_size=5, idempotent=idempotent))
    runner(store, ch, concurrency=1, batch_size=5).run(c.id)
    counts = store.status_counts(c.id)
    assert counts["sent" if idempotent else "unknown"] == 5


def test_long_platform_waits_defer_to_a_later_run() -> None:
    """Rule: a retry_after longer than the policy's max_wait hands deliveries back."""
    store, c = planned_store(10)

    def script(d: Delivery, attempt: int) -> SendResult:
        return SendResult(key=d.key, outcome=SendOutcome.RETRYABLE, retry_after=86_400)

    ch = RecordingChannel(script=script, capabilities=ChannelCapabilities(max_batch_size=10))
    result = runner(store, ch, batch_size=10).run(c.id)
    assert result.deferred == 10
    assert store.status_counts(c.id)["planned"] == 10
    ch.script = None
    assert runner(store, ch).run(c.id).sent == 10


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_dead_runners_deliveries_are_recovered(idempotent: bool) -> None:
    """Rule: `sending` left by a dead runner is re-sent with its key (idempotent) or marked
    unknown (not idempotent) — never sent twice."""
    store, c = planned_store(40)
    ch = RecordingChannel(
        capabilities=ChannelCapabilities(max_batch_size=10, idempotent=idempotent)
    )
    # the dead runner claimed 20 and got 10 of them out before dying
    claimed = store.claim(c.id, worker="dead", limit=20, now=AS_OF)
    ch.send([r.delivery for r in claimed[:10]])
    later = AS_OF + dt.timedelta(hours=1)

    class Clock:
        def now(self) -> dt.datetime:
            return later

    result = runner(store, ch, clock=Clock(), lease=dt.timedelta(minutes=10)).run(c.id)
    counts = store.status_counts(c.id)
    if idempotent:
        assert result.recovered == 20
        assert counts["sent"] == 40
        assert set(ch.received.values()) == {1}
    else:
        assert result.recovered_unknown == 20
        assert counts["unknown"] == 20
        assert counts["sent"] == 20
        assert ch.duplicates == 0


@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(list(SendOutcome)), min_size=1, max_size=6),
    idempotent=st.booleans(),
    crash_after=st.integers(0, 5),
    size=st.integers(1, 7),
)
def test_interleavings_of_failures_and_crashes_never_duplicate(
    outcomes: list[SendOutcome], idempotent: bool, crash_after: int, size: int
) -> None:
    """Rule: random failures, a crash and a resume → every delivery final, none duplicated,
    and every idempotent delivery that could be sent was sent exactly once."""
    store, c = planned_store(23)

    def script(d: Delivery, attempt: int) -> SendOutcome:
        return outcomes[(attempt + int(d.key[:4], 16)) % len(outcomes)]

    ch = RecordingChannel(
        script=script,
        capabilities=ChannelCapabilities(max_batch_size=size, idempotent=idempotent),
    )
    # a runner that "crashes" after a few batches: claims, sends, never marks
    for _ in range(crash_after):
        claimed = store.claim(c.id, worker="doomed", limit=size, now=AS_OF)
        ch.send([r.delivery for r in claimed])
    later = AS_OF + dt.timedelta(hours=1)

    class Clock:
        def now(self) -> dt.datetime:
            return later

    runner(store, ch, clock=Clock(), retry=DeliveryRetry(attempts=8), concurrency=3).run(c.id)
    counts = store.status_counts(c.id)
    assert counts["planned"] == counts["sending"] == 0
    assert ch.duplicates == 0
    assert max(ch.batches) <= size, "batches respect the channel limit"
    for rec in store.deliveries(c.id):
        if rec.status in (DeliveryStatus.SENT, DeliveryStatus.PENDING):
            assert ch.received[rec.key] == 1


def test_capture_sends_records_deliveries() -> None:
    """Rule: capture_sends yields what the channel was asked to send, with results."""
    store, c = planned_store(12)
    ch = RecordingChannel()
    with capture_sends(ch) as sent:
        runner(store, ch).run(c.id)
    assert len(sent) == 12
    assert {s.result.outcome for s in sent if s.result} == {SendOutcome.SENT}
    assert "send" not in vars(ch)


def test_tqdm_adapter_draws_a_bar() -> None:
    """Rule: the tqdm adapter follows the run to its end."""
    store, c = planned_store(50)
    out = io.StringIO()
    runner(store, RecordingChannel(), progress=tqdm_progress(file=out, mininterval=0)).run(c.id)
    assert "50/50" in out.getvalue()


def test_simulation_has_no_side_effects_and_reports_cost() -> None:
    """Rule: simulate() previews who gets what and the quota cost, writing nothing."""
    store = InMemoryStore()
    ms = members(200)
    store.upsert_members(ms)
    c = Campaign(
        id="mass1",
        audience=TRUE,
        channel="wechat.mass",
        variants=(
            Variant(name="A", content={"msgtype": "text", "text": {"content": "x"}}),
            Variant(name="B", content={"msgtype": "text", "text": {"content": "y"}}),
        ),
        holdout=0.1,
        address_namespace="wx",
    )
    sim = simulate(c, members_of(store, c, AS_OF), None, AS_OF, keep=50)
    assert sim.summary.audience == 200
    assert sim.truncated
    assert sum(sim.summary.deliveries.values()) + sim.summary.skipped_by_reason()["holdout"] == 200
    assert sim.quota_cost["A"]["api_calls"] == 1
    assert sim.quota_cost["A"]["wechat mass 4/month"] == sim.summary.deliveries["A"]
    assert store.status_counts("mass1")["planned"] == 0
    df = sim.to_pandas()
    assert set(df["action"]) == {"deliver", "skip"}
    assert "holdout" in sim._repr_html_()


def test_report_per_variant_with_conversions_and_lift() -> None:
    """Rule: the report counts outcomes per variant, attributes conversions in the window,
    and compares with the holdout."""
    store = InMemoryStore()
    c = campaign(holdout=0.2, variants=2)
    summary = prepare(store, c, members(2000), None, AS_OF)
    keys = [r.key for r in store.deliveries(c.id)]
    failing = set(keys[:30])

    def script(d: Delivery, attempt: int) -> SendResult | None:
        if d.key in failing:
            return SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="errcode:48002")
        return None

    class Clock:
        def now(self) -> dt.datetime:
            return AS_OF + dt.timedelta(minutes=5)

    runner(store, RecordingChannel(script=script), clock=Clock()).run(c.id)
    sent = [r for r in store.deliveries(c.id) if r.status is DeliveryStatus.SENT]
    later = AS_OF + dt.timedelta(days=1)
    # variant A converts 30 %, B 10 %, holdout 10 %; one purchase outside the window
    conv = []
    for r in sent:
        bucket = int(r.key[:6], 16) % 10
        if (r.delivery.variant == "A" and bucket < 3) or (r.delivery.variant == "B" and bucket < 1):
            conv.append(Event(r.delivery.member_id, "purchase", later, {"amount_fen": 100}))
    for i, mid in enumerate(sorted(summary.holdout_ids)):
        if i % 10 == 0:
            conv.append(Event(mid, "purchase", later, {"amount_fen": 100}))
    conv.append(Event(sent[0].delivery.member_id, "purchase", AS_OF + dt.timedelta(days=30)))
    report = CampaignReport.build(c, store.deliveries(c.id), summary, conversions=conv)
    a, b, hold = report.group("A"), report.group("B"), report.group("holdout")
    assert a.sent + b.sent == len(sent)
    assert a.failed_total + b.failed_total == 30
    assert hold.members == len(summary.holdout_ids)
    assert abs(hold.members / 2000 - 0.2) < 0.03
    assert a.lift is not None
    assert a.lift_ci is not None
    assert a.lift_ci[0] > 0, "A's lift over the holdout is significant"
    assert b.lift_ci is not None
    assert b.lift_ci[0] < 0 < b.lift_ci[1], "B is indistinguishable from the holdout"
    df = report.to_pandas()
    assert df.loc["A", "failed:errcode:48002"] + df.loc["B", "failed:errcode:48002"] == 30
    assert "lift" in report._repr_html_()


def test_history_from_ledger_feeds_caps_of_the_next_campaign() -> None:
    """Rule: earlier campaigns' sends in the ledger count against the platform quota."""
    store = InMemoryStore()
    ms = members(3)
    for n in range(5):
        c = Campaign(
            id=f"mass{n}",
            audience=TRUE,
            channel="wechat.mass",
            variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "x"}}),),
            address_namespace="wx",
        )
        hist = history_from_ledger(store, [f"mass{i}" for i in range(n)])
        s = prepare(store, c, ms, hist, AS_OF + dt.timedelta(days=n))
        expected = 3 if n < 4 else 0
        assert s.total_deliveries == expected
    assert delivery_key("mass0", "m00000") != delivery_key("mass1", "m00000")


def test_configuration_errors_stop_the_run_and_release_the_batch() -> None:
    """Rule: a channel refusing its configuration (bad key) sent nothing: the run stops with
    the error and the deliveries go back to planned for the next run."""

    class Misconfigured(RecordingChannel):
        def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
            raise ConfigError("bad api key")

    store, c = planned_store(50)
    ch = Misconfigured(capabilities=ChannelCapabilities(max_batch_size=5))
    with pytest.raises(ConfigError):
        runner(store, ch, concurrency=4).run(c.id)
    assert store.status_counts(c.id)["planned"] == 50
    assert runner(store, RecordingChannel()).run(c.id).sent == 50

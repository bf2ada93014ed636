"""Delivery guarantees against the official-account emulator: ambiguity is never reported as
failure, quota exhaustion defers to the platform's daily reset, batches are balanced and
``simulate`` predicts the runner's calls (DESIGN §4.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from membermkt import Identity, Member, MemberState
from membermkt.channels.wechat.channel import WeChatMassChannel
from membermkt.channels.wechat.client import OfficialAccount
from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.delivery import DeliveryStatus
from membermkt.core.quotas import balanced_batches, next_daily_reset
from membermkt.engine.campaigns import (
    CampaignRunner,
    DeliveryRetry,
    members_of,
    prepare,
    simulate,
)
from membermkt.segments import TRUE
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.budget import CallBudget
from membermkt.wire.retry import RetryPolicy

APPID = "wxguarantee0001"
BEIJING = dt.timezone(dt.timedelta(hours=8))
MASS_API = "/cgi-bin/message/mass/send"
T0 = dt.datetime(2026, 3, 10, 4, tzinfo=dt.UTC)  # 12:00 in Beijing


class Clock:
    """One clock for the emulator (unix seconds) and the runner (datetime)."""

    def __init__(self, at: dt.datetime = T0) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def unix(self) -> float:
        return self.at.timestamp()


async def no_sleep(seconds: float) -> None:
    """Backoff waits are skipped."""


def _members(n: int) -> Iterator[Member]:
    return (
        Member(
            f"m{i:05d}",
            identities=[Identity("openid", f"o{i:05d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    )


def _mass_campaign(cid: str = "mass") -> Campaign:
    return Campaign(
        id=cid,
        audience=TRUE,
        channel="wechat.mass",
        variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "会员日"}}),),
        address_namespace=APPID,
    )


def _setup(
    n: int, clock: Clock, limits: tuple[CallBudget, ...] = ()
) -> tuple[WeChatEmulator, WeChatMassChannel]:
    emu = WeChatEmulator(seed=1, clock=clock.unix, limits=limits)
    emu.add_account(APPID, "secret").add_followers(f"o{i:05d}" for i in range(n))
    client = OfficialAccount(
        APPID,
        "secret",
        transport=emu.transport(),
        retry=RetryPolicy(attempts=1),
        budgets=(),
        clock=clock,
        sleep=lambda s: None,
    )
    return emu, WeChatMassChannel(client)


def test_timeout_after_accept_then_502s_is_unknown_then_reconciled_sent() -> None:
    """Rule: a mass/send that times out after the platform accepted it, then 502 on every
    retry, ends `unknown` (never `failed`); the next run resends the same batch with the
    same clientmsgid, the platform answers "already sent" and the deliveries become `sent`."""
    clock = Clock()
    emu, channel = _setup(100, clock)
    store = InMemoryStore()
    c = _mass_campaign()
    prepare(store, c, _members(100), None, T0)
    emu.faults.next("timeout", "http5xx", "http5xx", "http5xx", api=MASS_API)
    runner = CampaignRunner(
        store, channel, sleep=no_sleep, clock=clock, retry=DeliveryRetry(attempts=4)
    )
    first = runner.run(c.id)
    counts = store.status_counts(c.id)
    assert counts["unknown"] == 100, counts
    assert counts["failed"] == 0, counts
    assert first.unknown == 100
    assert first.failed == 0
    assert len(emu.receipts) == 100, "the platform did deliver on the first attempt"
    clock.at += dt.timedelta(minutes=5)
    second = runner.run(c.id)
    counts = store.status_counts(c.id)
    assert counts["sent"] == 100, counts
    assert counts["unknown"] == 0, counts
    assert second.reconciled == 100
    assert emu.errcodes[45065] == 1, "reconciled by the platform's de-duplication"
    assert emu.duplicates == 0
    assert len(emu.receipts) == 100


def test_in_doubt_past_the_dedup_window_is_never_resent() -> None:
    """Rule: past the platform's 24 h clientmsgid window an in-doubt batch is left
    `unknown` (a resend could deliver twice)."""
    clock = Clock()
    emu, channel = _setup(50, clock)
    store = InMemoryStore()
    c = _mass_campaign()
    prepare(store, c, _members(50), None, T0)
    emu.faults.next("timeout", "http5xx", api=MASS_API)
    runner = CampaignRunner(
        store, channel, sleep=no_sleep, clock=clock, retry=DeliveryRetry(attempts=2)
    )
    runner.run(c.id)
    assert store.status_counts(c.id)["unknown"] == 50
    calls = emu.calls[MASS_API]
    clock.at += dt.timedelta(hours=25)
    runner.run(c.id)
    assert emu.calls[MASS_API] == calls, "no blind resend"
    assert store.status_counts(c.id)["unknown"] == 50
    assert emu.duplicates == 0


def test_45009_mid_campaign_defers_to_the_daily_reset() -> None:
    """Rule: 45009 (daily quota) mid-campaign → the batch goes back to planned, the run ends
    `deferred` until midnight Beijing time, no call is made before then (the hold is in the
    store), the campaign resumes after the reset: 0 failed, calls bounded."""
    clock = Clock()
    limits = (CallBudget("mass", per_day=3, apis=(MASS_API,)),)
    emu, channel = _setup(200, clock, limits)
    store = InMemoryStore()
    c = _mass_campaign()
    prepare(store, c, _members(200), None, T0)

    def runner() -> CampaignRunner:
        return CampaignRunner(
            store, channel, batch_size=20, concurrency=1, sleep=no_sleep, clock=clock
        )

    first = runner().run(c.id)
    assert first.status == "deferred"
    assert first.deferred_until == next_daily_reset(T0)
    assert first.deferred_until == dt.datetime(2026, 3, 10, 16, tzinfo=dt.UTC)
    assert first.sent == 60
    assert first.failed == 0
    counts = store.status_counts(c.id)
    assert counts["sent"] == 60, counts
    assert counts["planned"] == 140, counts
    assert emu.calls[MASS_API] == 4, "stopped at the first 45009"
    # another runner (sharing the store) before the reset makes no call
    clock.at += dt.timedelta(hours=1)
    again = runner().run(c.id)
    assert again.status == "deferred"
    assert again.calls == 0
    assert emu.calls[MASS_API] == 4
    days = 1
    while store.status_counts(c.id)["planned"]:
        result = runner().run(c.id)
        if result.status == "deferred":
            assert result.deferred_until is not None
            clock.at = result.deferred_until + dt.timedelta(seconds=1)
            days += 1
        assert days < 10
    counts = store.status_counts(c.id)
    assert counts["sent"] == 200, counts
    assert counts["failed"] == 0, counts
    assert days == 4, "3 batches a day, 10 batches"
    assert emu.calls[MASS_API] <= 10 + days, "one refused call per exhausted day at most"
    assert emu.duplicates == 0
    assert len(emu.receipts) == 200


def test_balanced_batches_never_leave_a_lone_mass_recipient() -> None:
    """Rule: 10,001 recipients with the 10,000 limit go out as 5,001 + 5,000 mass sends (no
    lone remainder that would become a customer-service message), and `simulate` predicts
    exactly the calls the runner makes."""
    assert balanced_batches(10_001, 10_000) == [5_001, 5_000]
    assert balanced_batches(25_001, 10_000) == [8_334, 8_334, 8_333]
    n = 10_001
    clock = Clock()
    emu, channel = _setup(n, clock)
    store = InMemoryStore()
    c = _mass_campaign()
    sim = simulate(c, _members(n), None, T0, capabilities=channel.capabilities)
    prepare(store, c, _members(n), None, T0)
    CampaignRunner(store, channel, sleep=no_sleep, clock=clock, rate_per_second=None).run(c.id)
    assert store.status_counts(c.id)["sent"] == n
    assert emu.calls[MASS_API] == sim.quota_cost["A"]["api_calls"] == 2
    assert emu.calls["/cgi-bin/message/custom/send"] == 0
    assert sorted(sim.batches["A"]) == [5_000, 5_001]
    assert all(r.status is DeliveryStatus.SENT for r in store.deliveries(c.id))


def test_opt_out_after_prepare_and_quiet_hours_at_hand_off_are_honoured() -> None:
    """Rule: policy is checked again at hand-off: a member who opts out after `prepare` gets
    nothing (skipped no_consent), a runner started inside quiet hours sends nothing
    (skipped quiet_hours, in each member's own zone) — 0 violations counted on the emulator."""
    from membermkt import Consent
    from membermkt.core.campaigns import QuietHours

    n = 40
    plan_at = dt.datetime(2026, 3, 10, 13, 59, tzinfo=dt.UTC)  # 21:59 in Beijing
    clock = Clock(plan_at)
    emu, channel = _setup(n, clock)
    store = InMemoryStore()
    people = list(_members(n))
    for i in (1, 2):  # two members live in London (their own quiet hours)
        people[i] = attrs.evolve(people[i], attributes={"timezone": "Europe/London"})
    store.upsert_members(people)
    quiet = QuietHours(start=dt.time(22), end=dt.time(8))
    c = attrs.evolve(_mass_campaign(), quiet_hours=quiet)
    summary = prepare(store, c, members_of(store, c, plan_at), None, plan_at)
    assert summary.total_deliveries == n
    # after prepare: m00000 opts out of marketing
    store.upsert_members([attrs.evolve(people[0], consent=Consent(marketing=False))])
    clock.at = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.UTC)  # 23:30 in Beijing
    runner = CampaignRunner.for_campaign(store, channel, c, sleep=no_sleep, clock=clock)
    late = runner.run(c.id)
    assert emu.calls[MASS_API] == 1, "only London (15:30 there) is outside quiet hours"
    assert late.sent == 2
    assert late.skips == {"no_consent": 1, "quiet_hours": n - 3}
    assert store.status_counts(c.id)["skipped"] == n - 2
    # a second campaign planned for the morning reaches those outside their quiet hours
    c2 = attrs.evolve(c, id="mass-morning")
    morning = dt.datetime(2026, 3, 11, 0, 30, tzinfo=dt.UTC)  # 08:30 Beijing, 00:30 London
    clock.at = morning
    planned_at = dt.datetime(2026, 3, 10, 13, tzinfo=dt.UTC)  # 21:00 Beijing, 13:00 London
    prepare(store, c2, members_of(store, c2, planned_at), None, planned_at)
    result = CampaignRunner.for_campaign(store, channel, c2, sleep=no_sleep, clock=clock).run(c2.id)
    assert result.sent == n - 3
    assert result.skips == {"quiet_hours": 2}, "00:30 in London"
    for r in emu.receipts:
        member = store.get_member(f"m{r.openid[1:]}")
        assert member is not None
        assert member.consent.marketing, "no receipt for the opted-out member"
        assert not quiet.contains(dt.datetime.fromtimestamp(r.at, dt.UTC), member)
    assert emu.duplicates == 0


def test_five_mass_campaigns_in_a_month_never_make_a_fifth_receipt() -> None:
    """Rule: with no history argument, `prepare` and the hand-off read the ledger: the
    fourth mass message of the month is the last one a follower gets (per appid)."""
    n = 30
    clock = Clock()
    emu, channel = _setup(n, clock)
    store = InMemoryStore()
    store.upsert_members(_members(n))
    results = []
    for k in range(5):
        c = _mass_campaign(f"mass-{k}")
        clock.at = T0 + dt.timedelta(days=k)
        summary = prepare(store, c, members_of(store, c, clock.at), None, clock.at)
        CampaignRunner.for_campaign(store, channel, c, sleep=no_sleep, clock=clock).run(c.id)
        results.append(summary)
    assert [s.total_deliveries for s in results] == [n, n, n, n, 0]
    assert results[4].skipped_by_reason() == {"platform_quota": n}
    per_follower: dict[str, int] = {}
    for r in emu.receipts:
        per_follower[r.openid] = per_follower.get(r.openid, 0) + 1
    assert set(per_follower.values()) == {4}
    assert sum(emu.errcodes.values()) == 0


def test_validation_catches_what_the_send_would_fail_on() -> None:
    """Rule: a mass msgtype without its content object, a template aimed at a mass channel
    and a misspelt channel are refused before anything runs; plain-value template data that
    the client wraps is not a false positive of the mass rules."""
    from membermkt.core.campaigns import validate

    def problems(channel: str, content: dict[str, object]) -> list[str]:
        c = Campaign(
            id="v",
            audience=TRUE,
            channel=channel,
            variants=(Variant(name="A", content=content),),
            address_namespace=APPID,
        )
        return [p.path for p in validate(c)]

    assert "variants[0](A).content.text" in problems("wechat.mass", {"msgtype": "text"})
    assert "variants[0](A).content.template_id" in problems(
        "wechat.mass", {"template_id": "T", "data": {"k": {"value": "v"}}}
    )
    assert problems("wechat.mas", {"msgtype": "text", "text": {"content": "x"}}) == ["channel"]
    assert problems("wechat.mass", {"msgtype": "text", "text": {"content": "x"}}) == []
    assert problems("wechat.template", {"template_id": "T", "data": {"k": {"value": "v"}}}) == []
    assert problems("wechat.template", {"template_id": "T", "data": {"k": "v {{ id }}"}}) == []
    assert problems("wechat.template", {"template_id": "T", "data": {"k": ["v"]}}) == [
        "variants[0](A).content.data"
    ]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_job_results_are_recorded_once_and_reconcile_with_the_ledger(
    kind: str, tmp_path: Path
) -> None:
    """Rule: MASSSENDJOBFINISH callbacks are de-duplicated in the store (a second delivery of
    the same push, or another process, records nothing) and their counts reconcile the
    campaign: the ledger's `sent` per job equals the platform's audience, a follower who had
    already had 4 mass messages this month is counted as not reached."""
    from membermkt.channels.wechat.messages import parse_message
    from membermkt.engine.jobresults import JobResult, reconcile_jobs, record_job_results
    from membermkt.stores.sql import SqlStore

    n = 10
    clock = Clock()
    emu, channel = _setup(n, clock)
    follower = emu.accounts[APPID].followers["o00003"]
    follower.mass_month[dt.datetime.fromtimestamp(clock.unix(), BEIJING).strftime("%Y-%m")] = 4
    store: Any = InMemoryStore() if kind == "memory" else SqlStore(f"sqlite:///{tmp_path / 'j.db'}")
    c = _mass_campaign()
    prepare(store, c, _members(n), {}, T0)
    CampaignRunner(store, channel, sleep=no_sleep, clock=clock).run(c.id)
    pushes = emu.job_finish_pushes(APPID)
    assert len(pushes) == 1
    results = [JobResult.from_message(APPID, parse_message(p.body)) for p in pushes * 2]
    assert record_job_results(store, [r for r in results if r], now=clock.now()) == 1
    assert record_job_results(store, [r for r in results if r], now=clock.now()) == 0
    rec = reconcile_jobs(store, c.id, appid=APPID)
    assert rec.missing == ()
    assert sum(rec.ledger_sent.values()) == n
    (job,) = rec.platform.values()
    assert (job.total, job.filtered, job.sent, job.errors) == (n, n, n - 1, 1)
    assert rec.reached == n - 1
    assert rec.not_reached == 1


def test_simulate_predicts_the_template_calls() -> None:
    """Rule: on a per-delivery channel `simulate` predicts one call per delivery, handed one
    at a time (a crash leaves at most `concurrency` in doubt) — what the runner does."""
    from membermkt.channels.wechat.channel import WeChatTemplateChannel

    n = 30
    clock = Clock()
    emu, mass = _setup(n, clock)
    emu.accounts[APPID].add_template("TPL1")
    channel = WeChatTemplateChannel(mass.client)
    c = Campaign(
        id="tpl",
        audience=TRUE,
        channel="wechat.template",
        variants=(Variant(name="A", content={"template_id": "TPL1", "data": {"k": "v"}}),),
        address_namespace=APPID,
    )
    sim = simulate(c, _members(n), None, T0, capabilities=channel.capabilities)
    store = InMemoryStore()
    prepare(store, c, _members(n), {}, T0)
    CampaignRunner(store, channel, sleep=no_sleep, clock=clock).run(c.id)
    assert store.status_counts(c.id)["sent"] == n
    assert emu.calls["/cgi-bin/message/template/send"] == sim.quota_cost["A"]["api_calls"] == n
    assert sim.batches["A"] == (1,) * n

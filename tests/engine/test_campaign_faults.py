"""Fault injection against the WeChat official-account emulator: transient errors, token
invalidations, 45009 throttles and lost answers → every delivery final, no duplicates
(counted by the emulator)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from membermkt import Identity, Member, MemberState
from membermkt.channels.wechat.channel import WeChatMassChannel, WeChatTemplateChannel
from membermkt.channels.wechat.client import OfficialAccount
from membermkt.core.campaigns import Campaign, Variant, check
from membermkt.core.delivery import DeliveryStatus
from membermkt.engine.campaigns import CampaignReport, CampaignRunner, DeliveryRetry, prepare
from membermkt.segments import TRUE
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID = "wxfaults0000001"
AS_OF = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


async def no_sleep(seconds: float) -> None:
    """Waits are skipped (the emulator's clock does not need them)."""


def no_sleep_sync(seconds: float) -> None:
    """Waits are skipped."""


class SkippedWaits:
    """The emulator's clock: real time plus every wait the runner skipped, so a resend the
    runner delays by a minute (45066: the same clientmsgid retried too fast) is a minute
    later for the emulator too."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def unix(self) -> float:
        return time.time() + self.skipped

    async def sleep(self, seconds: float) -> None:
        self.skipped += seconds


class FakeClock:
    """The runner's clock: moved past a quota hold when a run ends ``deferred``."""

    def __init__(self) -> None:
        self.at = AS_OF

    def now(self) -> dt.datetime:
        return self.at


def _members(n: int) -> Iterator[Member]:
    return (
        Member(
            f"m{i:06d}",
            identities=[Identity("openid", f"o{i:06d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    )


@pytest.mark.slow
async def test_mass_send_to_100k_with_faults_is_exactly_once() -> None:
    """Rule: 100k recipients, ~10 % transient errors, token invalidations, 45009 throttles
    and lost answers → each follower received the message exactly once, and every delivery
    is ``sent`` — except a batch whose answer was lost and whose keyed resend then hit the
    daily quota (45009) so that the resend would fall outside the platform's 24 h
    ``clientmsgid`` window: it is never resent blind, ends ``unknown`` and is listed in the
    run's ``in_doubt`` for reconciliation (the platform did deliver it)."""
    n = 100_000
    waits = SkippedWaits()
    emu = WeChatEmulator(seed=11, limits=(), clock=waits.unix)
    acct = emu.add_account(APPID, "secret")
    acct.add_followers(f"o{i:06d}" for i in range(n))
    mass_api = "/cgi-bin/message/mass/send"
    emu.faults.set(busy=0.10, token_invalidate=0.05, throttle=0.05, timeout=0.05, apis=[mass_api])
    # every kind at least once, whatever order concurrent requests arrive in
    emu.faults.next("busy", "token_invalidate", "throttle", "timeout", api=mass_api)
    client = OfficialAccount(
        APPID,
        "secret",
        transport=emu.transport(),
        sleep=no_sleep_sync,
        retry=RetryPolicy(attempts=1),
        budgets=(),  # the emulator's per-minute mass limit would need real minutes to pass
    )
    channel = WeChatMassChannel(client)
    c = Campaign(
        id="spring-mass",
        audience=TRUE,
        channel="wechat.mass",
        variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "春季上新"}}),),
        address_namespace=APPID,
    )
    check(c, capabilities=channel.capabilities)
    store = InMemoryStore()
    summary = prepare(store, c, _members(n), None, AS_OF)
    assert summary.total_deliveries == n
    clock = FakeClock()
    retried = deferrals = 0
    in_doubt: set[str] = set()
    runner = CampaignRunner(
        store,
        channel,
        batch_size=1000,
        concurrency=8,
        rate_per_second=None,
        sleep=waits.sleep,
        clock=clock,
        retry=DeliveryRetry(attempts=30),
    )
    while True:
        result = await runner.arun(c.id)
        retried += result.retried
        in_doubt |= set(result.in_doubt)
        if result.status != "deferred":
            break
        # 45009 (daily quota) defers the campaign to the reset: resume from there
        deferrals += 1
        assert result.deferred_until is not None
        assert deferrals < 50
        clock.at = result.deferred_until
    counts = store.status_counts(c.id)
    records = store.deliveries(c.id)
    unknown = [r for r in records if r.status is DeliveryStatus.UNKNOWN]
    # nothing lost, nothing failed, nothing left half-way
    assert counts["sent"] + len(unknown) == n, counts
    assert counts["failed"] == counts["planned"] == counts["sending"] == 0, counts
    # in doubt only where an answer was lost and the window ran out, whole batches, listed
    assert all((r.reason or "").startswith("in doubt") for r in unknown), unknown[:3]
    assert {r.key for r in unknown} <= in_doubt
    assert len(unknown) % 1000 == 0, counts
    assert len(unknown) <= 5000, counts
    assert retried > 0
    assert deferrals > 0, "the throttle faults (45009) deferred the campaign"
    assert sum(emu.faults.injected.values()) >= 6, emu.faults.injected
    assert {"busy", "token_invalidate", "throttle", "timeout"} <= set(emu.faults.injected)
    assert emu.duplicates == 0
    assert len(emu.receipts) == n
    assert {r.openid for r in emu.receipts} == {f"o{i:06d}" for i in range(n)}
    # the in-doubt ones did reach their followers: reconcilable, never resent
    received = {r.openid for r in emu.receipts}
    assert all(r.delivery.address in received for r in unknown)
    report = CampaignReport.build(c, store.deliveries(c.id), summary)
    assert report.group("A").sent == n - len(unknown)


@pytest.mark.slow
def test_template_messages_with_faults_never_duplicate() -> None:
    """Rule: template sends carry no idempotency key — lost answers end `unknown`, never
    re-sent; every other delivery is sent exactly once despite busy/throttle/token faults."""
    n = 1500
    emu = WeChatEmulator(seed=5, limits=())
    acct = emu.add_account(APPID, "secret")
    acct.add_followers(f"o{i:06d}" for i in range(n))
    acct.add_template("TPL1")
    emu.faults.set(
        busy=0.10,
        token_invalidate=0.02,
        throttle=0.03,
        timeout=0.02,
        apis=["/cgi-bin/message/template/send"],
    )
    client = OfficialAccount(
        APPID,
        "secret",
        transport=emu.transport(),
        sleep=no_sleep_sync,
        retry=RetryPolicy(attempts=1),
        budgets=(),
    )
    channel = WeChatTemplateChannel(client)
    c = Campaign(
        id="tpl",
        audience=TRUE,
        channel="wechat.template",
        variants=(
            Variant(
                name="A",
                content={"template_id": "TPL1", "data": {"first": {"value": "您好 {{ id }}"}}},
            ),
        ),
        address_namespace=APPID,
    )
    check(c, capabilities=channel.capabilities)
    store = InMemoryStore()
    prepare(store, c, _members(n), None, AS_OF)
    clock = FakeClock()
    runner = CampaignRunner(
        store, channel, concurrency=8, sleep=no_sleep, clock=clock, retry=DeliveryRetry(attempts=30)
    )
    for _ in range(200):  # 45009 defers to the reset; resume from there
        result = runner.run(c.id)
        if result.status != "deferred":
            break
        assert result.deferred_until is not None
        clock.at = result.deferred_until
    counts = store.status_counts(c.id)
    assert counts["planned"] == counts["sending"] == 0
    assert counts["sent"] + counts["unknown"] == n
    assert counts["unknown"] > 0
    assert emu.duplicates == 0
    received = {r.openid for r in emu.receipts}
    for rec in store.deliveries(c.id):
        if rec.status is DeliveryStatus.SENT:
            assert rec.delivery.address in received
    assert len(emu.receipts) >= counts["sent"]

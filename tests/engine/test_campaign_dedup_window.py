"""The mass ``clientmsgid`` window, end to end against the official-account emulator: a
recovery resend within a minute of the crashed attempt meets 45066 and waits it out with the
same key; past the 24-hour window a crashed batch is never resent blind — a known job is
looked up with ``message/mass/get``, the rest is listed for reconciliation (ref §1.4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import pytest

from membermkt import Identity, Member, MemberState
from membermkt.channels.wechat.channel import WeChatMassChannel
from membermkt.channels.wechat.client import OfficialAccount
from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.delivery import Delivery, DeliveryStatus, SendOutcome, SendResult
from membermkt.engine.campaigns import CampaignRunner, DeliveryRetry, prepare
from membermkt.segments import TRUE
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID = "wxdedupwindow01"
MASS_API = "/cgi-bin/message/mass/send"
T0 = dt.datetime(2026, 3, 10, 4, tzinfo=dt.UTC)


class Clock:
    """One clock for the emulator, the client and the runner; the runner's waits move it."""

    def __init__(self) -> None:
        self.at = T0
        self.waits: list[float] = []

    def now(self) -> dt.datetime:
        return self.at

    def unix(self) -> float:
        return self.at.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.at += dt.timedelta(seconds=seconds)


class Crash(BaseException):
    """The runner process dies right after the platform accepted the call."""


class CrashOnce(WeChatMassChannel):
    """The real mass channel; the first keyed send dies after the platform answered."""

    crashed = False

    def send_keyed(self, batch: Sequence[Delivery], request_key: str) -> Sequence[SendResult]:
        results = super().send_keyed(batch, request_key)
        if not self.crashed:
            self.crashed = True
            raise Crash
        return results


def _members(n: int) -> Iterator[Member]:
    return (
        Member(
            f"m{i:03d}",
            identities=[Identity("openid", f"o{i:03d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    )


def _world(n: int) -> tuple[Clock, WeChatEmulator, OfficialAccount, InMemoryStore, Campaign]:
    clock = Clock()
    emu = WeChatEmulator(seed=4, clock=clock.unix, limits=())
    emu.add_account(APPID, "secret").add_followers(f"o{i:03d}" for i in range(n))
    client = OfficialAccount(
        APPID,
        "secret",
        transport=emu.transport(),
        retry=RetryPolicy(attempts=1),
        budgets=(),
        clock=clock,
        sleep=lambda s: None,
    )
    c = Campaign(
        id="mass",
        audience=TRUE,
        channel="wechat.mass",
        variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "会员日"}}),),
        address_namespace=APPID,
    )
    store = InMemoryStore()
    prepare(store, c, _members(n), None, T0)
    return clock, emu, client, store, c


def _crash(store: InMemoryStore, channel: WeChatMassChannel, clock: Clock, cid: str) -> None:
    with pytest.raises(Crash):
        CampaignRunner(store, channel, sleep=clock.sleep, clock=clock, lease=dt.timedelta(0)).run(
            cid
        )
    assert store.status_counts(cid)["sending"] > 0, "the crash left the batch in flight"
    clock.at += dt.timedelta(seconds=5)  # the restart takes a few seconds


def test_recovery_within_a_minute_waits_out_45066_and_resends_the_same_key() -> None:
    """Rule: 45066 (the same clientmsgid retried too fast) is neither a failure nor a reason
    for a new key: the runner resends the same batch with the same key after >= 60 s, the
    platform answers 45065 and every delivery is `sent`, each follower reached once."""
    n = 20
    clock, emu, client, store, c = _world(n)
    channel = CrashOnce(client)
    _crash(store, channel, clock, c.id)
    assert len(emu.receipts) == n
    result = CampaignRunner(
        store, channel, sleep=clock.sleep, clock=clock, lease=dt.timedelta(0)
    ).run(c.id)
    counts = store.status_counts(c.id)
    assert counts["sent"] == n, counts
    assert counts["failed"] == counts["unknown"] == 0, counts
    assert result.failed == 0
    assert emu.errcodes[45066] == 1
    assert emu.errcodes[45065] == 1, "the resend a minute later was de-duplicated"
    assert max(clock.waits) >= 60
    assert len(emu.accounts[APPID]._clientmsgids) == 1, "one key for the batch, never a new one"
    assert emu.duplicates == 0
    assert len(emu.receipts) == n


def test_45066_past_max_wait_defers_the_batch_in_doubt() -> None:
    """Rule: when the runner may not wait a minute (`max_wait` < 60 s) a 45066 defers the
    run; the batch stays in doubt (`unknown`, never `failed`) and a run a minute later
    settles it with the same key."""
    n = 10
    clock, emu, client, store, c = _world(n)
    channel = CrashOnce(client)
    _crash(store, channel, clock, c.id)
    runner = CampaignRunner(
        store,
        channel,
        sleep=clock.sleep,
        clock=clock,
        lease=dt.timedelta(0),
        retry=DeliveryRetry(max_wait=10),
    )
    first = runner.run(c.id)
    assert first.status == "deferred"
    assert first.deferred_until is not None
    assert first.deferred_until >= clock.now() + dt.timedelta(seconds=59)
    counts = store.status_counts(c.id)
    assert counts["unknown"] == n, counts
    assert counts["failed"] == 0, counts
    assert emu.errcodes[45066] == 1
    clock.at = first.deferred_until + dt.timedelta(seconds=1)
    second = runner.run(c.id)
    assert second.status == "done"
    assert store.status_counts(c.id)["sent"] == n
    assert second.reconciled == n
    assert emu.errcodes[45065] == 1
    assert len(emu.receipts) == n


def test_past_the_window_a_crashed_batch_is_listed_not_resent() -> None:
    """Rule: 25 h after a crash the platform no longer de-duplicates the batch's key, so
    recovery makes no send: its deliveries end `unknown`, listed in `in_doubt` for
    reconciliation with the job results (MASSSENDJOBFINISH)."""
    n = 12
    clock, emu, client, store, c = _world(n)
    channel = CrashOnce(client)
    _crash(store, channel, clock, c.id)
    calls = emu.calls[MASS_API]
    clock.at += dt.timedelta(hours=25)
    result = CampaignRunner(
        store, channel, sleep=clock.sleep, clock=clock, lease=dt.timedelta(0)
    ).run(c.id)
    assert emu.calls[MASS_API] == calls, "no blind resend past the window"
    assert sorted(result.in_doubt) == sorted(r.key for r in store.deliveries(c.id))
    assert result.recovered_unknown == n
    for rec in store.deliveries(c.id):
        assert rec.status is DeliveryStatus.UNKNOWN
        assert rec.reason
        assert "de-duplication window" in rec.reason
    assert emu.duplicates == 0
    assert len(emu.receipts) == n
    # the job's result callback is there to reconcile them with
    (push,) = emu.job_finish_pushes(APPID)
    assert b"<TotalCount><![CDATA[12]]></TotalCount>" in push.body


class JobKnown(WeChatMassChannel):
    """The platform accepted the job (its msg_id is known) but the channel cannot vouch for
    the members: the deliveries are recorded in doubt, with the job id."""

    def send_keyed(self, batch: Sequence[Delivery], request_key: str) -> Sequence[SendResult]:
        return [
            SendResult(
                key=r.key,
                outcome=SendOutcome.UNKNOWN,
                reason="in doubt: job accepted",
                platform_id=r.platform_id,
            )
            for r in super().send_keyed(batch, request_key)
        ]


def test_past_the_window_a_known_job_is_looked_up_with_mass_get() -> None:
    """Rule: an in-doubt delivery whose mass job id the ledger knows is settled with
    `message/mass/get` (SEND_SUCCESS → sent), never by a resend."""
    n = 8
    clock, emu, client, store, c = _world(n)
    CampaignRunner(store, JobKnown(client), sleep=clock.sleep, clock=clock).run(c.id)
    assert store.status_counts(c.id)["unknown"] == n
    assert {r.platform_id for r in store.deliveries(c.id)} != {None}
    calls = emu.calls[MASS_API]
    clock.at += dt.timedelta(hours=25)
    result = CampaignRunner(
        store, WeChatMassChannel(client), sleep=clock.sleep, clock=clock, lease=dt.timedelta(0)
    ).run(c.id)
    assert emu.calls[MASS_API] == calls
    assert emu.calls["/cgi-bin/message/mass/get"] == 1
    assert store.status_counts(c.id)["sent"] == n
    assert result.reconciled == n
    assert result.in_doubt == ()
    assert len(emu.receipts) == n

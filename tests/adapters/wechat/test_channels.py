"""wechat.mass / wechat.template / wechat.custom channels against the emulator."""

from __future__ import annotations

import pytest

from membermkt.channels.wechat import (
    AsyncOfficialAccount,
    AsyncWeChatMassChannel,
    AsyncWeChatTemplateChannel,
    OfficialAccount,
    WeChatCustomChannel,
    WeChatMassChannel,
    WeChatTemplateChannel,
)
from membermkt.core.delivery import Delivery, SendOutcome
from membermkt.core.ports import AsyncChannel, Channel
from membermkt.errors import UsageError
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID = "wxchannel0000001"
TEXT = {"msgtype": "text", "text": {"content": "双十一"}}
TPL = {"template_id": "TPL1", "data": {"first": "hi"}, "url": "https://shop.example"}


@pytest.fixture
def emu():
    e = WeChatEmulator(seed=11, clock=lambda: 1_700_000_000.0)
    acct = e.add_account(APPID, "s")
    acct.add_followers([f"o{i}" for i in range(50)])
    acct.add_template("TPL1")
    return e


def client(emu, **kw) -> OfficialAccount:
    kw.setdefault("retry", RetryPolicy(attempts=2, jitter=0))
    return OfficialAccount(
        APPID,
        "s",
        transport=emu.transport(),
        budgets=(),
        sleep=lambda s: None,
        **kw,
    )


def deliveries(channel: str, n: int, payload=TEXT, start: int = 0) -> list[Delivery]:
    return [
        Delivery(
            key=f"c1:m{i}:A",
            campaign_id="c1",
            member_id=f"m{i}",
            channel=channel,
            address=f"o{i}",
            variant="A",
            payload=payload,
        )
        for i in range(start, start + n)
    ]


def test_channels_satisfy_the_protocols(emu):
    sync = client(emu)
    for ch in (WeChatMassChannel(sync), WeChatTemplateChannel(sync), WeChatCustomChannel(sync)):
        assert isinstance(ch, Channel)
        assert ch.capabilities.address_namespace == APPID
    mass = WeChatMassChannel(sync)
    assert mass.name == "wechat.mass"
    assert mass.capabilities.idempotent
    assert mass.capabilities.max_batch_size == 10_000
    assert not WeChatTemplateChannel(sync).capabilities.idempotent
    assert any("48 h" in r for r in WeChatCustomChannel(sync).capabilities.rules)
    a = AsyncOfficialAccount(APPID, "s", transport=emu.transport())
    assert isinstance(AsyncWeChatMassChannel(a), AsyncChannel)


def test_mass_batch_is_one_call_and_a_resend_is_deduplicated(emu):
    """Same payload → one mass/send; re-sending the same batch (e.g. after a lost answer)
    hits the platform's clientmsgid de-duplication: no follower receives it twice."""
    ch = WeChatMassChannel(client(emu))
    batch = deliveries("wechat.mass", 20)
    first = ch.send(batch)
    assert [r.outcome for r in first] == [SendOutcome.SENT] * 20
    assert len({r.platform_id for r in first}) == 1
    too_soon = ch.send(batch)  # within a minute of the first attempt: 45066, wait and retry
    assert {(r.outcome, r.reason) for r in too_soon} == {(SendOutcome.RETRYABLE, "errcode:45066")}
    assert {r.retry_after for r in too_soon} == {60.0}
    emu.now = lambda: 1_700_000_000.0 + 61
    again = ch.send(list(reversed(batch)))
    assert [r.key for r in again] == [d.key for d in reversed(batch)]
    assert {r.platform_id for r in again} == {first[0].platform_id}
    assert emu.errcodes[45065] == 1, "the resend a minute later was de-duplicated"
    assert emu.duplicates == 0
    assert len(emu.receipts) == 20


def test_lost_mass_answer_is_retryable_and_retry_is_safe(emu):
    """A timeout after the platform accepted the job: the batch is retryable (it carries a
    key), and the retry returns the first job instead of sending again."""
    ch = WeChatMassChannel(client(emu, retry=RetryPolicy(attempts=1)))
    batch = deliveries("wechat.mass", 5)
    emu.faults.next("timeout", api="/cgi-bin/message/mass/send")
    lost = ch.send(batch)
    assert {r.outcome for r in lost} == {SendOutcome.RETRYABLE}
    emu.now = lambda: 1_700_000_000.0 + 60  # the same clientmsgid again after a minute
    retry = ch.send(batch)
    assert {r.outcome for r in retry} == {SendOutcome.SENT}
    assert emu.duplicates == 0
    assert len(emu.receipts) == 5


def test_mixed_payloads_single_fallback_and_duplicates(emu):
    """Groups by payload; a group of one goes through the custom fallback (which needs the
    48-hour window); a duplicate address in a group is refused, not sent twice."""
    emu.accounts[APPID].text_push("o9", "hi")
    other = {"msgtype": "text", "text": {"content": "other"}}
    batch = deliveries("wechat.mass", 3) + deliveries("wechat.mass", 1, other, start=9)
    batch += deliveries("wechat.mass", 1, other, start=10)  # o10: no window
    dup = Delivery(
        key="c1:dup",
        campaign_id="c1",
        member_id="m0",
        channel="wechat.mass",
        address="o0",
        variant="A",
        payload=TEXT,
    )
    results = WeChatMassChannel(client(emu)).send([*batch, dup])
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == [d.key for d in [*batch, dup]]
    assert by_key["c1:m0:A"].outcome is SendOutcome.SENT
    # o9 and o10 share a payload: a real group of two → one mass send reaching both.
    assert by_key["c1:m9:A"].outcome is SendOutcome.SENT
    assert by_key["c1:dup"].outcome is SendOutcome.PERMANENT
    assert by_key["c1:dup"].reason == "duplicate_address"


def test_single_delivery_fallback_and_fail_modes(emu):
    emu.accounts[APPID].text_push("o1", "hi")
    one = deliveries("wechat.mass", 1, start=1)
    assert WeChatMassChannel(client(emu)).send(one)[0].outcome is SendOutcome.SENT
    assert [r.kind for r in emu.received(APPID, "o1")] == ["custom"]
    outside = deliveries("wechat.mass", 1, start=2)
    res = WeChatMassChannel(client(emu)).send(outside)[0]
    assert (res.outcome, res.reason) == (SendOutcome.PERMANENT, "errcode:45015")
    failed = WeChatMassChannel(client(emu), single="fail").send(outside)[0]
    assert (failed.outcome, failed.reason) == (SendOutcome.PERMANENT, "errcode:40130")
    with pytest.raises(UsageError):
        WeChatMassChannel(client(emu), single="pad")


def test_template_outcomes(emu):
    acct = emu.accounts[APPID]
    acct.unfollow("o3")
    acct.block("o4")
    batch = deliveries("wechat.template", 6, TPL)
    bad = Delivery(
        key="bad",
        campaign_id="c1",
        member_id="x",
        channel="wechat.template",
        address="o5",
        variant="A",
        payload={"data": {}},
    )
    emu.faults.next("busy", "busy", api="/cgi-bin/message/template/send")  # o0: retryable
    emu.faults.next("timeout", api="/cgi-bin/message/template/send")  # o1: unknown
    results = WeChatTemplateChannel(client(emu)).send([*batch, bad])
    got = [(r.outcome, r.reason) for r in results]
    assert got == [
        (SendOutcome.RETRYABLE, "errcode:-1"),
        (SendOutcome.UNKNOWN, "transport:ambiguous"),
        (SendOutcome.SENT, None),
        (SendOutcome.PERMANENT, "errcode:43004"),
        (SendOutcome.PERMANENT, "errcode:48002"),
        (SendOutcome.SENT, None),
        (SendOutcome.PERMANENT, got[6][1]),
    ]
    assert got[6][1].startswith("invalid:")
    assert results[2].platform_id
    # The lost answer really reached o1: reporting "unknown" (not retryable) was right.
    assert len(emu.received(APPID, "o1")) == 1


def test_custom_window_outcomes(emu):
    acct = emu.accounts[APPID]
    acct.text_push("o1", "hi")
    results = WeChatCustomChannel(client(emu)).send(deliveries("wechat.custom", 2))
    assert [(r.outcome, r.reason) for r in results] == [
        (SendOutcome.PERMANENT, "errcode:45015"),
        (SendOutcome.SENT, None),
    ]


def test_wrong_channel_is_refused(emu):
    with pytest.raises(UsageError):
        WeChatTemplateChannel(client(emu)).send(deliveries("wechat.mass", 1, TPL))


async def test_async_channels_match_sync(emu):
    """The async channels give the same outcomes as the sync ones on the same script."""
    sync_results = WeChatTemplateChannel(client(emu)).send(deliveries("wechat.template", 4, TPL))
    e2 = WeChatEmulator(seed=11, clock=lambda: 1_700_000_000.0)
    a2 = e2.add_account(APPID, "s")
    a2.add_followers([f"o{i}" for i in range(50)])
    a2.add_template("TPL1")
    ac = AsyncOfficialAccount(APPID, "s", transport=e2.transport(), budgets=())
    async_results = await AsyncWeChatTemplateChannel(ac).send(deliveries("wechat.template", 4, TPL))
    assert [(r.key, r.outcome, r.reason) for r in sync_results] == [
        (r.key, r.outcome, r.reason) for r in async_results
    ]
    mass = await AsyncWeChatMassChannel(ac).send(deliveries("wechat.mass", 10))
    assert {r.outcome for r in mass} == {SendOutcome.SENT}

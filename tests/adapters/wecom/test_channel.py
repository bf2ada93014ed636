"""wecom.mass and wecom.welcome channels: pending until staff confirm, results pulled back
into the ledger, no blind re-sends; campaign rules with the configurable receive cap."""

from __future__ import annotations

import pytest

from membermkt.channels.wecom import (
    AsyncWeComMassChannel,
    WeComMassChannel,
    WeComWelcomeChannel,
    apull_mass_results,
    ledger_marks,
    mass_rules,
    pull_mass_results,
)
from membermkt.channels.wecom.api.mass import CustomerResult
from membermkt.core.delivery import Delivery, DeliveryRecord, DeliveryStatus, SendOutcome
from membermkt.core.quotas import WECOM_MASS_DAYS_IN_MONTH, WECOM_MASS_LEGACY_MONTHLY
from membermkt.engine.runner import CampaignRunner
from membermkt.errors import UsageError
from membermkt.stores.memory import InMemoryStore

from .conftest import make_client

TEXT = {"text": "周末鲜果五折", "sender": "clerk1"}


def nonzero(counts):
    return {k: v for k, v in counts.items() if v}


def d(key: str, address: str, payload=None, channel: str = "wecom.mass") -> Delivery:
    return Delivery(
        key=key,
        campaign_id="c1",
        member_id=f"m-{address}",
        channel=channel,
        address=address,
        variant="a",
        payload=payload if payload is not None else TEXT,
    )


async def test_mass_channel_results(corp, emu, clock, kind):
    """Accepted customers are pending (platform_id = msgid); non-contacts, duplicate
    addresses and invalid content fail permanently; one call per content+sender."""
    for e in ("wm1", "wm2", "wm3"):
        corp.add_customer("clerk1", e)
    client = make_client(kind, emu, clock, [])
    chan = (WeComMassChannel if kind == "sync" else AsyncWeComMassChannel)(client)  # type: ignore[arg-type]
    batch = [
        d("k1", "wm1"),
        d("k2", "wm2"),
        d("k3", "stranger"),
        d("k4", "wm1"),
        d("k5", "wm3", {"text": "x" * 4001}),
    ]
    res = chan.send(batch)
    if kind == "async":
        res = await res  # type: ignore[misc]
    out = {r.key: r for r in res}
    assert [r.key for r in res] == ["k1", "k2", "k3", "k4", "k5"]
    assert out["k1"].outcome is SendOutcome.PENDING
    assert out["k2"].platform_id == out["k1"].platform_id
    assert (out["k3"].outcome, out["k3"].reason) == (SendOutcome.PERMANENT, "fail_list")
    assert (out["k4"].outcome, out["k4"].reason) == (SendOutcome.PERMANENT, "duplicate_address")
    assert out["k5"].outcome is SendOutcome.PERMANENT
    assert emu.calls["/cgi-bin/externalcontact/add_msg_template"] == 1
    assert chan.capabilities.address_kind == "external_userid"
    assert chan.capabilities.address_namespace == corp.corpid


def test_lost_answer_is_unknown_and_not_resent(corp, emu, client):
    """add_msg_template has no idempotency key: a lost answer is 'unknown', one task."""
    corp.add_customer("clerk1", "wm1")
    emu.faults.next("timeout", api="/cgi-bin/externalcontact/add_msg_template")
    (res,) = WeComMassChannel(client).send([d("k1", "wm1")])
    assert res.outcome is SendOutcome.UNKNOWN
    assert emu.calls["/cgi-bin/externalcontact/add_msg_template"] == 1
    assert len(corp.masses) == 1


def test_campaign_through_the_runner_then_results_into_the_ledger(corp, emu, clock, client):
    """Runner → pending_confirmation in the ledger; staff confirm (receive cap 4/month hits
    one customer); pull_mass_results marks sent / failed; a second pull changes nothing."""
    emu.mass_cap = WECOM_MASS_LEGACY_MONTHLY
    for i in range(6):
        corp.add_customer("clerk1", f"wm{i}")
    capped = "wm5"
    for n in range(4):  # wm5 already got 4 mass messages this month
        pre = client.add_msg_template(external_userids=[capped], sender="clerk1", text=f"p{n}")
        corp.confirm_mass(pre.msgid, "clerk1")
    store = InMemoryStore()
    now = clock.now()
    store.record_plan([d(f"k{i}", f"wm{i}") for i in range(6)], now=now)
    runner = CampaignRunner(store, WeComMassChannel(client), clock=clock, worker="w1")
    result = runner.run("c1")
    assert nonzero(store.status_counts("c1")) == {"pending_confirmation": 6}
    (rec,) = [r for r in store.deliveries("c1") if r.key == "k0"]
    msgid = rec.platform_id
    assert msgid is not None
    assert result is not None
    report = pull_mass_results(client, store, "c1", now=now)
    assert (report.sent, report.failed, report.pending) == (0, 0, 6)
    corp.confirm_mass(msgid, "clerk1")
    clock.advance(60)
    report = pull_mass_results(client, store, "c1", now=clock.now())
    assert (report.sent, report.failed, report.pending) == (5, 1, 0)
    assert nonzero(store.status_counts("c1")) == {"sent": 5, "failed": 1}
    failed = next(iter(store.deliveries("c1", status=DeliveryStatus.FAILED)))
    assert (failed.delivery.address, failed.reason) == (capped, "wecom:receive_cap")
    again = pull_mass_results(client, store, "c1", now=clock.now())
    assert (again.sent, again.failed, again.pending) == (0, 0, 0)


async def test_async_pull(corp, emu, clock):
    corp.add_customer("clerk1", "wm1")
    client = make_client("async", emu, clock, [])
    store = InMemoryStore()
    store.record_plan([d("k1", "wm1")], now=clock.now())
    (claimed,) = store.claim("c1", worker="w", limit=10, now=clock.now())
    (res,) = await AsyncWeComMassChannel(client).send([claimed.delivery])  # type: ignore[arg-type]
    store.mark("k1", DeliveryStatus.PENDING, now=clock.now(), platform_id=res.platform_id)
    corp.confirm_mass(res.platform_id or "", "clerk1")
    report = await apull_mass_results(client, store, "c1", now=clock.now())  # type: ignore[arg-type]
    assert report.sent == 1
    assert nonzero(store.status_counts("c1")) == {"sent": 1}


def test_ledger_marks_is_pure_and_prefers_sent():
    """Status 1 → sent; 2/3 → failed with a reason; 0 or no row → stays pending; a customer
    with rows under two senders is sent if either row says so."""
    recs = [
        DeliveryRecord(delivery=d(f"k{i}", f"wm{i}"), status=DeliveryStatus.PENDING)
        for i in range(5)
    ]
    results = [
        CustomerResult(external_userid="wm0", userid="a", status=1),
        CustomerResult(external_userid="wm1", userid="a", status=2),
        CustomerResult(external_userid="wm2", userid="a", status=3),
        CustomerResult(external_userid="wm3", userid="a", status=0),
        CustomerResult(external_userid="wm1", userid="b", status=1),
    ]
    marks = {m.key: (m.status, m.reason) for m in ledger_marks(recs, results)}
    assert marks == {
        "k0": (DeliveryStatus.SENT, None),
        "k1": (DeliveryStatus.SENT, None),
        "k2": (DeliveryStatus.FAILED, "wecom:receive_cap"),
    }


def test_mass_rules_receive_cap_is_selectable():
    assert mass_rules().caps == (WECOM_MASS_DAYS_IN_MONTH,)
    assert mass_rules("4_per_month").caps == (WECOM_MASS_LEGACY_MONTHLY,)
    assert mass_rules("1_per_day").caps[0].limit == 1
    with pytest.raises(UsageError):
        mass_rules("5_per_month")


def test_welcome_channel(corp, emu, client):
    """One call per delivery; a reused code is a permanent 41051; an ambiguous answer is
    unknown (single-use code, never re-sent)."""
    corp.add_customer("clerk1", "wm1")
    corp.add_customer("clerk1", "wm2")
    codes = {w.external_userid: c for c, w in corp.welcome_codes.items()}
    chan = WeComWelcomeChannel(client)
    w = "wecom.welcome"
    ok, again = chan.send(
        [
            d("w1", "wm1", {"welcome_code": codes["wm1"], "text": "欢迎"}, w),
            d("w2", "wm1", {"welcome_code": codes["wm1"], "text": "欢迎"}, w),
        ]
    )
    assert ok.outcome is SendOutcome.SENT
    assert (again.outcome, again.reason) == (SendOutcome.PERMANENT, "errcode:41051")
    emu.faults.next("timeout", api="/cgi-bin/externalcontact/send_welcome_msg")
    (lost,) = chan.send([d("w3", "wm2", {"welcome_code": codes["wm2"], "text": "hi"}, w)])
    assert lost.outcome is SendOutcome.UNKNOWN
    assert corp.welcome_counts == {"wm1": 1, "wm2": 1}
    with pytest.raises(UsageError):
        chan.send([d("w4", "wm2", {"text": "hi"}, "wecom.mass")])

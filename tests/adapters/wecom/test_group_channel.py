"""wecom.group: customer-group mass send through the staff's assistant (chat_type=group) —
the emulator's rules and refusals, the channel, the planner and results into the ledger."""

from __future__ import annotations

import datetime as dt

import attrs
import httpx
import pytest

from membermkt.channels.wecom import (
    AsyncWeComGroupChannel,
    GroupSendPolicy,
    WeComGroupChannel,
    apull_group_results,
    group_ledger_marks,
    group_recipient_id,
    group_rules,
    plan_group_send,
    pull_group_results,
)
from membermkt.channels.wecom.api.groupchat import GroupChat
from membermkt.channels.wecom.api.mass import CustomerResult
from membermkt.channels.wecom.groupsend import _capabilities
from membermkt.core.campaigns import Campaign, Schedule, SkipReason, Variant, validate
from membermkt.core.delivery import Delivery, DeliveryRecord, DeliveryStatus, SendOutcome
from membermkt.core.quotas import (
    WECOM_GROUP_DAYS_IN_MONTH,
    WECOM_GROUP_LEGACY_MONTHLY,
    WECOM_MASS_LEGACY_MONTHLY,
    Cap,
    PastSend,
)
from membermkt.engine.runner import CampaignRunner
from membermkt.errors import UsageError
from membermkt.segments import TRUE
from membermkt.stores.memory import InMemoryStore

from .conftest import CORPID, SECRET, make_client

API = "/cgi-bin/externalcontact/add_msg_template"
TEXT = {"text": "今晚八点群内抢红包", "sender": "clerk1"}


def d(key: str, chat_id: str, payload=None) -> Delivery:
    return Delivery(
        key=key,
        campaign_id="g1",
        member_id=group_recipient_id(CORPID, chat_id),
        channel="wecom.group",
        address=chat_id,
        variant="a",
        payload=payload if payload is not None else TEXT,
    )


def raw(emu, body: dict) -> dict:
    """POST add_msg_template as-is (past the client's own checks)."""
    with httpx.Client(transport=emu.transport(), base_url="https://qyapi.weixin.qq.com") as h:
        token = h.get("/cgi-bin/gettoken", params={"corpid": CORPID, "corpsecret": SECRET})
        r = h.post(API, params={"access_token": token.json()["access_token"]}, json=body)
        return dict(r.json())


def nonzero(counts):
    return {k: v for k, v in counts.items() if v}


def test_emulator_group_rules(corp, emu):
    """Rule wecom.group_sender: sender is required; ≤ 2000 groups; a group the sender does
    not own (or that does not exist) comes back in fail_list; without chat_id_list every
    group of the sender."""
    corp.add_chat("wrA", "clerk1", customers=["wm1"])
    corp.add_chat("wrB", "clerk1")
    corp.add_chat("wrC", "clerk2")
    text = {"content": "hi"}
    assert raw(emu, {"chat_type": "group", "text": text})["errcode"] == 40058
    too_many = [f"wr{i}" for i in range(2001)]
    answer = raw(
        emu, {"chat_type": "group", "sender": "clerk1", "chat_id_list": too_many, "text": text}
    )
    assert answer["errcode"] == 40058
    assert raw(emu, {"chat_type": "party", "sender": "clerk1", "text": text})["errcode"] == 40058
    ok = raw(
        emu,
        {
            "chat_type": "group",
            "sender": "clerk1",
            "chat_id_list": ["wrA", "wrC", "wrX"],
            "text": text,
        },
    )
    assert ok["errcode"] == 0
    assert ok["fail_list"] == ["wrC", "wrX"]
    every = raw(emu, {"chat_type": "group", "sender": "clerk1", "text": text})
    assert corp.masses[every["msgid"]].targets == {"clerk1": ["wrA", "wrB"]}
    assert corp.group_mass_count("wrA") == 2
    assert corp.mass_count("wrA") == 0  # customer mass counts stay apart


async def test_group_channel_sends(corp, emu, clock, kind):
    """Accepted groups are pending (platform_id = msgid); another owner's group, duplicate
    addresses, bad content and a missing sender fail permanently; one call per
    content+sender."""
    for c in ("wrA", "wrB"):
        corp.add_chat(c, "clerk1")
    corp.add_chat("wrC", "clerk2")
    client = make_client(kind, emu, clock, [])
    cls = WeComGroupChannel if kind == "sync" else AsyncWeComGroupChannel
    chan = cls(client)  # type: ignore[arg-type]
    batch = [
        d("k1", "wrA"),
        d("k2", "wrB"),
        d("k3", "wrC"),
        d("k4", "wrA"),
        d("k5", "wrB", {"text": "x" * 4001, "sender": "clerk1"}),
        d("k6", "wrB", {"text": "no sender"}),
    ]
    res = chan.send(batch)
    if kind == "async":
        res = await res  # type: ignore[misc]
    out = {r.key: r for r in res}
    assert [r.key for r in res] == ["k1", "k2", "k3", "k4", "k5", "k6"]
    assert out["k1"].outcome is SendOutcome.PENDING
    assert out["k1"].platform_id
    assert out["k2"].platform_id == out["k1"].platform_id
    assert (out["k3"].outcome, out["k3"].reason) == (SendOutcome.PERMANENT, "fail_list")
    assert (out["k4"].outcome, out["k4"].reason) == (SendOutcome.PERMANENT, "duplicate_address")
    assert out["k5"].outcome is SendOutcome.PERMANENT
    assert out["k6"].outcome is SendOutcome.PERMANENT
    assert emu.calls[API] == 1
    mass = corp.masses[out["k1"].platform_id]
    assert (mass.chat_type, mass.creator) == ("group", "clerk1")
    assert chan.capabilities.address_kind == "chat_id"
    assert chan.capabilities.max_batch_size == 2000


def test_lost_answer_is_unknown_and_not_resent(corp, emu, client):
    corp.add_chat("wrA", "clerk1")
    emu.faults.next("timeout", api=API)
    (res,) = WeComGroupChannel(client).send([d("k1", "wrA")])
    assert res.outcome is SendOutcome.UNKNOWN
    assert emu.calls[API] == 1
    assert corp.group_mass_count("wrA") == 1


def test_runner_then_results_into_the_ledger(corp, emu, clock, client):
    """Rule wecom.group_cap: runner → pending_confirmation; the owner confirms (one group
    is at its receive cap, one was dismissed); pull_group_results marks sent / failed; a
    second pull is a no-op."""
    emu.mass_cap = WECOM_MASS_LEGACY_MONTHLY
    for i in range(5):
        corp.add_chat(f"wr{i}", "clerk1", customers=[f"wm{i}"])
    for n in range(4):  # wr4 already got 4 group messages this month
        pre = client.add_msg_template(
            chat_type="group", chat_ids=["wr4"], sender="clerk1", text=f"p{n}"
        )
        corp.confirm_mass(pre.msgid, "clerk1")
    # customer mass messages to the members do not use up the group's cap
    pre = client.add_msg_template(external_userids=["wm0"], sender="clerk1", text="c")
    store = InMemoryStore()
    now = clock.now()
    store.record_plan([d(f"k{i}", f"wr{i}") for i in range(5)], now=now)
    CampaignRunner(store, WeComGroupChannel(client), clock=clock, worker="w1").run("g1")
    assert nonzero(store.status_counts("g1")) == {"pending_confirmation": 5}
    msgid = next(iter(store.deliveries("g1"))).platform_id
    assert msgid is not None
    report = pull_group_results(client, store, "g1", now=now)
    assert (report.sent, report.failed, report.pending) == (0, 0, 5)
    corp.dismiss_chat("wr3")
    corp.confirm_mass(msgid, "clerk1")
    clock.advance(60)
    report = pull_group_results(client, store, "g1", now=clock.now())
    assert (report.sent, report.failed, report.pending) == (3, 2, 0)
    failed = {
        r.delivery.address: r.reason for r in store.deliveries("g1", status=DeliveryStatus.FAILED)
    }
    assert failed == {"wr3": "wecom:group_unavailable", "wr4": "wecom:receive_cap"}
    assert sorted(r.chat_id for r in corp.group_receipts if r.msgid == msgid) == [
        "wr0",
        "wr1",
        "wr2",
    ]
    again = pull_group_results(client, store, "g1", now=clock.now())
    assert (again.sent, again.failed, again.pending) == (0, 0, 0)


async def test_async_pull(corp, emu, clock):
    corp.add_chat("wrA", "clerk1")
    client = make_client("async", emu, clock, [])
    store = InMemoryStore()
    store.record_plan([d("k1", "wrA")], now=clock.now())
    (claimed,) = store.claim("g1", worker="w", limit=10, now=clock.now())
    (res,) = await AsyncWeComGroupChannel(client).send([claimed.delivery])  # type: ignore[arg-type]
    store.mark("k1", DeliveryStatus.PENDING, now=clock.now(), platform_id=res.platform_id)
    corp.confirm_mass(res.platform_id or "", "clerk1")
    report = await apull_group_results(client, store, "g1", now=clock.now())  # type: ignore[arg-type]
    assert report.sent == 1
    assert nonzero(store.status_counts("g1")) == {"sent": 1}


def test_group_results_api_answers_chat_ids(corp, client, clock):
    corp.add_chat("wrA", "clerk1")
    msg = client.add_msg_template(chat_type="group", chat_ids=["wrA"], sender="clerk1", text="x")
    corp.confirm_mass(msg.msgid, "clerk1")
    (row,) = client.mass_results(msg.msgid)
    assert (row.chat_id, row.external_userid, row.status) == ("wrA", "", 1)
    now = int(clock())
    span = {"start_time": now - 60, "end_time": now + 60}
    groups = client.groupmsg_list(chat_type="group", **span)
    assert [m.msgid for m in groups.items] == [msg.msgid]
    assert client.groupmsg_list(chat_type="single", **span).items == ()


def test_group_ledger_marks_is_pure():
    recs = [
        DeliveryRecord(delivery=d(f"k{i}", f"wr{i}"), status=DeliveryStatus.PENDING)
        for i in range(4)
    ]
    results = [
        CustomerResult(external_userid="", chat_id="wr0", userid="a", status=1),
        CustomerResult(external_userid="", chat_id="wr1", userid="a", status=3),
        CustomerResult(external_userid="", chat_id="wr2", userid="a", status=0),
        CustomerResult(external_userid="wr3", userid="a", status=1),  # a customer row
    ]
    marks = {m.key: (m.status, m.reason) for m in group_ledger_marks(recs, results)}
    assert marks == {
        "k0": (DeliveryStatus.SENT, None),
        "k1": (DeliveryStatus.FAILED, "wecom:receive_cap"),
    }


def group_campaign(content=None, **kw) -> Campaign:
    return Campaign(
        id="g1",
        audience=TRUE,
        channel="wecom.group",
        variants=kw.pop("variants", None) or [Variant(name="a", content=content or {"text": "hi"})],
        address_kind="chat_id",
        address_namespace=CORPID,
        **kw,
    )


def test_plan_group_send_caps_and_owners():
    """One delivery per group with its owner as sender; another owner's group and a group
    at its per-group cap are skipped; keys are stable."""
    as_of = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
    chats = [
        GroupChat(chat_id="wr1", owner="clerk1"),
        GroupChat(chat_id="wr2", owner="clerk2"),
        GroupChat(chat_id="wr3", owner="clerk1"),
        GroupChat(chat_id="wr1", owner="clerk1"),
        GroupChat(chat_id="wr4"),
    ]
    rid3 = group_recipient_id(CORPID, "wr3")
    history = {
        rid3: [
            PastSend(member_id=rid3, channel="wecom.group", at=as_of - dt.timedelta(days=1))
            for _ in range(4)
        ]
    }
    campaign = group_campaign(rules=group_rules("4_per_month"))
    out, skips = plan_group_send(campaign, CORPID, chats, as_of=as_of, history=history)
    assert [(x.address, x.payload["sender"]) for x in out] == [("wr1", "clerk1"), ("wr2", "clerk2")]
    assert {x.member_id for x in out} == {group_recipient_id(CORPID, c) for c in ("wr1", "wr2")}
    assert {s.member_id: s.reason for s in skips} == {
        rid3: SkipReason.PLATFORM_QUOTA,
        group_recipient_id(CORPID, "wr4"): SkipReason.NO_ADDRESS,
    }
    # the default cap (days in the month) lets wr3 through; keys are stable across re-plans
    again, _ = plan_group_send(group_campaign(), CORPID, chats, as_of=as_of, history=history)
    assert [x.address for x in again] == ["wr1", "wr2", "wr3"]
    assert [x.key for x in again][:2] == [x.key for x in out]
    only, skipped = plan_group_send(
        group_campaign(), CORPID, chats[:2], as_of=as_of, sender="clerk1"
    )
    assert [x.address for x in only] == ["wr1"]
    assert skipped[0].reason is SkipReason.NO_ADDRESS
    with pytest.raises(UsageError):  # blank content: the platform refuses it
        plan_group_send(group_campaign({"text": ""}), CORPID, chats, as_of=as_of)
    with pytest.raises(UsageError, match="address_kind"):
        plan_group_send(
            attrs.evolve(group_campaign(), address_kind="external_userid"),
            CORPID,
            chats,
            as_of=as_of,
        )
    with pytest.raises(UsageError, match="address_namespace"):
        plan_group_send(group_campaign(), "wwOtherCorp", chats, as_of=as_of)
    with pytest.raises(UsageError):  # a member field cannot be rendered for a group
        plan_group_send(group_campaign({"text": "hi {{ city }}"}), CORPID, chats, as_of=as_of)


def test_plan_group_send_variants_holdout_and_campaign_caps():
    """Groups get variants and a holdout by the same keyed hash as members; a campaign cap
    counts the group's sends on the channel; outside the schedule nothing is planned."""
    as_of = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
    chats = [GroupChat(chat_id=f"wr{i}", owner="clerk1") for i in range(200)]
    ab = group_campaign(
        variants=[
            Variant(name="a", content={"text": "A"}),
            Variant(name="b", content={"text": "B"}),
        ],
        holdout=0.2,
    )
    out, skips = plan_group_send(ab, CORPID, chats, as_of=as_of)
    assert {x.variant for x in out} == {"a", "b"}
    assert all(x.payload["text"] == x.variant.upper() for x in out)
    held = [s for s in skips if s.reason is SkipReason.HOLDOUT]
    assert 20 <= len(held) <= 60
    assert all(ab.variant_for(s.member_id) == "holdout" for s in held)
    rid = group_recipient_id(CORPID, "wr0")
    capped = group_campaign(caps=[Cap(limit=1, period="day")])
    hist = {rid: [PastSend(member_id=rid, channel="wecom.group", at=as_of)]}
    _, s = plan_group_send(capped, CORPID, chats[:1], as_of=as_of, history=hist)
    assert s[0].reason is SkipReason.FREQUENCY_CAP
    later = group_campaign(schedule=Schedule(start=as_of + dt.timedelta(days=1)))
    none, s = plan_group_send(later, CORPID, chats[:3], as_of=as_of)
    assert none == []
    assert {x.reason for x in s} == {SkipReason.OUTSIDE_SCHEDULE}


def test_rules_and_campaign_validation():
    assert group_rules().caps == (WECOM_GROUP_DAYS_IN_MONTH,)
    assert group_rules("4_per_month").caps == (WECOM_GROUP_LEGACY_MONTHLY,)
    with pytest.raises(UsageError):
        group_rules("9_per_day")
    ok = Campaign(
        id="g1",
        audience=TRUE,
        channel="wecom.group",
        variants=[Variant(name="a", content={"text": "hi"})],
        address_kind="chat_id",
        address_namespace=CORPID,
    )
    assert validate(ok, capabilities=_capabilities(CORPID)) == ()
    bad = Campaign(
        id="g2",
        audience=TRUE,
        channel="wecom.group",
        variants=[
            Variant(
                name="a",
                content={"text": "x" * 4001, "attachments": [{"msgtype": "voice"}]},
            )
        ],
        address_kind="chat_id",
    )
    paths = {p.path for p in validate(bad)}
    assert "variants[0](a).content.text" in paths
    assert "variants[0](a).content.attachments[0].msgtype" in paths


def test_handoff_policy_rechecks_the_group_cap_from_the_ledger(corp, emu, clock, client):
    """Rule wecom.group_cap: at hand-off GroupSendPolicy counts the group's sends by other
    campaigns in the ledger (planned before they happened) and skips a group at its cap."""
    corp.add_chat("wr1", "clerk1")
    corp.add_chat("wr2", "clerk1")
    store = InMemoryStore()
    now = clock.now()
    campaign = group_campaign(rules=group_rules("4_per_month"))
    chats = [GroupChat(chat_id="wr1", owner="clerk1"), GroupChat(chat_id="wr2", owner="clerk1")]
    planned, _ = plan_group_send(
        campaign,
        CORPID,
        chats,
        as_of=now,
        history=store.past_sends(
            [group_recipient_id(CORPID, "wr1")], since=now - dt.timedelta(days=31)
        ),
    )
    assert len(planned) == 2
    # meanwhile another campaign sends wr1 four group messages
    rid = group_recipient_id(CORPID, "wr1")
    others = [
        Delivery(
            key=f"o{i}",
            campaign_id="g0",
            member_id=rid,
            channel="wecom.group",
            address="wr1",
            variant="a",
            payload=TEXT,
        )
        for i in range(4)
    ]
    store.record_plan(others, now=now)
    for o in store.claim("g0", worker="w0", limit=10, now=now):
        store.mark(o.key, DeliveryStatus.SENT, now=now)
    store.record_plan(planned, now=now)
    policy = GroupSendPolicy(campaign, store)
    CampaignRunner(store, WeComGroupChannel(client), clock=clock, worker="w", policy=policy).run(
        "g1"
    )
    by_addr = {r.delivery.address: r for r in store.deliveries("g1")}
    assert by_addr["wr1"].status is DeliveryStatus.SKIPPED
    assert (by_addr["wr1"].reason or "").startswith("platform_quota")
    assert by_addr["wr2"].status is DeliveryStatus.PENDING
    assert corp.group_mass_count("wr1") == 0
    with pytest.raises(UsageError):
        GroupSendPolicy(campaign)

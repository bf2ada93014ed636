"""wecom.mass under recovery (#12 item 1): add_msg_template has no idempotency key, so a
crashed batch is never resent — its deliveries end `unknown` and are listed for
reconciliation; an in-doubt delivery whose task msgid the ledger knows is settled with
get_groupmsg_send_result (`lookup`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from membermkt.channels.wecom import WeComMassChannel
from membermkt.core.delivery import Delivery, DeliveryStatus, SendOutcome, SendResult
from membermkt.engine.runner import CampaignRunner
from membermkt.stores.memory import InMemoryStore

ADD = "/cgi-bin/externalcontact/add_msg_template"
TEXT = {"text": "周末鲜果五折", "sender": "clerk1"}


def d(key: str, address: str) -> Delivery:
    return Delivery(
        key=key,
        campaign_id="c1",
        member_id=f"m-{key}",
        channel="wecom.mass",
        address=address,
        variant="A",
        payload=TEXT,
    )


class Crash(BaseException):
    """The runner process dies right after WeCom accepted the task."""


class CrashAfterAccept(WeComMassChannel):
    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        super().send(batch)
        raise Crash


class TaskKnown(WeComMassChannel):
    """WeCom accepted the task (msgid known) but the channel cannot vouch for the members."""

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        return [
            SendResult(
                key=r.key, outcome=SendOutcome.UNKNOWN, reason="in doubt", platform_id=r.platform_id
            )
            for r in super().send(batch)
        ]


def test_a_crashed_wecom_batch_is_listed_never_resent(corp, emu, clock, client) -> None:
    for i in range(3):
        corp.add_customer("clerk1", f"wm{i}")
    store = InMemoryStore()
    store.record_plan([d(f"k{i}", f"wm{i}") for i in range(3)], now=clock.now())
    with pytest.raises(Crash):
        CampaignRunner(store, CrashAfterAccept(client), clock=clock).run("c1")
    clock.advance(5)
    result = CampaignRunner(
        store, WeComMassChannel(client), clock=clock, lease=dt.timedelta(0)
    ).run("c1")
    assert emu.calls[ADD] == 1, "add_msg_template is never resent"
    assert len(corp.masses) == 1
    assert sorted(result.in_doubt) == ["k0", "k1", "k2"]
    assert {r.status for r in store.deliveries("c1")} == {DeliveryStatus.UNKNOWN}


def test_an_in_doubt_task_with_a_known_msgid_is_looked_up(corp, emu, clock, client) -> None:
    for i in range(3):
        corp.add_customer("clerk1", f"wm{i}")
    store = InMemoryStore()
    store.record_plan([d(f"k{i}", f"wm{i}") for i in range(3)], now=clock.now())
    CampaignRunner(store, TaskKnown(client), clock=clock).run("c1")
    recs = list(store.deliveries("c1"))
    assert {r.status for r in recs} == {DeliveryStatus.UNKNOWN}
    (msgid,) = {r.platform_id for r in recs}
    assert msgid
    clock.advance(5)
    # staff have not confirmed yet: nothing certain, the deliveries stay in doubt
    CampaignRunner(store, WeComMassChannel(client), clock=clock).run("c1")
    assert store.status_counts("c1")["unknown"] == 3
    corp.confirm_mass(msgid, "clerk1")
    clock.advance(60)
    result = CampaignRunner(store, WeComMassChannel(client), clock=clock).run("c1")
    assert result.reconciled == 3
    assert store.status_counts("c1")["sent"] == 3
    assert emu.calls[ADD] == 1, "settled by get_groupmsg_send_result, never resent"

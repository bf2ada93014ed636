"""Job-result callbacks end to end (#12 items 6, 11): the emulator queues
``MASSSENDJOBFINISH`` and ``TEMPLATESENDJOBFINISH``; the callback handler records each once in
the store (a re-push to another handler records nothing) and the report reads them."""

from __future__ import annotations

import datetime as dt

from membermkt import Identity, Member, MemberState
from membermkt.channels.wechat import CallbackHandler, Endpoint
from membermkt.channels.wechat.channel import WeChatMassChannel, WeChatTemplateChannel
from membermkt.channels.wechat.client import OfficialAccount
from membermkt.core.campaigns import Campaign, Variant
from membermkt.engine.campaigns import CampaignReport, CampaignRunner, prepare
from membermkt.segments import TRUE
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID = "wxjobresults001"
AS_OF = dt.datetime(2026, 3, 10, 4, tzinfo=dt.UTC)


async def no_sleep(seconds: float) -> None:
    """Waits are skipped."""


def _world(n: int) -> tuple[WeChatEmulator, OfficialAccount, InMemoryStore, list[Member]]:
    emu = WeChatEmulator(seed=9, limits=())
    acct = emu.add_account(APPID, "secret")
    acct.add_followers(f"o{i}" for i in range(n))
    acct.add_template("TPL")
    client = OfficialAccount(
        APPID, "secret", transport=emu.transport(), budgets=(), retry=RetryPolicy(attempts=1)
    )
    people = [
        Member(
            f"m{i}",
            identities=[Identity("openid", f"o{i}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    ]
    store = InMemoryStore()
    store.upsert_members(people)
    return emu, client, store, people


def _post_all(emu: WeChatEmulator, store: InMemoryStore) -> tuple[int, int]:
    pushes = emu.job_finish_pushes(APPID)
    handler = CallbackHandler(Endpoint(appid=APPID, token=emu.accounts[APPID].token), store=store)
    for push in pushes:
        assert handler.handle(push.method, dict(push.query), push.body)[0] == 200
    handler.close()
    return handler.outcomes["accepted"], handler.outcomes["duplicate"]


def test_template_job_results_are_queued_and_recorded_once() -> None:
    """Rule: every accepted template send queues a TEMPLATESENDJOBFINISH (Status "success",
    MsgID = the send's msgid); the handler records each once in the store, keyed by appid,
    event and MsgID — a second handler (another process) sees them as duplicates."""
    n = 3
    emu, client, store, people = _world(n)
    c = Campaign(
        id="tpl",
        audience=TRUE,
        channel="wechat.template",
        variants=(Variant(name="A", content={"template_id": "TPL", "data": {"k": "v"}}),),
        address_namespace=APPID,
    )
    prepare(store, c, people, {}, AS_OF)
    CampaignRunner(store, WeChatTemplateChannel(client), sleep=no_sleep).run(c.id)
    msgids = sorted(str(r.platform_id) for r in store.deliveries(c.id))
    pushes = emu.job_finish_pushes(APPID)
    assert [b"TEMPLATESENDJOBFINISH" in p.body for p in pushes] == [True] * n
    for p in pushes:  # put them back for the handler
        emu.__dict__["_job_finish"].append((APPID, lambda p=p: p))
    assert _post_all(emu, store) == (n, 0)
    keys = [f"{APPID}:TEMPLATESENDJOBFINISH:{m}" for m in msgids]
    found = store.job_results(keys)
    assert sorted(found) == sorted(keys)
    assert {v["status"] for v in found.values()} == {"success"}
    for p in pushes:
        emu.__dict__["_job_finish"].append((APPID, lambda p=p: p))
    assert _post_all(emu, store) == (0, n), "recorded once, in the store"


def test_mass_job_result_reconciles_the_report() -> None:
    """Rule: the report built with the store's job results shows the platform's counts next
    to the ledger's: equal → reconciled; before any result → a mismatch (result missing)."""
    n = 6
    emu, client, store, people = _world(n)
    c = Campaign(
        id="mass",
        audience=TRUE,
        channel="wechat.mass",
        variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "x"}}),),
        address_namespace=APPID,
    )
    prepare(store, c, people, {}, AS_OF)
    CampaignRunner(store, WeChatMassChannel(client), sleep=no_sleep).run(c)
    before = CampaignReport.build(c, store.deliveries(c.id), job_results=store)
    assert before.platform is not None
    assert before.platform.mismatch
    assert len(before.platform.missing) == 1
    assert _post_all(emu, store) == (1, 0)
    after = CampaignReport.build(c, store.deliveries(c.id), job_results=store)
    assert after.platform is not None
    assert not after.platform.mismatch
    assert (after.platform.total, after.platform.sent, after.platform.ledger_sent) == (n, n, n)
    assert "Reconciled with the platform" in after._repr_html_()
    assert "reconciled" in repr(after)

"""WeCom and AsyncWeCom against the emulator: one suite for both clients."""

from __future__ import annotations

import pytest

from membermkt.channels.wecom import encode_state
from membermkt.channels.wecom.api.tags import CorpTag, TagGroup
from membermkt.channels.wecom.flows import plan_corp_tag_sync
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.core.quotas import WECOM_MASS_DAILY
from membermkt.errors import (
    ConfigError,
    PermanentDeliveryError,
    PlatformError,
    RateLimitError,
    TokenError,
    UsageError,
)
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wecom import WeComEmulator
from membermkt.tokens import MemoryTokenCache

from .conftest import CORPID, SECRET, Twin, make_client

EC = "/cgi-bin/externalcontact"

# ------------------------------------------------------------------------- tokens


async def test_token_fetched_once_and_reused(twin: Twin, emu, corp):
    """One gettoken serves many calls while valid."""
    corp.add_customer("clerk1", "wm1")
    for _ in range(4):
        await twin.list_contacts("clerk1")
    assert emu.calls["/cgi-bin/gettoken"] == 1


async def test_one_token_per_secret_in_a_shared_cache(kind, emu, clock, corp):
    """Two secrets of one corp share a TokenCache without sharing a token."""
    cache = MemoryTokenCache()
    a = Twin(make_client(kind, emu, clock, [], token_cache=cache), [])
    b = Twin(make_client(kind, emu, clock, [], token_cache=cache, secret="app-secret"), [])
    await a.follow_users()
    await b.follow_users()
    await a.follow_users()
    assert emu.calls["/cgi-bin/gettoken"] == 2
    assert len({t for t, _ in corp.valid_tokens.values()}) == 2
    assert a.client.tokens.policy.key != b.client.tokens.policy.key
    assert SECRET not in a.client.tokens.policy.key


async def test_invalid_token_is_refreshed_and_replayed_once(twin: Twin, emu):
    """40014 on a business call: compare-then-expire, one fetch, one replay."""
    await twin.follow_users()
    emu.faults.next("token_invalidate", api=f"{EC}/get_follow_user_list")
    assert await twin.follow_users() == ("clerk1", "clerk2", "clerk3")
    assert emu.calls["/cgi-bin/gettoken"] == 2
    emu.faults.next("token_invalidate", "token_invalidate", api=f"{EC}/get_follow_user_list")
    with pytest.raises(TokenError):
        await twin.follow_users()


async def test_expired_token_refreshed_before_use(twin: Twin, emu, clock):
    await twin.follow_users()
    clock.advance(7200 - 10)
    await twin.follow_users()
    assert emu.calls["/cgi-bin/gettoken"] == 2
    assert emu.errcodes[42001] == 0


async def test_wrong_secret_is_a_config_token_error_without_retry(kind, emu, clock, corp):
    """40001 is an invalid secret on WeCom: TokenError, one call, no replay."""
    twin = Twin(make_client(kind, emu, clock, [], secret="wrong"), [])
    with pytest.raises(TokenError) as err:
        await twin.follow_users()
    assert err.value.errcode == 40001
    assert emu.calls["/cgi-bin/gettoken"] == 1


async def test_busy_and_concurrency_limit_are_retried(twin: Twin, emu):
    """-1 and 45033 are transient: retried with backoff (injected sleep)."""
    emu.faults.next("busy", "concurrency", api=f"{EC}/get_follow_user_list")
    assert await twin.follow_users() == ("clerk1", "clerk2", "clerk3")
    assert emu.calls[f"{EC}/get_follow_user_list"] == 3
    assert len(twin.sleeps) == 2


def test_constructor_refuses_bad_config(emu):
    from membermkt.channels.wecom import WeCom

    with pytest.raises(ConfigError):
        WeCom("", SECRET)
    with pytest.raises(ConfigError):
        WeCom(CORPID, "")


# ------------------------------------------------------------------------- contacts


async def test_contacts_detail_and_paging(twin: Twin, corp):
    """list / get / batch get_by_user with cursor paging over 150 customers."""
    for i in range(150):
        corp.add_customer("clerk1", f"wm{i:03d}", state="store-1" if i % 2 else None)
    corp.add_customer("clerk2", "wm000", name="Ann", unionid="u-ann")
    assert await twin.list_contacts("clerk3") == ()
    ids = await twin.list_contacts("clerk1")
    assert len(ids) == 150
    detail = await twin.get_contact("wm000")
    assert {f.userid for f in detail.follow_users} == {"clerk1", "clerk2"}
    assert detail.contact.unionid is None
    page = await twin.contacts_by_user(["clerk1"], limit=100)
    assert len(page.items) == 100
    assert page.next_cursor
    everything = await twin.contacts_of_staff(["clerk1", "clerk2"])
    assert len(everything) == 151
    states = {c.external_userid: f.state for c, f in everything if f.userid == "clerk1"}
    assert states["wm001"] == "store-1"
    assert states["wm002"] is None
    with pytest.raises(UsageError):
        await twin.contacts_by_user([f"u{i}" for i in range(101)])


async def test_id_conversion_feeds_the_identity_graph(twin: Twin, corp):
    """unionid ↔ external_userid: both identities end up on one member."""
    corp.add_customer("clerk1", "wmU", unionid="unionid-1", openid="o-1")
    ext = await twin.unionid_to_external_userid("unionid-1", "o-1")
    assert ext == "wmU"
    assert await twin.convert_to_openid("wmU") == "o-1"
    store = InMemoryStore()
    union = Identity.unionid("unionid-1")
    store.upsert_members([Member("m1", identities=(union, Identity.external_userid(CORPID, ext)))])
    assert store.resolve(Identity.external_userid(CORPID, "wmU")) == store.resolve(union) == "m1"
    with pytest.raises(PermanentDeliveryError):
        await twin.unionid_to_external_userid("nobody", "o-x")


# ------------------------------------------------------------------------- corp tags


async def test_corp_tags_crud_and_mark(twin: Twin, corp):
    corp.add_customer("clerk1", "wmT")
    group = await twin.add_corp_tags(["VIP", "durian"], group_name="membermkt")
    ids = {t.name: t.id for t in group.tags}
    again = await twin.add_corp_tags(["VIP"], group_id=group.group_id)
    assert again.tags[0].id == ids["VIP"]  # duplicate names are created once
    await twin.mark_tag("clerk1", "wmT", add=[ids["VIP"], ids["durian"]])
    assert corp.tag_names("clerk1", "wmT") == {"VIP", "durian"}
    await twin.edit_corp_tag(ids["VIP"], name="VIP2")
    await twin.mark_tag("clerk1", "wmT", remove=[ids["durian"]])
    assert corp.tag_names("clerk1", "wmT") == {"VIP2"}
    detail = await twin.get_contact("wmT")
    assert detail.follow_users[0].tag_ids == (ids["VIP"],)
    await twin.delete_corp_tags(tag_ids=[ids["VIP"], ids["durian"]])
    assert await twin.list_corp_tags() == ()  # the last tag took its group with it
    with pytest.raises(PlatformError) as err:
        await twin.mark_tag("clerk1", "wmT", add=["nope"])
    assert err.value.errcode == 40068
    with pytest.raises(UsageError):
        await twin.add_corp_tags(["x" * 31], group_name="g")


async def test_sync_corp_tags(twin: Twin, corp):
    """Corp tags are made to match membermkt's: created, kept, extra ones deleted; other
    groups untouched; a second sync writes nothing."""
    await twin.add_corp_tags(["old", "keep"], group_name="membermkt")
    await twin.add_corp_tags(["theirs"], group_name="console")
    plan = await twin.sync_corp_tags({"membermkt": ["keep", "new1", "new2"], "rfm": ["champion"]})
    assert dict(plan.create) == {"membermkt": ("new1", "new2"), "rfm": ("champion",)}
    assert len(plan.delete) == 1
    groups = {g.group_name: {t.name for t in g.tags} for g in await twin.list_corp_tags()}
    assert groups == {
        "membermkt": {"keep", "new1", "new2"},
        "console": {"theirs"},
        "rfm": {"champion"},
    }
    assert set(plan.ids) == {
        ("membermkt", "keep"),
        ("membermkt", "new1"),
        ("membermkt", "new2"),
        ("rfm", "champion"),
    }
    again = await twin.sync_corp_tags({"membermkt": ["keep", "new1", "new2"], "rfm": ["champion"]})
    assert again.calls == 0


async def test_corp_tag_limit_3000(twin: Twin, corp):
    """The emulator refuses the 3001st tag; the sync plan refuses it client-side."""
    await twin.add_corp_tags([f"t{i}" for i in range(3000)], group_name="big")
    with pytest.raises(PlatformError):
        await twin.add_corp_tags(["one-more"], group_name="big")
    existing = [TagGroup(group_id="g", group_name="big", tags=(CorpTag(id="1", name="a"),) * 3000)]
    with pytest.raises(UsageError):
        plan_corp_tag_sync({"mm": ["x"]}, existing)


# ------------------------------------------------------------------------- contact ways


async def test_contact_way_lifecycle(twin: Twin, corp):
    state = encode_state("store-12", "spring26")
    way = await twin.add_contact_way(users=["clerk1"], state=state, remark="front desk")
    assert way.qr_code
    got = await twin.get_contact_way(way.config_id)
    assert (got.state, got.users, got.type, got.scene) == (state, ("clerk1",), 1, 2)
    await twin.update_contact_way(way.config_id, state="store-13")
    assert (await twin.get_contact_way(way.config_id)).state == "store-13"
    multi = await twin.add_contact_way(type=2, users=["clerk1", "clerk2"], state="mall")
    page = await twin.list_contact_ways()
    assert set(page.config_ids) == {way.config_id, multi.config_id}
    await twin.del_contact_way(way.config_id)
    assert (await twin.list_contact_ways()).config_ids == (multi.config_id,)
    with pytest.raises(UsageError):
        await twin.add_contact_way(users=["clerk1"], state="s" * 31)
    with pytest.raises(UsageError):
        await twin.add_contact_way(users=["clerk1", "clerk2"], type=1)


# ------------------------------------------------------------------------- mass send


async def test_mass_send_is_pending_until_staff_confirm(twin: Twin, corp, clock):
    """add_msg_template sends nothing; results say 0 until the sender confirms, then 1;
    non-contacts are in fail_list; records, tasks, remind (≤ 3/24 h) and cancel work."""
    for e in ("wm1", "wm2"):
        corp.add_customer("clerk1", e)
    tpl = await twin.add_msg_template(
        external_userids=["wm1", "wm2", "stranger"], sender="clerk1", text="上新了"
    )
    assert tpl.fail_list == ("stranger",)
    before = await twin.mass_results(tpl.msgid)
    assert {(r.external_userid, r.status) for r in before} == {("wm1", 0), ("wm2", 0)}
    assert corp.mass_receipts == []
    for _ in range(3):
        await twin.remind_groupmsg_send(tpl.msgid)
    with pytest.raises(RateLimitError):
        await twin.remind_groupmsg_send(tpl.msgid)
    corp.confirm_mass(tpl.msgid, "clerk1")
    after = await twin.mass_results(tpl.msgid)
    assert {(r.external_userid, r.status) for r in after} == {("wm1", 1), ("wm2", 1)}
    tasks = await twin.groupmsg_tasks(tpl.msgid)
    assert [(t.userid, t.status) for t in tasks.items] == [("clerk1", 2)]
    now = int(clock())
    records = await twin.groupmsg_list(start_time=now - 60, end_time=now + 60)
    assert [m.msgid for m in records.items] == [tpl.msgid]
    assert records.items[0].text == "上新了"
    other = await twin.add_msg_template(external_userids=["wm1"], sender="clerk1", text="b")
    await twin.cancel_groupmsg_send(other.msgid)
    assert corp.confirm_mass(other.msgid, "clerk1") == {}


async def test_mass_limits_are_enforced_client_side(twin: Twin):
    with pytest.raises(UsageError):
        await twin.add_msg_template(external_userids=["x"] * 10_001, text="hi")
    with pytest.raises(UsageError):
        await twin.add_msg_template(external_userids=["x"], text="字" * 1334)  # 4002 bytes
    link = {"msgtype": "link", "link": {"title": "t", "url": "https://e.x"}}
    with pytest.raises(UsageError):
        await twin.add_msg_template(external_userids=["x"], attachments=[link] * 10)


def test_receive_cap_is_configurable(clock):
    """With the 1/day rule a customer's second mass message that day is status 3."""
    from .conftest import make_client as mk

    emu = WeComEmulator(seed=1, clock=clock, mass_cap=WECOM_MASS_DAILY)
    corp = emu.add_corp(CORPID, SECRET)
    corp.add_staff("clerk1")
    corp.add_customer("clerk1", "wm1")
    client = mk("sync", emu, clock, [])
    first = client.add_msg_template(external_userids=["wm1"], sender="clerk1", text="a")
    second = client.add_msg_template(external_userids=["wm1"], sender="clerk1", text="b")
    assert corp.confirm_mass(first.msgid, "clerk1") == {"wm1": 1}
    assert corp.confirm_mass(second.msgid, "clerk1") == {"wm1": 3}
    clock.advance(86400)
    third = client.add_msg_template(external_userids=["wm1"], sender="clerk1", text="c")
    assert corp.confirm_mass(third.msgid, "clerk1") == {"wm1": 1}


# ------------------------------------------------------------------------- group chats


async def test_group_chats(twin: Twin, corp):
    corp.chats["wrA"] = {"status": 0, "owner": "clerk1", "name": "VIP 群", "member_list": []}
    corp.chats["wrB"] = {"status": 0, "owner": "clerk2", "name": "B", "member_list": []}
    page = await twin.groupchats(owners=["clerk1"])
    assert [c.chat_id for c in page.items] == ["wrA"]
    chat = await twin.groupchat("wrA", need_name=True)
    assert (chat.name, chat.owner) == ("VIP 群", "clerk1")


def test_contacts_feed_the_identity_graph(client, corp, emu):
    """A follower known by openid + unionid and a WeCom customer added through a callback
    become one member once the customer's detail shows the same unionid."""
    from membermkt.channels.wecom import WeComCallbackHandler, WeComEndpoint
    from membermkt.channels.wecom.identity import sync_contacts

    store = InMemoryStore()
    oa = (Identity.openid("wxOA", "o-ann"), Identity.unionid("u-ann"))
    store.upsert_members([Member("m-oa", identities=oa)])
    h = WeComCallbackHandler(
        WeComEndpoint(corpid=CORPID, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
        store=store,
        clock=corp.emulator.now,
    )
    push = corp.add_customer("clerk1", "wmAnn", unionid="u-ann", state="store-9")
    h.handle(push.method, dict(push.query), push.body)
    corp.add_customer("clerk1", "wmBob")
    wc = store.resolve(Identity.external_userid(CORPID, "wmAnn"))
    assert wc not in (None, "m-oa")
    report = sync_contacts(client, store, ["clerk1"])
    assert (report.customers, report.with_unionid, report.merges) == (2, 1, 1)
    keep = store.resolve(Identity.unionid("u-ann"))
    assert keep == store.resolve(Identity.external_userid(CORPID, "wmAnn"))
    assert keep == store.resolve(Identity.openid("wxOA", "o-ann"))
    member = store.get_member(keep or "")
    assert member is not None
    assert member.state.source == "store-9"  # the merged member keeps the WeCom history
    again = sync_contacts(client, store, ["clerk1"])
    assert again.merges == 0


async def test_sync_customer_tags(twin: Twin, corp):
    """Members' tags become corp tags on their relations: added, removed, other groups'
    tags and unlisted customers untouched; a second run makes no call."""
    for e in ("wmA", "wmB", "wmC"):
        corp.add_customer("clerk1", e)
    corp.add_customer("clerk2", "wmA")
    other = await twin.add_corp_tags(["console-tag"], group_name="console")
    stale = await twin.add_corp_tags(["lapsed"], group_name="membermkt")
    await twin.mark_tag("clerk1", "wmB", add=[stale.tags[0].id, other.tags[0].id])
    desired = {"wmA": ["VIP", "durian"], "wmB": ["VIP"]}
    done = await twin.sync_customer_tags("membermkt", desired, userids=["clerk1", "clerk2"])
    assert (done.calls, done.added, done.removed) == (3, 5, 1)
    assert corp.tag_names("clerk1", "wmA") == {"VIP", "durian"}
    assert corp.tag_names("clerk2", "wmA") == {"VIP", "durian"}
    assert corp.tag_names("clerk1", "wmB") == {"VIP", "console-tag"}
    assert corp.tag_names("clerk1", "wmC") == set()
    again = await twin.sync_customer_tags("membermkt", desired, userids=["clerk1", "clerk2"])
    assert again.calls == 0
    with pytest.raises(UsageError):
        await twin.sync_customer_tags("membermkt", {}, userids=["clerk1"])


def test_sql_token_cache_is_shared_between_clients(emu, clock, corp, tmp_path):
    """Two clients (think: two processes) on one SQL token cache fetch the corp token once."""
    from membermkt.tokens import SqlTokenCache

    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    a = make_client("sync", emu, clock, [], token_cache=SqlTokenCache(url))
    b = make_client("sync", emu, clock, [], token_cache=SqlTokenCache(url))
    a.follow_users()  # type: ignore[union-attr]
    b.follow_users()  # type: ignore[union-attr]
    assert emu.calls["/cgi-bin/gettoken"] == 1
    assert b.tokens.fetches == 0


def test_over_a_loopback_server(emu, clock, corp):
    """The emulator also serves real HTTP on 127.0.0.1 (for multi-process tests)."""
    from membermkt.channels.wecom import WeCom

    with (
        emu.serve() as server,
        WeCom(CORPID, SECRET, base_url=server.url, clock=clock, sleep=lambda s: None) as client,
    ):
        assert client.follow_users() == ("clerk1", "clerk2", "clerk3")
        emu.faults.next("drop", api=f"{EC}/get_follow_user_list")
        assert client.follow_users() == ("clerk1", "clerk2", "clerk3")  # retried

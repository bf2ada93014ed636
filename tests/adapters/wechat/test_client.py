"""OfficialAccount and AsyncOfficialAccount against the emulator: one suite for both."""

from __future__ import annotations

import pytest

from membermkt.channels.wechat.api import menu
from membermkt.errors import (
    PermanentDeliveryError,
    PlatformError,
    QuotaExceeded,
    RateLimitError,
    TokenError,
    TransportError,
    UsageError,
)
from membermkt.tokens import MemoryTokenCache
from membermkt.wire.budget import CallBudget

from .conftest import APPID, Twin, make_client

TEXT = {"msgtype": "text", "text": {"content": "hello"}}
MASS_SEND = "/cgi-bin/message/mass/send"

# ------------------------------------------------------------------------- tokens


async def test_stable_token_is_fetched_once_and_reused(twin: Twin, emu, account):
    """One token fetch serves many calls while it is valid."""
    for _ in range(5):
        await twin.user_info("o00001")
    assert emu.calls["/cgi-bin/stable_token"] == 1
    assert emu.calls["/cgi-bin/user/info"] == 5


async def test_expired_token_is_refreshed_before_use(twin: Twin, emu, account, clock):
    """A cached token is refreshed before the platform's expiry: no 42001 is ever seen."""
    await twin.user_info("o00001")
    clock.advance(7200 - 30)  # inside the refresh margin
    await twin.user_info("o00001")
    assert emu.calls["/cgi-bin/stable_token"] == 2
    assert account.token_repeats == 0
    assert emu.errcodes[42001] == 0


async def test_invalidated_token_is_replayed_once(twin: Twin, emu):
    """40001 on a business call: compare-then-expire, one fetch, one replay, success."""
    await twin.user_info("o00001")
    emu.faults.next("token_invalidate", api="/cgi-bin/user/info")
    info = await twin.user_info("o00002")
    assert info.openid == "o00002"
    assert emu.calls["/cgi-bin/stable_token"] == 2


async def test_token_replay_is_capped(twin: Twin, emu):
    """A fresh token refused again raises TokenError instead of looping."""
    emu.faults.next("token_invalidate", "token_invalidate", api="/cgi-bin/user/info")
    with pytest.raises(TokenError) as err:
        await twin.user_info("o00001")
    assert err.value.errcode == 40001
    assert emu.calls["/cgi-bin/user/info"] == 2


async def test_wrong_secret_is_a_token_error_without_loop(kind, emu, clock, account):
    """40001 from the token endpoint itself means a wrong secret: no retry, no loop."""
    client = make_client(kind, emu, clock, [])
    client.policy = type(client.policy)(appid=APPID, secret="wrong")
    client.tokens.policy = client.policy
    twin = Twin(client, [])
    with pytest.raises(TokenError):
        await twin.user_info("o00001")
    assert emu.calls["/cgi-bin/stable_token"] == 1


async def test_classic_token_mode(kind, emu, clock, account):
    """token_mode='classic' uses /cgi-bin/token."""
    twin = Twin(make_client(kind, emu, clock, [], token_mode="classic"), [])
    await twin.user_info("o00001")
    assert emu.calls["/cgi-bin/token"] == 1
    assert emu.calls["/cgi-bin/stable_token"] == 0


def test_two_accounts_side_by_side(emu, clock):
    """Two appids share one token cache and one emulator without interfering."""
    a = emu.add_account("wxA", "sa")
    b = emu.add_account("wxB", "sb")
    a.add_followers(["oa1"])
    b.add_followers(["ob1"])
    cache = MemoryTokenCache()
    from membermkt.channels.wechat import OfficialAccount

    ca = OfficialAccount("wxA", "sa", transport=emu.transport(), token_cache=cache, clock=clock)
    cb = OfficialAccount("wxB", "sb", transport=emu.transport(), token_cache=cache, clock=clock)
    assert ca.user_info("oa1").subscribed
    assert cb.user_info("ob1").subscribed
    with pytest.raises(PlatformError) as err:
        ca.user_info("ob1")
    assert err.value.errcode == 40003
    assert cache.get(ca.policy.key).token != cache.get(cb.policy.key).token


# ------------------------------------------------------------------------- retries


async def test_busy_is_retried_with_backoff(twin: Twin, emu):
    emu.faults.next("busy", "busy", api="/cgi-bin/user/info")
    assert (await twin.user_info("o00001")).subscribed
    assert twin.sleeps == [0.2, 0.4]


async def test_busy_beyond_attempts_raises(twin: Twin, emu):
    emu.faults.next("busy", "busy", "busy", api="/cgi-bin/user/info")
    with pytest.raises(PlatformError) as err:
        await twin.user_info("o00001")
    assert err.value.errcode == -1
    assert err.value.retryable


async def test_daily_quota_is_surfaced_at_once(twin: Twin, emu):
    """45009 (daily quota: "stop calling this API", ref §1.10) can never succeed a few
    seconds later: the client raises it after one call, without waiting, and the emulator
    counts exactly one call (the campaign runner defers to the reset)."""
    emu.faults.next("throttle", "throttle", "throttle", api="/cgi-bin/user/info")
    with pytest.raises(RateLimitError) as err:
        await twin.user_info("o00001")
    assert err.value.errcode == 45009
    assert err.value.retryable, "a later run may succeed: the channel reports it retryable"
    assert err.value.surface
    assert emu.calls["/cgi-bin/user/info"] == 1
    assert twin.sleeps == []


async def test_same_clientmsgid_too_fast_is_surfaced_at_once(twin: Twin, emu, clock):
    """45066 (the same clientmsgid within a minute: wait >= 60 s, ref §1.4) is raised after
    one call instead of being retried after 5 s (which the platform refuses again)."""
    openids = [f"o{i:05d}" for i in range(4)]
    await twin.send_mass(openids, TEXT, clientmsgid="cid-fast")
    assert emu.calls[MASS_SEND] == 1
    clock.advance(10)
    with pytest.raises(RateLimitError) as err:
        await twin.send_mass(openids, TEXT, clientmsgid="cid-fast")
    assert err.value.errcode == 45066
    assert err.value.retry_after == 60.0
    assert emu.calls[MASS_SEND] == 2, "one call for the refused attempt, no client retry"
    assert twin.sleeps == []
    assert emu.duplicates == 0


async def test_http_5xx_is_retried(twin: Twin, emu):
    emu.faults.next("http5xx", api="/cgi-bin/user/info")
    assert (await twin.user_info("o00001")).subscribed


async def test_lost_answer_of_a_read_is_retried(twin: Twin, emu):
    emu.faults.next("timeout", api="/cgi-bin/user/info")
    assert (await twin.user_info("o00001")).subscribed


async def test_lost_answer_of_a_template_send_is_not_resent(twin: Twin, emu, account):
    """A template send has no idempotency key: an ambiguous failure is raised, never
    blindly resent — the follower received exactly one message."""
    account.add_template("TPL")
    emu.faults.next("timeout", api="/cgi-bin/message/template/send")
    with pytest.raises(TransportError) as err:
        await twin.send_template("o00001", "TPL", {"k": "v"})
    assert err.value.ambiguous
    assert len(emu.received(APPID, "o00001")) == 1


async def test_dropped_connection_before_send_is_retried_even_for_templates(twin, emu, account):
    account.add_template("TPL")
    emu.faults.next("drop", api="/cgi-bin/message/template/send")
    assert await twin.send_template("o00001", "TPL", {"k": "v"})
    assert len(emu.received(APPID, "o00001")) == 1


async def test_client_side_budget_refuses_before_the_platform(kind, emu, clock, account):
    budgets = [CallBudget("/cgi-bin/user/info", per_day=100, per_minute=3)]
    twin = Twin(make_client(kind, emu, clock, [], budgets=budgets), [])
    for _ in range(3):
        await twin.user_info("o00001")
    with pytest.raises(QuotaExceeded) as err:
        await twin.user_info("o00001")
    assert err.value.retry_after > 0
    assert emu.calls["/cgi-bin/user/info"] == 3
    clock.advance(60)
    await twin.user_info("o00001")


# ------------------------------------------------------------------------- followers


async def test_followers_page_by_ten_thousand(twin: Twin, emu, account):
    account.add_followers([f"p{i:06d}" for i in range(25_000)])
    got = await twin.all_followers()
    assert len(got) == 25_030
    assert len(set(got)) == 25_030
    assert emu.calls["/cgi-bin/user/get"] == 4  # 3 pages + the empty one that ends the list


async def test_user_infos_chunk_by_hundred(twin: Twin, emu, account):
    account.add_followers([f"q{i}" for i in range(250)])
    infos = await twin.user_infos([f"q{i}" for i in range(250)])
    assert [i.openid for i in infos] == [f"q{i}" for i in range(250)]
    assert emu.calls["/cgi-bin/user/info/batchget"] == 3


async def test_unfollowed_user_info(twin: Twin, account):
    account.unfollow("o00003")
    info = await twin.user_info("o00003")
    assert not info.subscribed


# ------------------------------------------------------------------------- tags


async def test_tag_crud_and_limits(twin: Twin, emu, account):
    vip = await twin.create_tag("vip")
    assert vip.id >= 100
    with pytest.raises(PlatformError) as err:
        await twin.create_tag("vip")
    assert err.value.errcode == 45157
    await twin.update_tag(vip.id, "VIP")
    assert [t.name for t in await twin.list_tags()] == ["VIP"]
    with pytest.raises(UsageError):
        await twin.update_tag(2, "star")
    with pytest.raises(UsageError):
        await twin.create_tag("x" * 31)
    await twin.delete_tag(vip.id)
    assert await twin.list_tags() == ()


async def test_tagging_chunks_by_fifty(twin: Twin, emu, account):
    tag = await twin.create_tag("buyers")
    openids = [f"o{i:05d}" for i in range(30)] * 2 + ["o00001"]
    account.add_followers([f"r{i}" for i in range(90)])
    calls = await twin.tag_users(tag.id, openids + [f"r{i}" for i in range(90)])
    assert calls == 3  # 120 distinct openids → 40 + 40 + 40
    assert len(await twin.tag_fans(tag.id)) == 120
    assert await twin.user_tags("r5") == (tag.id,)
    assert await twin.untag_users(tag.id, [f"r{i}" for i in range(90)]) == 2
    assert len(await twin.tag_fans(tag.id)) == 30


async def test_twenty_tags_per_user(twin: Twin, account):
    ids = [(await twin.create_tag(f"t{i}")).id for i in range(21)]
    for tid in ids[:20]:
        await twin.tag_users(tid, ["o00001"])
    with pytest.raises(PermanentDeliveryError) as err:
        await twin.tag_users(ids[20], ["o00001"])
    assert err.value.errcode == 45059


async def test_sync_tags_converges_in_few_calls(twin: Twin, emu, account):
    """Tag sync makes WeChat match, untagging first; a second sync writes nothing."""
    old = await twin.create_tag("old")
    await twin.tag_users(old.id, ["o00001", "o00002"])
    desired = {f"o{i:05d}": ({"gold"} if i % 2 else {"silver"}) for i in range(30)}
    desired["o00001"] = {"gold", "old"}
    plan = await twin.sync_tags(desired, managed={"gold", "silver", "old"})
    assert plan.create == ("gold", "silver")
    assert plan.remove == {"old": ("o00002",)}
    assert plan.calls == 2 + 1 + 2  # creates + untag batch + one batch per tag
    assert account.tag_names("o00001") == {"gold", "old"}
    assert account.tag_names("o00002") == {"silver"}
    again = await twin.sync_tags(desired, managed={"gold", "silver", "old"})
    assert again.calls == 0


async def test_sync_tags_counts_console_tags_and_prunes_leavers(twin: Twin, emu, account):
    """Rule oa.tag_limit: 19 tags set in the console + 2 managed no longer abort the sync
    with 45059 (one managed tag fits; the member is reported over the limit), and a member
    who left the rule loses the managed tag (#17)."""
    console = [(await twin.create_tag(f"console{i}")).id for i in range(19)]
    for tid in console:
        await twin.tag_users(tid, ["o00001"])
    plan = await twin.sync_tags(
        {"o00001": {"gold", "vip"}, "o00002": {"gold"}}, managed={"gold", "vip"}
    )
    assert plan.over_limit == ("o00001",)
    assert len(account.tag_names("o00001")) == 20
    assert account.tag_names("o00002") == {"gold"}
    left = await twin.sync_tags({"o00001": {"gold"}}, managed={"gold", "vip"})
    assert left.remove == {"gold": ("o00002",)}
    assert account.tag_names("o00002") == set()
    assert "gold" in account.tag_names("o00001")


# ------------------------------------------------------------------------- messages


async def test_mass_send_dedupes_by_clientmsgid(twin: Twin, emu, clock, account):
    openids = [f"o{i:05d}" for i in range(10)]
    first = await twin.send_mass(openids, TEXT, clientmsgid="cid-1")
    clock.advance(60)  # the same clientmsgid within a minute is 45066 (retried too fast)
    again = await twin.send_mass(openids, TEXT, clientmsgid="cid-1")
    assert not first[0].duplicate
    assert again[0].duplicate
    assert again[0].msg_id == first[0].msg_id
    assert emu.duplicates == 0
    assert sum(len(emu.received(APPID, o)) for o in openids) == 10


async def test_mass_send_chunks_and_gives_each_chunk_its_key(kind, emu, clock, account):
    account.add_followers([f"m{i}" for i in range(10_001)])
    twin = Twin(make_client(kind, emu, clock, [], budgets=()), [])
    sends = await twin.send_mass([f"m{i}" for i in range(10_001)], TEXT, clientmsgid="big")
    assert len(sends) == 2
    assert sends[0].msg_id != sends[1].msg_id
    assert emu.duplicates == 0
    assert len(emu.receipts) == 10_001


async def test_mass_send_needs_two(twin: Twin):
    with pytest.raises(UsageError, match="two"):
        await twin.send_mass(["o00001", "o00001"], TEXT)


async def test_four_mass_messages_per_month(twin: Twin, emu, account):
    for i in range(5):
        msg = {"msgtype": "text", "text": {"content": f"m{i}"}}
        await twin.send_mass(["o00001", "o00002"], msg, clientmsgid=f"c{i}")
    assert len(emu.received(APPID, "o00001")) == 4


async def test_mass_status_preview_delete(twin: Twin, emu, account):
    sent = await twin.send_mass_to_tag(TEXT, tag_id=None)
    assert (await twin.mass_status(sent.msg_id)).status == "SEND_SUCCESS"
    await twin.delete_mass(sent.msg_id)
    assert (await twin.mass_status(sent.msg_id)).status == "DELETE"
    await twin.preview_mass(TEXT, openid="o00004")
    with pytest.raises(RateLimitError) as err:
        await twin.send_mass_to_tag(TEXT)
    assert err.value.errcode == 45028
    with pytest.raises(PlatformError) as bad:
        await twin.mass_status(1)
    assert bad.value.errcode == 40059


async def test_template_rules(twin: Twin, emu, account):
    with pytest.raises(PlatformError) as err:
        await twin.send_template("o00001", "NOPE", {"a": "b"})
    assert err.value.errcode == 40037
    account.add_template("TPL")
    msgid = await twin.send_template("o00001", "TPL", {"a": "b"}, url="https://x")
    assert msgid
    account.unfollow("o00002")
    with pytest.raises(PermanentDeliveryError) as gone:
        await twin.send_template("o00002", "TPL", {"a": "b"})
    assert gone.value.errcode == 43004
    account.block("o00003")
    with pytest.raises(PermanentDeliveryError) as blocked:
        await twin.send_template("o00003", "TPL", {"a": "b"})
    assert blocked.value.errcode == 48002


async def test_subscribe_message_needs_a_grant(twin: Twin, account):
    with pytest.raises(PermanentDeliveryError) as err:
        await twin.send_subscribe("o00001", "SUB", {"thing1": "x"})
    assert err.value.errcode == 43101
    account.grant_subscribe("o00001", "SUB")
    await twin.send_subscribe("o00001", "SUB", {"thing1": "x"})
    with pytest.raises(PermanentDeliveryError):
        await twin.send_subscribe("o00001", "SUB", {"thing1": "x"})


async def test_custom_message_window(twin: Twin, account, clock):
    """45015 outside the window; a message opens 48 h / 5 messages (45047 after)."""
    with pytest.raises(PermanentDeliveryError) as err:
        await twin.send_custom("o00001", TEXT)
    assert err.value.errcode == 45015
    account.text_push("o00001", "hi")
    for _ in range(5):
        await twin.send_custom("o00001", TEXT)
    with pytest.raises(PermanentDeliveryError) as used:
        await twin.send_custom("o00001", TEXT)
    assert used.value.errcode == 45047
    account.interact("o00002", "click")
    await twin.send_custom("o00002", TEXT)
    clock.advance(61)
    with pytest.raises(PermanentDeliveryError):
        await twin.send_custom("o00002", TEXT)
    account.interact("o00003")
    clock.advance(48 * 3600 + 1)
    with pytest.raises(PermanentDeliveryError):
        await twin.send_custom("o00003", TEXT)


# ------------------------------------------------------------------------- qr & menu


async def test_qrcodes(twin: Twin):
    temp = await twin.create_qrcode(42, expire_seconds=600)
    assert temp.expire_seconds == 600
    assert temp.image_url.startswith("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=")
    perm = await twin.create_qrcode("store-7", permanent=True)
    assert perm.expire_seconds is None
    for bad in [
        {"scene": 0},
        {"scene": 100_001, "permanent": True},
        {"scene": "x" * 65},
        {"scene": 1, "expire_seconds": 2_592_001},
        {"scene": True},
    ]:
        with pytest.raises(UsageError):
            await twin.create_qrcode(**bad)


async def test_menus(twin: Twin):
    buttons = [
        menu.Button.click("今日", "TODAY"),
        menu.Button.parent("更多", menu.Button.view("官网", "https://example.com")),
    ]
    await twin.create_menu(buttons)
    got = await twin.get_menu()
    assert got["menu"]["button"][0] == {"type": "click", "name": "今日", "key": "TODAY"}
    await twin.delete_menu()
    with pytest.raises(PlatformError):
        await twin.get_menu()
    with pytest.raises(UsageError):
        await twin.create_menu([menu.Button.click("x", "k")] * 4)
    with pytest.raises(UsageError):
        await twin.create_menu([menu.Button.click("名字太长了名字太长了", "k")])
    with pytest.raises(PlatformError) as err:  # raw dicts skip client validation
        await twin.create_menu([{"type": "click", "name": "n", "key": "k" * 129}])
    assert err.value.errcode == 40019

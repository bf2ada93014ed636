"""Mini-program identity against the emulator: jscode2session (single-use, expiring codes),
the verified phone number, and linking into the identity graph (unionid and verified phone
join the official-account member; merges are audited)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from membermkt.channels.wechat import OfficialAccount
from membermkt.channels.wechat.api.miniprogram import code_to_session, phone_number
from membermkt.channels.wechat.miniprogram import link_miniprogram_user
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.errors import PlatformError, UsageError
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator

from .conftest import APPID, ManualClock

MP_APPID, MP_SECRET = "wxminiprogram0001", "mp-secret"
AT = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


@pytest.fixture
def mp(emu: WeChatEmulator, clock: ManualClock) -> OfficialAccount:
    emu.add_account(MP_APPID, MP_SECRET)
    return OfficialAccount(MP_APPID, MP_SECRET, transport=emu.transport(), clock=clock)


def test_code_to_session_and_refusals(
    mp: OfficialAccount, emu: WeChatEmulator, clock: ManualClock
) -> None:
    code = emu.issue_js_code(MP_APPID, "oMp1", unionid="u-1")
    session = mp.call(code_to_session(MP_APPID, MP_SECRET, code))
    assert session.openid == "oMp1"
    assert session.unionid == "u-1"
    assert "session_key" not in repr(session)
    with pytest.raises(PlatformError) as used:
        mp.call(code_to_session(MP_APPID, MP_SECRET, code))
    assert used.value.errcode == 40163
    late = emu.issue_js_code(MP_APPID, "oMp1")
    clock.advance(301)
    with pytest.raises(PlatformError) as expired:
        mp.call(code_to_session(MP_APPID, MP_SECRET, late))
    assert expired.value.errcode == 40029
    with pytest.raises(PlatformError) as secret:
        mp.call(code_to_session(MP_APPID, "wrong", emu.issue_js_code(MP_APPID, "oMp1")))
    assert secret.value.errcode == 40125
    with pytest.raises(UsageError):
        code_to_session(MP_APPID, MP_SECRET, "")


def test_phone_number_is_single_use(mp: OfficialAccount, emu: WeChatEmulator) -> None:
    code = emu.issue_phone_code(MP_APPID, "13800138000")
    info = mp.call(phone_number(code))
    assert info.pure_phone_number == "13800138000"
    assert info.country_code == "86"
    assert info.appid == MP_APPID
    with pytest.raises(PlatformError) as again:
        mp.call(phone_number(code))
    assert again.value.errcode == 40029


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_linking_joins_the_official_account_member(
    mp: OfficialAccount, emu: WeChatEmulator, account, kind: str
) -> None:
    from membermkt.stores.sql import SqlStore
    from membermkt.testing.phones import TEST_PHONES

    store: Any = (
        InMemoryStore(phones=TEST_PHONES)
        if kind == "memory"
        else SqlStore("sqlite://", phones=TEST_PHONES)
    )
    # the follower is known through the official account, with its unionid
    follower = "mFollower"
    store.upsert_members(
        [Member(follower, identities=(Identity.openid(APPID, "o00001"), Identity.unionid("u-7")))]
    )
    # a phone-only member from an offline order import
    store.upsert_members([Member("mOffline", identities=(TEST_PHONES.identity("13900000000"),))])
    session = mp.call(
        code_to_session(MP_APPID, MP_SECRET, emu.issue_js_code(MP_APPID, "oMp7", unionid="u-7"))
    )
    phone = mp.call(phone_number(emu.issue_phone_code(MP_APPID, "13900000000")))
    mid = link_miniprogram_user(store, MP_APPID, session, at=AT, phone=phone)
    assert mid == store.resolve(Identity.unionid("u-7"))
    assert store.resolve(Identity.miniprogram_openid(MP_APPID, "oMp7")) == mid
    assert store.resolve(Identity.openid(APPID, "o00001")) == mid
    assert store.resolve(TEST_PHONES.identity("13900000000")) == mid  # verified phone merged
    assert len(store.merges()) == 1
    # a stranger without unionid or phone becomes a member of its own, once
    alone = mp.call(code_to_session(MP_APPID, MP_SECRET, emu.issue_js_code(MP_APPID, "oMp8")))
    m8 = link_miniprogram_user(store, MP_APPID, alone, at=AT)
    assert link_miniprogram_user(store, MP_APPID, alone, at=AT) == m8
    assert store.resolve(Identity.miniprogram_openid(MP_APPID, "oMp8")) == m8

"""sync_followers: followers of two official accounts with one unionid become one member."""

from __future__ import annotations

import datetime as dt

import pytest

from membermkt.channels.wechat import OfficialAccount, sync_followers
from membermkt.core.identity import Identity
from membermkt.errors import UsageError
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _client(emu: WeChatEmulator, appid: str) -> OfficialAccount:
    return OfficialAccount(
        appid,
        "s",
        transport=emu.transport(),
        budgets=(),
        sleep=lambda s: None,
        retry=RetryPolicy(attempts=2, jitter=0),
    )


def test_one_person_following_two_accounts_is_one_member() -> None:
    emu = WeChatEmulator(seed=3, clock=lambda: 1_700_000_000.0)
    a = emu.add_account("wxA000000000001", "s")
    b = emu.add_account("wxB000000000001", "s")
    a.add_followers([f"a{i}" for i in range(150)], unionid=lambda o: f"u{o[1:]}")
    b.add_followers(["b1", "b2", "bx"], unionid=lambda o: "" if o == "bx" else f"u{o[1:]}")
    store = InMemoryStore()
    ra = sync_followers(_client(emu, "wxA000000000001"), store, at=T0)
    assert (ra.followers, ra.with_unionid, ra.linked, ra.merges) == (150, 150, 150, 0)
    rb = sync_followers(_client(emu, "wxB000000000001"), store, at=T0)
    assert (rb.followers, rb.with_unionid, rb.linked) == (3, 2, 2)
    one = store.resolve(Identity.openid("wxA000000000001", "a1"))
    assert one is not None
    assert store.resolve(Identity.openid("wxB000000000001", "b1")) == one
    assert store.resolve(Identity.unionid("u1")) == one
    assert store.resolve(Identity.openid("wxB000000000001", "bx")) is None
    again = sync_followers(_client(emu, "wxA000000000001"), store, at=T0)
    assert again.linked == 0
    with pytest.raises(UsageError, match="batch"):
        sync_followers(_client(emu, "wxA000000000001"), store, batch=101)

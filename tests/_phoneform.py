"""A whole phone-form world for tests: the WeChat emulator (OAuth), the WeChat Pay emulator
(red packets), an in-memory store, the red-packet service and :class:`PhoneFormApp`."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx

from membermkt.channels.wechat import OfficialAccount
from membermkt.contrib.phoneform import PhoneFormApp
from membermkt.contrib.phoneverify import PhoneVerifier
from membermkt.core.redpackets import FixedAmount, RedPacketRule
from membermkt.engine.redpackets import RedPacketService
from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials
from membermkt.testing.phones import TEST_PHONES

MCH_ID = "1900000109"
APPID = "wxd930ea5d5a258f4f"
SECRET = "oa-secret"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
API_V3_KEY = "0123456789ABCDEF0123456789ABCDEF"
OPENID = "oFollower000000000000000001"


class SharedClock:
    """One clock for the emulator (unix seconds) and the library (aware datetimes)."""

    def __init__(self, start: dt.datetime = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)):
        self._t = start.timestamp()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def now(self) -> dt.datetime:
        with self._lock:
            return dt.datetime.fromtimestamp(self._t, dt.UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


@attrs.define
class World:
    clock: SharedClock
    wechat: WeChatEmulator
    pay: WeChatPayEmulator
    store: Any  # InMemoryStore or SqlStore
    account: OfficialAccount
    service: RedPacketService
    rule: RedPacketRule
    app: PhoneFormApp
    outbox: list[tuple[str, str]] = attrs.field(factory=list)
    """(number, code) of every code texted by the verifier."""


@contextmanager
def phone_form_world(
    tmp_path: Path,
    *,
    public_url: str = "https://shop.example/redpacket/",
    authorize_host: str = "https://open.weixin.qq.com",
    scope: str = "snsapi_base",
    store: Any = None,
    verify: bool = False,
    phones: Any = None,
) -> Iterator[World]:
    clock = SharedClock()
    wechat = WeChatEmulator(seed=3, clock=clock)
    acct = wechat.add_account(APPID, SECRET)
    acct.add_followers([OPENID], unionid=lambda o: "u-" + o[-4:])
    wechat.browse_as(APPID, OPENID)
    creds = make_test_credentials(MCH_ID)
    pay = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, api_v3_key=API_V3_KEY)
    files = creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    config = RedPacketConfig(
        mch_id=MCH_ID,
        wxappid=APPID,
        api_key=API_KEY,
        send_name="榴莲小店",
        act_name="留电话领红包",
        wishing="感谢关注",
        remark="手机号领红包",
    )
    store = InMemoryStore(phones=TEST_PHONES) if store is None else store
    outbox: list[tuple[str, str]] = []
    verifier = (
        PhoneVerifier(lambda number, code: outbox.append((number, code)), secret=b"v" * 32)
        if verify
        else None
    )
    rule = RedPacketRule(
        id="phone-form", mch_id=MCH_ID, amount=FixedAmount(300), total_budget_fen=30_000
    )
    with (
        WeChatPayV2Gateway(config, cert, transport=pay.transport()) as gateway,
        OfficialAccount(APPID, SECRET, transport=wechat.transport(), clock=clock) as account,
    ):
        service = RedPacketService(
            store, gateway, clock=clock, rng=random.Random(5), sleep=lambda s: None
        )
        app = PhoneFormApp(
            account=account,
            store=store,
            redpackets=service,
            rule=rule,
            public_url=public_url,
            secret=b"s" * 32,
            clock=clock,
            scope=scope,
            authorize_host=authorize_host,
            secure_cookies=public_url.startswith("https://"),
            verifier=verifier,
            phones=phones,
        )
        yield World(clock, wechat, pay, store, account, service, rule, app, outbox)


def follow_redirect_to_emulator(world: World, location: str) -> str:
    """Play WeChat's part: open the authorize URL on the emulator; return where it sends
    the browser back to."""
    with httpx.Client(
        transport=world.wechat.transport(), base_url="https://open.weixin.qq.com"
    ) as c:
        r = c.get(location.split("#", 1)[0])
    assert r.status_code == 302, r.text
    return r.headers["location"]

"""The phone-number red-packet page (seed 000: "input the phone number, open the red
packet") in FastAPI.

A follower taps a menu item or a link in WeChat; the page learns who they are through
OAuth web authorization, asks for a phone number and consent, links the phone to their
member and pays one red packet. Serve it under your web-authorization domain::

    uvicorn examples.fastapi_phoneform:app --port 8000   # after filling in build()

or run this file to try the whole flow against the emulators, no account needed::

    python examples/fastapi_phoneform.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI

from membermkt.channels.wechat import OfficialAccount
from membermkt.contrib.phoneform import PhoneFormApp
from membermkt.core.identity import Identity
from membermkt.core.redpackets import FixedAmount, RedPacketRule
from membermkt.engine.redpackets import RedPacketService
from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.security.phones import PhoneKey, PhoneProtector
from membermkt.stores import InMemoryStore

APPID, SECRET, MCH_ID = "wxd930ea5d5a258f4f", "oa-secret", "1900000109"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
PUBLIC_URL = "https://shop.example/redpacket/"


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def build(account: OfficialAccount, gateway: WeChatPayV2Gateway, store: InMemoryStore) -> FastAPI:
    """The FastAPI app: the page mounted at /redpacket (the path of PUBLIC_URL)."""
    clock = SystemClock()
    rule = RedPacketRule(
        id="phone-form", mch_id=MCH_ID, amount=FixedAmount(300), total_budget_fen=100_000
    )
    service = RedPacketService(store, gateway, clock=clock, rng=random.Random())
    page = PhoneFormApp(
        account=account,
        store=store,
        redpackets=service,
        rule=rule,
        public_url=PUBLIC_URL,
        secret=b"change-me: 32 random bytes here!",
        clock=clock,
    )
    api = FastAPI(title="membermkt phone form")
    api.mount("/redpacket", page)
    return api


async def self_test() -> None:
    """Play WeChat and WeChat Pay with the emulators."""
    from membermkt.testing.emulator.wechat import WeChatEmulator
    from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

    wechat = WeChatEmulator()
    wechat.add_account(APPID, SECRET).add_followers(["oFan0001"])
    wechat.browse_as(APPID, "oFan0001")  # who opens the page inside WeChat
    creds = make_test_credentials(MCH_ID)
    pay = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, api_v3_key="0" * 32)
    files = creds.write(Path(tempfile.mkdtemp()))
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
    # phones: a keyed blind index + the number encrypted (production: SqlStore(url) with
    # MEMBERMKT_PHONE_KEYS set; pass verifier=PhoneVerifier(send_sms, secret=...) to the page
    # so a verified phone merges the follower with the buyer known by it)
    store = InMemoryStore(phones=PhoneProtector(PhoneKey.generate("k1")))
    with (
        OfficialAccount(APPID, SECRET, transport=wechat.transport()) as account,
        WeChatPayV2Gateway(config, cert, transport=pay.transport()) as gateway,
    ):
        api = build(account, gateway, store)
        weixin = httpx.Client(transport=wechat.transport(), base_url="https://open.weixin.qq.com")
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as web:
            r = await web.get("/redpacket/")  # 1. no session yet: off to WeChat's consent page
            back = weixin.get(r.headers["location"].split("#")[0]).headers["location"]
            r = await web.get(back)  # 2. WeChat sends the browser back with a code
            assert r.status_code == 302, r.text
            form = (await web.get("/redpacket/")).text  # 3. the form
            csrf = form.split('name="csrf" value="')[1].split('"')[0]
            data = {"phone": "13800138000", "consent": "yes", "csrf": csrf}
            r = await web.post("/redpacket/", data=data)  # 4. submit: link + pay
            assert 'data-status="paid"' in r.text, r.text
            r = await web.post("/redpacket/", data=data)  # 5. again: never a second packet
            assert 'data-status="paid"' not in r.text
            replay = await web.get(back)  # 6. a replayed callback URL is refused
            assert replay.status_code == 403
        weixin.close()
    member = store.resolve(Identity.openid(APPID, "oFan0001"))
    assert member is not None
    assert store.phones is not None
    assert store.resolve(store.phones.identity("13800138000")) == member
    assert pay.paid_per_openid()["oFan0001"] == 1
    code = parse_qs(urlsplit(back).query)["code"][0]
    print(f"member {member}: phone linked, 1 red packet paid (OAuth code {code[:8]}… used once)")


if __name__ == "__main__":
    asyncio.run(self_test())

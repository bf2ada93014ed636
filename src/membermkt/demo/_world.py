"""Chapter 1, set-up: the emulated official account (scene QR codes, menu) and WeChat Pay
merchant, plus the WeCom corp (:mod:`._wecom`), and the clients wired to them."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from membermkt.demo._base import (
    API_KEY,
    APPID,
    CHANNELS,
    MCH_ID,
    SECRET,
    StoryClock,
    _openid,
)
from membermkt.demo._wecom import _setup_wecom


@attrs.define
class _World:
    """The emulated platforms and the clients wired to them."""

    wechat: Any
    account: Any
    client: Any
    pay: Any
    gateway: Any
    qrcodes: dict[str, str]
    wecom: Any
    corp: Any
    wecom_client: Any
    ways: dict[tuple[str, str], str]

    @classmethod
    def build(cls, clock: StoryClock, population: Sequence[Any], work: Path) -> _World:
        from membermkt.channels.wechat import OfficialAccount
        from membermkt.channels.wechat.api.menu import Button
        from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
        from membermkt.payouts.wechatpay.v2 import RedPacketConfig
        from membermkt.testing.emulator.wechat import WeChatEmulator
        from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

        wechat = WeChatEmulator(seed=1, clock=clock.timestamp, limits=())
        account = wechat.add_account(APPID, SECRET)
        # followers known to the platform (a resumed campaign needs them)
        account.add_followers(_openid(m) for m, _ in population)
        client = OfficialAccount(
            APPID,
            SECRET,
            transport=wechat.transport(),
            clock=clock,
            sleep=lambda s: None,
            budgets=(),
        )
        qrcodes = {
            name: client.create_qrcode(scene, permanent=True).image_url
            for name, scene in CHANNELS.items()
        }
        # at most 3 top-level buttons (a platform rule): C and D sit under "More"
        client.create_menu(
            [
                Button.click("Shop", "A"),
                Button.click("Offers", "B"),
                Button.parent("More", Button.click("Member", "C"), Button.click("Help", "D")),
            ]
        )

        creds = make_test_credentials(MCH_ID, now=clock.now() - dt.timedelta(days=400))
        pay = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, clock=clock.now, seed=1)
        with tempfile.TemporaryDirectory(prefix="membermkt-demo-keys-") as keys:
            files = creds.write(keys)
            cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
        gateway = WeChatPayV2Gateway(
            RedPacketConfig(
                mch_id=MCH_ID,
                wxappid=APPID,
                api_key=API_KEY,
                send_name="榴莲小店",
                act_name="包裹红包",
                wishing="感谢购买",
                remark="扫码关注领红包",
            ),
            cert,
            transport=pay.transport(),
        )
        wecom, corp, wecom_client, ways = _setup_wecom(clock, population)
        return cls(wechat, account, client, pay, gateway, qrcodes, wecom, corp, wecom_client, ways)

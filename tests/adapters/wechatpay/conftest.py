"""Fixtures for the WeChat Pay adapter tests: throw-away credentials generated at test time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from membermkt.payouts.wechatpay.gateway import (
    MerchantCertificate,
    WeChatPayV2Gateway,
    WeChatPayV3Gateway,
    load_merchant_signer,
    load_platform_keys,
)
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.payouts.wechatpay.v3 import TransferConfig
from membermkt.testing.emulator.wechatpay import (
    TestCredentials,
    WeChatPayEmulator,
    make_test_credentials,
)

MCH_ID = "1900000109"
APPID = "wxd930ea5d5a258f4f"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
API_V3_KEY = "0123456789ABCDEF0123456789ABCDEF"


@pytest.fixture(scope="session")
def creds() -> TestCredentials:
    return make_test_credentials(MCH_ID)


@pytest.fixture(scope="session")
def other_creds() -> TestCredentials:
    return make_test_credentials(MCH_ID)


@pytest.fixture
def pem_files(creds: TestCredentials, tmp_path: Path) -> dict[str, str]:
    return creds.write(tmp_path)


@pytest.fixture
def merchant_cert(pem_files: dict[str, str]) -> MerchantCertificate:
    return MerchantCertificate.load(pem_files["merchant_cert"], pem_files["merchant_key"])


@pytest.fixture
def emulator(creds: TestCredentials) -> WeChatPayEmulator:
    return WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, api_v3_key=API_V3_KEY)


def v2_config() -> RedPacketConfig:
    return RedPacketConfig(
        mch_id=MCH_ID,
        wxappid=APPID,
        api_key=API_KEY,
        send_name="榴莲小店",
        act_name="包裹红包",
        wishing="感谢购买",
        remark="扫码关注领红包",
    )


def v3_config(notify_url: str | None = "https://example.com/pay/notify") -> TransferConfig:
    return TransferConfig(
        appid=APPID,
        transfer_scene_id="1000",
        transfer_remark="包裹红包",
        scene_report_infos=(("活动名称", "包裹红包"), ("奖励说明", "签收奖励")),
        notify_url=notify_url,
        user_recv_perception="现金奖励",
    )


@pytest.fixture
def v2_gateway(
    emulator: WeChatPayEmulator, merchant_cert: MerchantCertificate
) -> Iterator[WeChatPayV2Gateway]:
    with WeChatPayV2Gateway(v2_config(), merchant_cert, transport=emulator.transport()) as gw:
        yield gw


@pytest.fixture
def v3_gateway(
    emulator: WeChatPayEmulator, creds: TestCredentials, pem_files: dict[str, str]
) -> Iterator[WeChatPayV3Gateway]:
    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], cert_file=pem_files["merchant_cert"]
    )
    keys = load_platform_keys(
        certificates=[creds.platform_cert],
        public_keys={creds.platform_public_key_id: creds.platform_public_key},
    )
    with WeChatPayV3Gateway(
        v3_config(), signer, keys, api_v3_key=API_V3_KEY, transport=emulator.transport()
    ) as gw:
        yield gw


NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)

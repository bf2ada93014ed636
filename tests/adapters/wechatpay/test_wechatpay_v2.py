"""v2 cash red packets: the gateway against the emulator (in-process and over real mTLS)."""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs
import httpx
import pytest

from membermkt.errors import ConfigError, UsageError
from membermkt.payouts.base import PayoutGateway, PayoutRequest, PayoutStatus
from membermkt.payouts.wechatpay.gateway import (
    AsyncWeChatPayV2Gateway,
    MerchantCertificate,
    WeChatPayV2Gateway,
)
from membermkt.payouts.wechatpay.v2 import build_sendredpack
from membermkt.testing.emulator.wechatpay import Fault, TestCredentials, WeChatPayEmulator

from .conftest import v2_config

BILL = "1900000109202611230000000001"


def req(bill: str = BILL, openid: str = "o-buyer-1", amount: int = 500) -> PayoutRequest:
    return PayoutRequest(bill_no=bill, openid=openid, amount_fen=amount)


def test_gateway_is_a_payout_gateway(v2_gateway: WeChatPayV2Gateway) -> None:
    assert isinstance(v2_gateway, PayoutGateway)
    assert v2_gateway.product == "wechatpay.v2.redpack"


def test_pay_then_query(v2_gateway: WeChatPayV2Gateway, emulator: WeChatPayEmulator) -> None:
    result = v2_gateway.pay(req())
    assert result.status is PayoutStatus.SUCCESS
    assert result.platform_id
    assert result.amount_fen == 500
    q = v2_gateway.query(BILL)
    assert (q.status, q.state, q.amount_fen) == (PayoutStatus.SUCCESS, "SENT", 500)
    assert emulator.total_paid_fen == 500


def test_same_bill_never_pays_twice(
    v2_gateway: WeChatPayV2Gateway, emulator: WeChatPayEmulator
) -> None:
    first = v2_gateway.pay(req())
    again = v2_gateway.pay(req())
    assert again.status is PayoutStatus.SUCCESS
    assert again.platform_id == first.platform_id
    assert len(emulator.payments) == 1
    reused = v2_gateway.pay(req(amount=600))
    assert reused.status is PayoutStatus.FAILED
    assert len(emulator.payments) == 1


def test_unknown_bill_query_is_not_found(v2_gateway: WeChatPayV2Gateway) -> None:
    assert v2_gateway.query(BILL).status is PayoutStatus.NOT_FOUND


def test_amount_bounds_and_daily_limits(
    v2_gateway: WeChatPayV2Gateway, emulator: WeChatPayEmulator
) -> None:
    assert v2_gateway.pay(req(amount=99)).status is PayoutStatus.FAILED
    assert v2_gateway.pay(req(amount=20_001)).status is PayoutStatus.FAILED
    for i in range(10):
        assert v2_gateway.pay(req(bill=f"{BILL[:-2]}{i:02d}")).status is PayoutStatus.SUCCESS
    eleventh = v2_gateway.pay(req(bill=f"{BILL[:-2]}99"))
    assert (eleventh.status, eleventh.state) == (PayoutStatus.FAILED, "SENDNUM_LIMIT")
    assert len(emulator.paid_per_openid()) == 1
    assert emulator.paid_per_openid()["o-buyer-1"] == 10


def test_bad_bill_format_is_refused(v2_gateway: WeChatPayV2Gateway) -> None:
    result = v2_gateway.pay(req(bill="x" * 29))
    assert (result.status, result.state) == (PayoutStatus.FAILED, "PARAM_ERROR")


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.SYSTEMERROR, PayoutStatus.UNKNOWN),
        (Fault.PROCESSING, PayoutStatus.PENDING),
        (Fault.TIMEOUT, PayoutStatus.UNKNOWN),
    ],
)
def test_ambiguous_answers_are_classified(
    v2_gateway: WeChatPayV2Gateway, emulator: WeChatPayEmulator, fault: Fault, status: PayoutStatus
) -> None:
    emulator.fail_next(fault)
    assert v2_gateway.pay(req()).status is status
    # whatever happened, the same bill converges to exactly one payment
    final = v2_gateway.pay(req())
    assert final.status in (PayoutStatus.SUCCESS, PayoutStatus.PENDING)
    assert v2_gateway.query(BILL).status is PayoutStatus.SUCCESS
    assert len(emulator.payments) == 1


def test_wrong_api_key_is_a_definite_sign_error(
    emulator: WeChatPayEmulator, merchant_cert: MerchantCertificate
) -> None:
    bad = attrs.evolve(v2_config(), api_key="0" * 32)
    with WeChatPayV2Gateway(bad, merchant_cert, transport=emulator.transport()) as gw:
        result = gw.pay(req())
    assert (result.status, result.state) == (PayoutStatus.FAILED, "SIGN_ERROR")
    assert emulator.payments == []


def test_other_merchant_certificate_gets_ca_error(
    emulator: WeChatPayEmulator, other_creds: TestCredentials, tmp_path: Path
) -> None:
    files = other_creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    with WeChatPayV2Gateway(v2_config(), cert, transport=emulator.transport()) as gw:
        result = gw.pay(req())
    assert (result.status, result.state) == (PayoutStatus.FAILED, "CA_ERROR")


def test_request_without_client_certificate_fails_the_handshake(
    emulator: WeChatPayEmulator, merchant_cert: MerchantCertificate
) -> None:
    request = build_sendredpack(v2_config(), req(), "nonce")
    with httpx.Client(transport=emulator.transport()) as client, pytest.raises(httpx.ConnectError):
        client.post("https://api.mch.weixin.qq.com" + request.path, content=request.body)


def test_certificate_loading_errors_are_clear(
    pem_files: dict[str, str], other_creds: TestCredentials, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="not found"):
        MerchantCertificate.load(tmp_path / "missing.pem", pem_files["merchant_key"])
    with pytest.raises(ConfigError, match="not found"):
        MerchantCertificate.load(pem_files["merchant_cert"], tmp_path / "nokey.pem")
    (tmp_path / "garbage.pem").write_text("hello")
    with pytest.raises(ConfigError, match=r"not a PEM X\.509 certificate"):
        MerchantCertificate.load(tmp_path / "garbage.pem", pem_files["merchant_key"])
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        MerchantCertificate.load(pem_files["merchant_cert"], tmp_path / "garbage.pem")
    (tmp_path / "other").mkdir()
    other = other_creds.write(tmp_path / "other")
    with pytest.raises(ConfigError, match="does not match"):
        MerchantCertificate.load(pem_files["merchant_cert"], other["merchant_key"])


def test_gateway_refuses_missing_certificate_and_double_injection(
    emulator: WeChatPayEmulator, merchant_cert: MerchantCertificate
) -> None:
    with pytest.raises(ConfigError, match="merchant certificate"):
        WeChatPayV2Gateway(v2_config(), None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not both"):
        WeChatPayV2Gateway(
            v2_config(), merchant_cert, transport=emulator.transport(), http_client=httpx.Client()
        )


async def test_async_gateway_pays_once(
    emulator: WeChatPayEmulator, merchant_cert: MerchantCertificate
) -> None:
    async with AsyncWeChatPayV2Gateway(
        v2_config(), merchant_cert, transport=emulator.transport()
    ) as gw:
        emulator.fail_next(Fault.SYSTEMERROR)
        first = await gw.pay(req())
        assert first.status is PayoutStatus.UNKNOWN
        assert (await gw.pay(req())).status is PayoutStatus.SUCCESS
        assert (await gw.query(BILL)).status is PayoutStatus.SUCCESS
    assert len(emulator.payments) == 1


def test_real_mutual_tls_on_loopback(
    emulator: WeChatPayEmulator, pem_files: dict[str, str], tmp_path: Path
) -> None:
    """The merchant certificate travels in a real TLS handshake to the loopback emulator."""
    cert = MerchantCertificate.load(pem_files["merchant_cert"], pem_files["merchant_key"])
    with emulator.serve(directory=str(tmp_path)) as url:
        with WeChatPayV2Gateway(
            v2_config(), cert, base_url=url, ca_file=pem_files["ca_cert"]
        ) as gw:
            assert gw.pay(req()).status is PayoutStatus.SUCCESS
            assert gw.query(BILL).status is PayoutStatus.SUCCESS
        # a client that presents no certificate is refused at the TLS / protocol level
        with httpx.Client(verify=ssl.create_default_context(cafile=pem_files["ca_cert"])) as plain:
            body = build_sendredpack(v2_config(), req(), "n").body
            with pytest.raises(httpx.HTTPError):
                plain.post(url + "/mmpaymkttransfers/sendredpack", content=body)
    assert len(emulator.payments) == 1

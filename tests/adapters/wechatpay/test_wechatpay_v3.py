"""v3 merchant transfers: signed requests checked by the emulator, signed answers checked by
the gateway, encrypted callbacks, ambiguous answers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest

from membermkt.errors import ConfigError, DecryptError, SignatureError
from membermkt.payouts.base import HttpResponse, PayoutGateway, PayoutRequest, PayoutStatus
from membermkt.payouts.wechatpay import v3
from membermkt.payouts.wechatpay.gateway import (
    AsyncWeChatPayV3Gateway,
    WeChatPayV3Gateway,
    load_merchant_signer,
    load_platform_keys,
)
from membermkt.payouts.wechatpay.signing import load_private_key, verify_v3_response
from membermkt.testing.emulator.wechatpay import Fault, TestCredentials, WeChatPayEmulator

from .conftest import API_V3_KEY, APPID, MCH_ID, v3_config

BILL = "20261123abcdef0123456789abcdef01"


def req(bill: str = BILL, amount: int = 888) -> PayoutRequest:
    return PayoutRequest(bill_no=bill, openid="o-buyer-1", amount_fen=amount)


def test_gateway_is_a_payout_gateway(v3_gateway: WeChatPayV3Gateway) -> None:
    assert isinstance(v3_gateway, PayoutGateway)


def test_transfer_accepted_then_query_success(
    v3_gateway: WeChatPayV3Gateway, emulator: WeChatPayEmulator
) -> None:
    first = v3_gateway.pay(req())
    assert (first.status, first.state) == (PayoutStatus.PENDING, "ACCEPTED")
    assert first.platform_id
    q = v3_gateway.query(BILL)
    assert (q.status, q.state, q.amount_fen) == (PayoutStatus.SUCCESS, "SUCCESS", 888)
    assert v3_gateway.pay(req()).status is PayoutStatus.SUCCESS  # idempotent replay
    assert len(emulator.payments) == 1


def test_query_unknown_bill_is_not_found(v3_gateway: WeChatPayV3Gateway) -> None:
    assert v3_gateway.query(BILL).status is PayoutStatus.NOT_FOUND


def test_emulator_verifies_request_signature_with_merchant_public_key(
    emulator: WeChatPayEmulator,
    creds: TestCredentials,
    other_creds: TestCredentials,
    pem_files: dict[str, str],
) -> None:
    """A request signed with another key (same serial) is refused with 401 SIGN_ERROR."""
    keys = load_platform_keys(certificates=[creds.platform_cert])
    forged = v3.MerchantSigner(
        mchid=MCH_ID,
        serial_no=creds.merchant_serial,
        private_key=load_private_key(other_creds.merchant_key),
    )
    with WeChatPayV3Gateway(v3_config(), forged, keys, transport=emulator.transport()) as gw:
        result = gw.pay(req())
    assert (result.status, result.state) == (PayoutStatus.FAILED, "SIGN_ERROR")
    assert emulator.payments == []


def test_emulator_refuses_stale_timestamps(
    emulator: WeChatPayEmulator, creds: TestCredentials, pem_files: dict[str, str]
) -> None:
    class Past:
        def now(self) -> dt.datetime:
            return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)

    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], serial_no=creds.merchant_serial
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    with WeChatPayV3Gateway(
        v3_config(),
        signer,
        keys,
        transport=emulator.transport(),
        clock=Past(),
        check_timestamp=False,
    ) as gw:
        result = gw.pay(req())
    assert (result.status, result.state) == (PayoutStatus.FAILED, "SIGN_ERROR")


def test_tampered_response_is_rejected(
    emulator: WeChatPayEmulator, creds: TestCredentials, pem_files: dict[str, str]
) -> None:
    """An emulator-signed answer whose body was changed in transit is never believed."""

    def tamper(request: httpx.Request) -> httpx.Response:
        real = emulator.handle(request)
        data = json.loads(real.read())
        data["state"] = "SUCCESS"
        return httpx.Response(real.status_code, headers=real.headers, json=data)

    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], serial_no=creds.merchant_serial
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    with WeChatPayV3Gateway(v3_config(), signer, keys, transport=httpx.MockTransport(tamper)) as gw:
        result = gw.pay(req())
    assert (result.status, result.state) == (PayoutStatus.UNKNOWN, "BAD_SIGNATURE")
    # the untampered answer verifies (pure parser, same bytes)
    real = emulator.handle(
        httpx.Request("GET", "https://x" + v3.query_path(BILL), headers=_auth(signer, BILL))
    )
    ok = v3.parse_query(
        BILL,
        HttpResponse(status_code=real.status_code, headers=dict(real.headers), body=real.read()),
        keys,
    )
    assert ok.status is PayoutStatus.SUCCESS
    with pytest.raises(SignatureError):
        verify_v3_response(dict(real.headers), real.read() + b" ", keys)


def _auth(signer: v3.MerchantSigner, bill: str) -> dict[str, str]:
    req_ = v3.sign_request(
        signer,
        "GET",
        v3.query_path(bill),
        b"",
        timestamp=int(dt.datetime.now(dt.UTC).timestamp()),
        nonce="n1",
    )
    return dict(req_.headers)


def test_public_key_scheme(creds: TestCredentials, pem_files: dict[str, str]) -> None:
    """Answers signed under a PUB_KEY_ID_ serial verify with the WeChat Pay public key."""
    emulator = WeChatPayEmulator(creds, appid=APPID, api_v3_key=API_V3_KEY, use_public_key_id=True)
    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], cert_file=pem_files["merchant_cert"]
    )
    only_cert = load_platform_keys(certificates=[creds.platform_cert])
    with WeChatPayV3Gateway(v3_config(), signer, only_cert, transport=emulator.transport()) as gw:
        assert gw.pay(req()).state == "BAD_SIGNATURE"
    both = load_platform_keys(
        certificates=[creds.platform_cert],
        public_keys={creds.platform_public_key_id: creds.platform_public_key},
    )
    with WeChatPayV3Gateway(v3_config(), signer, both, transport=emulator.transport()) as gw:
        assert gw.query(BILL).status is PayoutStatus.SUCCESS


def test_callbacks_are_signed_encrypted_and_parsed(
    v3_gateway: WeChatPayV3Gateway, emulator: WeChatPayEmulator
) -> None:
    v3_gateway.pay(req())
    seen = []
    assert (
        emulator.deliver_callbacks(lambda h, b: seen.append(v3_gateway.parse_notification(h, b)))
        == 1
    )
    (result,) = seen
    assert (result.bill_no, result.status, result.amount_fen) == (BILL, PayoutStatus.SUCCESS, 888)


def test_tampered_callback_is_refused(
    v3_gateway: WeChatPayV3Gateway, emulator: WeChatPayEmulator
) -> None:
    v3_gateway.pay(req())
    (cb,) = emulator.callbacks
    with pytest.raises(SignatureError):
        v3_gateway.parse_notification(
            cb.headers, cb.body.replace(b"mch_payment", b"mch_paymenu", 1)
        )
    wrong_key = v3.parse_notification
    with pytest.raises(DecryptError):
        wrong_key(cb.headers, cb.body, v3_gateway.platform_keys, "X" * 32)


def test_waiting_for_user_confirmation(creds: TestCredentials, pem_files: dict[str, str]) -> None:
    emulator = WeChatPayEmulator(creds, appid=APPID, api_v3_key=API_V3_KEY, auto_confirm=False)
    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], cert_file=pem_files["merchant_cert"]
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    with WeChatPayV3Gateway(v3_config(), signer, keys, transport=emulator.transport()) as gw:
        waiting = gw.pay(req())
        assert (waiting.status, waiting.state) == (PayoutStatus.PENDING, "WAIT_USER_CONFIRM")
        assert waiting.package_info
        assert emulator.payments == []
        emulator.confirm(BILL)
        assert gw.query(BILL).status is PayoutStatus.SUCCESS
    assert len(emulator.payments) == 1


def test_amount_bounds_and_user_name_rule(
    v3_gateway: WeChatPayV3Gateway, emulator: WeChatPayEmulator
) -> None:
    result = v3_gateway.pay(req(amount=200_000))
    assert (result.status, result.state) == (PayoutStatus.FAILED, "PARAM_ERROR")
    assert emulator.payments == []


@pytest.mark.parametrize("fault", [Fault.SYSTEMERROR, Fault.TIMEOUT, Fault.PROCESSING])
def test_ambiguous_then_converges_to_one_payment(
    v3_gateway: WeChatPayV3Gateway, emulator: WeChatPayEmulator, fault: Fault
) -> None:
    emulator.fail_next(fault)
    first = v3_gateway.pay(req())
    expected = PayoutStatus.PENDING if fault is Fault.PROCESSING else PayoutStatus.UNKNOWN
    assert first.status is expected
    v3_gateway.pay(req())
    assert v3_gateway.query(BILL).status is PayoutStatus.SUCCESS
    assert len(emulator.payments) == 1


def test_configuration_errors(creds: TestCredentials, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no platform keys"):
        load_platform_keys()
    with pytest.raises(ConfigError, match="PUB_KEY_ID_"):
        load_platform_keys(public_keys={"abc": creds.platform_public_key})
    (tmp_path / "k.pem").write_bytes(creds.merchant_key)
    with pytest.raises(ConfigError, match="serial_no or cert_file"):
        load_merchant_signer(MCH_ID, tmp_path / "k.pem")
    with pytest.raises(ConfigError, match="https"):
        v3.TransferConfig(
            appid=APPID, transfer_scene_id="1000", transfer_remark="x", notify_url="http://a"
        )


async def test_async_gateway(
    emulator: WeChatPayEmulator, creds: TestCredentials, pem_files: dict[str, str]
) -> None:
    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], cert_file=pem_files["merchant_cert"]
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    async with AsyncWeChatPayV3Gateway(
        v3_config(), signer, keys, api_v3_key=API_V3_KEY, transport=emulator.transport()
    ) as gw:
        emulator.fail_next(Fault.TIMEOUT)
        assert (await gw.pay(req())).status is PayoutStatus.UNKNOWN
        await gw.pay(req())
        assert (await gw.query(BILL)).status is PayoutStatus.SUCCESS
    assert len(emulator.payments) == 1

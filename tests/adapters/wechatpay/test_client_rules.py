"""The gateways classify and verify as the platform means: official v2 error names,
NOTENOUGH / NOT_ENOUGH as "no funds yet", FATAL_ERROR, serials compared as integers, and
callbacks of the wrong kind refused even when correctly signed."""

from __future__ import annotations

import json
import secrets

import pytest

from membermkt.errors import DecryptError, SignatureError
from membermkt.payouts.base import HttpResponse, PayoutStatus
from membermkt.payouts.wechatpay import v2, v3
from membermkt.payouts.wechatpay.signing import (
    aead_encrypt,
    find_platform_key,
    load_certificate,
    load_private_key,
    rsa_sign,
    to_xml,
    v3_response_message,
)
from membermkt.testing.emulator.wechatpay import TestCredentials

from .conftest import API_KEY, API_V3_KEY

BILL = "1900000109202611230000000001"


def v2_answer(code: str) -> HttpResponse:
    return HttpResponse(
        status_code=200,
        body=to_xml(
            {"return_code": "SUCCESS", "result_code": "FAIL", "err_code": code, "mch_billno": BILL}
        ),
    )


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("SENDNUM_LIMIT", PayoutStatus.FAILED, True),
        ("SENDAMOUNT_LIMIT", PayoutStatus.FAILED, True),
        ("RCVDAMOUNT_LIMIT", PayoutStatus.FAILED, True),
        ("FATAL_ERROR", PayoutStatus.FAILED, False),
        ("SEND_FAILED", PayoutStatus.FAILED, False),
        ("NOTENOUGH", PayoutStatus.NO_FUNDS, True),
        ("SENDNUMLIMIT", PayoutStatus.UNKNOWN, False),  # not a platform name: unknown code
        ("SYSTEMERROR", PayoutStatus.UNKNOWN, False),
    ],
)
def test_v2_codes_follow_the_official_table(
    code: str, status: PayoutStatus, retryable: bool
) -> None:
    """Rule v2.error_names: the official table's names are classified; the old spellings
    are unknown codes (outcome unknown, never a false "failed")."""
    result = v2.parse_sendredpack(BILL, v2_answer(code), API_KEY)
    assert (result.status, result.state, result.retryable) == (status, code, retryable)


def test_v3_not_enough_is_no_funds() -> None:
    body = json.dumps({"code": "NOT_ENOUGH", "message": "资金不足"}).encode()
    result = v3._error(BILL, HttpResponse(status_code=403, body=body), json.loads(body))
    assert (result.status, result.state) == (PayoutStatus.NO_FUNDS, "NOT_ENOUGH")


def test_serials_compare_as_integers(creds: TestCredentials) -> None:
    """Rule v3.serial: a serial with a leading zero or another letter case is the same
    certificate (wechatpayv3 compares them as integers)."""
    key = load_certificate(creds.platform_cert).public_key()
    serial = creds.platform_serial.upper().lstrip("0")
    keys = {serial: key}
    for variant in (serial.lower(), "0" + serial, "00" + serial.lower()):
        assert find_platform_key(keys, variant) is key
    assert find_platform_key(keys, "1" + serial) is None
    assert find_platform_key({"PUB_KEY_ID_01": key}, "PUB_KEY_ID_1") is None  # ids: exact


def signed_callback(
    creds: TestCredentials, envelope: dict[str, object], sig_type: str = "WECHATPAY2-SHA256-RSA2048"
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(envelope).encode()
    ts, nonce = "1700000000", secrets.token_hex(8)
    platform_key = load_private_key(creds.platform_key)
    headers = {
        "Wechatpay-Serial": creds.platform_serial,
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature-Type": sig_type,
        "Wechatpay-Signature": rsa_sign(platform_key, v3_response_message(ts, nonce, body)),
    }
    return headers, body


def envelope(**override: object) -> dict[str, object]:
    resource = json.dumps({"out_bill_no": BILL, "state": "SUCCESS", "transfer_amount": 300})
    nonce = "fPqxLQRZmjVn"
    env: dict[str, object] = {
        "id": "cb-1",
        "event_type": "MCHTRANSFER.BILL.FINISHED",
        "resource_type": "encrypt-resource",
        "resource": {
            "original_type": "mch_payment",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": aead_encrypt(API_V3_KEY, nonce, resource.encode(), "mch_payment"),
            "associated_data": "mch_payment",
            "nonce": nonce,
        },
    }
    resource_override = override.pop("resource", None)
    env.update(override)
    if isinstance(resource_override, dict):
        env["resource"] = {**env["resource"], **resource_override}  # type: ignore[dict-item]
    return env


@pytest.mark.parametrize(
    "bad",
    [
        {"event_type": "TRANSACTION.SUCCESS"},
        {"resource_type": "plain-resource"},
        {"resource": {"algorithm": "AEAD_AES_128_GCM"}},
        {"resource": {"original_type": "transaction"}},
    ],
)
def test_v3_callbacks_of_another_kind_are_refused(
    creds: TestCredentials, bad: dict[str, object]
) -> None:
    """Rule v3.callback_kind: a correctly signed notification that is not a finished
    transfer never becomes a payout result."""
    keys = {creds.platform_serial: load_certificate(creds.platform_cert).public_key()}
    headers, body = signed_callback(creds, envelope())
    assert v3.parse_notification(headers, body, keys, API_V3_KEY).status is PayoutStatus.SUCCESS
    headers, body = signed_callback(creds, envelope(**bad))
    with pytest.raises(DecryptError, match="not a transfer notification"):
        v3.parse_notification(headers, body, keys, API_V3_KEY)


def test_v3_callback_signature_type_is_checked(creds: TestCredentials) -> None:
    """Rule v3.callback_kind: Wechatpay-Signature-Type must be WECHATPAY2-SHA256-RSA2048."""
    keys = {creds.platform_serial: load_certificate(creds.platform_cert).public_key()}
    headers, body = signed_callback(creds, envelope(), sig_type="WECHATPAY2-SM2-WITH-SM3")
    with pytest.raises(SignatureError, match="Signature-Type"):
        v3.parse_notification(headers, body, keys, API_V3_KEY)

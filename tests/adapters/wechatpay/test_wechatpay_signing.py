"""Pure WeChat Pay signing / crypto: the reference vectors (§4.1, §4.5) and hardening."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from membermkt.errors import ConfigError, DecryptError, SignatureError
from membermkt.payouts.wechatpay.signing import (
    aead_decrypt,
    aead_encrypt,
    from_xml,
    load_private_key,
    load_public_key,
    parse_authorization,
    rsa_sign,
    rsa_verify,
    to_xml,
    v2_sign,
    v2_string_to_sign,
    v2_verify,
    v3_authorization,
    v3_request_message,
    v3_response_message,
    verify_v3_response,
)
from membermkt.testing.emulator.wechatpay import TestCredentials

OFFICIAL = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
KEY = "192006250b4c09247ec02edce69f6a2d"


def test_v2_official_vector_string_md5_and_hmac() -> None:
    """Reference §4.1: the official doc example (WxJava SignUtilsTest)."""
    assert v2_string_to_sign(OFFICIAL, KEY) == (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
        "&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
    )
    assert v2_sign(OFFICIAL, KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert v2_sign(OFFICIAL, KEY, "HMAC-SHA256") == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_v2_wechatpy_vector() -> None:
    """Reference §4.1: wechatpy tests/test_pay.py."""
    params = {"test1": "test1", "test2": "test2"}
    assert v2_sign(params, KEY) == "1E3A8D73B5A4AEE787C0F68B5DAB8520"
    assert v2_sign(params, KEY, "HMAC-SHA256") == (
        "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659"
    )


def test_v2_empty_values_and_sign_are_skipped() -> None:
    signed = dict(OFFICIAL, sign="whatever", empty="")
    assert v2_sign(signed, KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_v2_verify_accepts_and_rejects() -> None:
    params = dict(OFFICIAL, sign="9A0A8659F005D6984697E2CA0A9CF3B7")
    v2_verify(params, KEY)
    with pytest.raises(SignatureError):
        v2_verify(dict(params, body="tampered"), KEY)
    with pytest.raises(SignatureError, match="no sign"):
        v2_verify(OFFICIAL, KEY)


def test_v2_unknown_sign_type_is_refused() -> None:
    with pytest.raises(ValueError, match="sign_type"):
        v2_sign(OFFICIAL, KEY, "SHA1")


def test_xml_round_trip_and_hardening() -> None:
    fields = from_xml(to_xml({"a": "中文", "b": 1, "c": ""}))
    assert fields == {"a": "中文", "b": "1"}
    with pytest.raises(DecryptError, match="DTD"):
        from_xml(b'<!DOCTYPE x [<!ENTITY e "boom">]><xml><a>&e;</a></xml>')
    with pytest.raises(DecryptError, match="too large"):
        from_xml(b"<xml>" + b"a" * 70_000 + b"</xml>")
    with pytest.raises(DecryptError, match="well-formed"):
        from_xml(b"<xml><a></xml>")
    with pytest.raises(DecryptError, match="root"):
        from_xml(b"<root/>")


def test_aead_reference_vector() -> None:
    """Reference §4.5 self-computed vector (not official)."""
    plain = aead_decrypt(
        "0123456789ABCDEF0123456789ABCDEF",
        "fPqxLQRZmjVn",
        "xmVntuhE6MTcmpzyfS+72G2gAQ7QST2wjeDJHKgUhyYVxe4ZvmVfJhXWoaOcJlzfkW/llfh2XPqGqRCUdWn9v9G7Ahs0eQYW",
        "transaction",
    )
    assert plain == b'{"out_trade_no":"ORDER20240101","trade_state":"SUCCESS"}'


def test_aead_rejects_wrong_key_tamper_and_bad_key_length() -> None:
    key = "0123456789ABCDEF0123456789ABCDEF"
    ct = aead_encrypt(key, "abcdefghijkl", b"hello", "aad")
    assert aead_decrypt(key, "abcdefghijkl", ct, "aad") == b"hello"
    with pytest.raises(DecryptError):
        aead_decrypt("X" * 32, "abcdefghijkl", ct, "aad")
    with pytest.raises(DecryptError):
        aead_decrypt(key, "abcdefghijkl", ct, "other")
    with pytest.raises(DecryptError, match="base64"):
        aead_decrypt(key, "abcdefghijkl", "***", "aad")
    with pytest.raises(ConfigError, match="32 bytes"):
        aead_decrypt("short", "abcdefghijkl", ct, "aad")


def test_v3_message_layout() -> None:
    """Reference §4.3/§4.4: five and three lines, each ending in a newline."""
    assert v3_request_message("get", "/v3/x?a=1", 1554208460, "n", b"") == (
        b"GET\n/v3/x?a=1\n1554208460\nn\n\n"
    )
    assert v3_response_message(1, "n", b"{}") == b"1\nn\n{}\n"


def test_v3_authorization_round_trip(creds: TestCredentials) -> None:
    key = load_private_key(creds.merchant_key)
    msg = v3_request_message("POST", "/v3/fund-app/mch-transfer/transfer-bills", 1, "n", b"{}")
    sig = rsa_sign(key, msg)
    header = v3_authorization(mchid="1", serial_no="AB", nonce="n", timestamp=1, signature=sig)
    items = parse_authorization(header)
    assert items["serial_no"] == "AB"
    assert rsa_verify(load_public_key(creds.merchant_cert), msg, items["signature"])
    assert not rsa_verify(load_public_key(creds.platform_cert), msg, items["signature"])
    assert not rsa_verify(load_public_key(creds.merchant_cert), msg + b"x", sig)
    assert not rsa_verify(load_public_key(creds.merchant_cert), msg, "not base64!")
    with pytest.raises(SignatureError, match="schema"):
        parse_authorization("Bearer abc")
    with pytest.raises(SignatureError, match="lacks"):
        parse_authorization('WECHATPAY2-SHA256-RSA2048 mchid="1"')


def _signed_headers(key: rsa.RSAPrivateKey, serial: str, ts: int, body: bytes) -> dict[str, str]:
    return {
        "Wechatpay-Serial": serial,
        "Wechatpay-Timestamp": str(ts),
        "Wechatpay-Nonce": "nonce",
        "Wechatpay-Signature": rsa_sign(key, v3_response_message(ts, "nonce", body)),
    }


def test_verify_v3_response_by_serial_staleness_and_tamper(creds: TestCredentials) -> None:
    platform = load_private_key(creds.platform_key)
    keys = {
        creds.platform_serial: load_public_key(creds.platform_cert),
        creds.platform_public_key_id: load_public_key(creds.platform_public_key),
    }
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ts = int(now.timestamp())
    body = b'{"state":"SUCCESS"}'
    for serial in (creds.platform_serial, creds.platform_public_key_id):
        headers = _signed_headers(platform, serial, ts, body)
        assert verify_v3_response(headers, body, keys, now=now) == serial
    headers = _signed_headers(platform, creds.platform_serial, ts, body)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_v3_response(headers, b'{"state":"FAIL"}', keys, now=now)
    with pytest.raises(SignatureError, match="no platform key"):
        verify_v3_response(dict(headers, **{"Wechatpay-Serial": "00"}), body, keys)
    with pytest.raises(SignatureError, match="away from now"):
        verify_v3_response(headers, body, keys, now=now + dt.timedelta(minutes=6))
    missing = {k: v for k, v in headers.items() if k != "Wechatpay-Signature"}
    with pytest.raises(SignatureError, match="missing"):
        verify_v3_response(missing, body, keys)
    merchant = load_private_key(creds.merchant_key)
    forged = _signed_headers(merchant, creds.platform_serial, ts, body)
    with pytest.raises(SignatureError):
        verify_v3_response(forged, body, keys, now=now)


def test_key_loading_errors_are_clear(creds: TestCredentials) -> None:
    with pytest.raises(ConfigError, match="private key"):
        load_private_key(b"not a key")
    with pytest.raises(ConfigError, match="public key or certificate"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="certificate"):
        load_public_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

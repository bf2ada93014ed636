"""Oracle tests: the signing, verification and encryption primitives agree with two
independent implementations — ``wechatpayv3`` (v3 RSA signatures, verification, AES-256-GCM,
RSA-OAEP) and ``wechatpy.pay`` (v2 MD5 / HMAC-SHA256 signatures) — in both directions, over
random parameters and random keys. Both are dev dependencies only."""

from __future__ import annotations

import base64
import string

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.errors import SignatureError
from membermkt.payouts.wechatpay.signing import (
    aead_decrypt,
    aead_encrypt,
    rsa_oaep_encrypt,
    rsa_sign,
    v2_sign,
    v2_verify,
    v3_request_message,
    v3_response_message,
    verify_v3_response,
)

wechatpayv3_utils = pytest.importorskip("wechatpayv3.utils")
wechatpy_pay_utils = pytest.importorskip("wechatpy.pay.utils")

_KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]

keys = st.sampled_from(_KEYS)
api_keys = st.text(alphabet=string.ascii_letters + string.digits, min_size=32, max_size=32)
v3_keys = api_keys
names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda k: k != "sign"
)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
params = st.dictionaries(names, values, min_size=1, max_size=12)
bodies = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
nonces = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=12)
timestamps = st.integers(min_value=1_500_000_000, max_value=2_000_000_000)


# --------------------------------------------------------------------------- v2 (wechatpy)


@settings(max_examples=150, deadline=None)
@given(params=params, key=api_keys)
def test_v2_md5_agrees_with_wechatpy_both_ways(params: dict[str, str], key: str) -> None:
    ours = v2_sign(params, key)
    assert ours == wechatpy_pay_utils.calculate_signature(params, key)
    assert wechatpy_pay_utils._check_signature({**params, "sign": ours}, key)
    theirs = wechatpy_pay_utils.calculate_signature(params, key)
    v2_verify({**params, "sign": theirs}, key)  # raises on disagreement
    with pytest.raises(SignatureError):
        v2_verify({**params, "sign": theirs}, key[::-1] + "x")


@settings(max_examples=100, deadline=None)
@given(params=params, key=api_keys)
def test_v2_hmac_sha256_agrees_with_wechatpy(params: dict[str, str], key: str) -> None:
    theirs = wechatpy_pay_utils.calculate_signature_hmac(params, key)
    assert v2_sign(params, key, "HMAC-SHA256") == theirs
    v2_verify({**params, "sign": theirs}, key, "HMAC-SHA256")


# --------------------------------------------------------------------------- v3 (wechatpayv3)


@settings(max_examples=40, deadline=None)
@given(key=keys, body=bodies, nonce=nonces, ts=timestamps, method=st.sampled_from(["GET", "POST"]))
def test_v3_request_signature_equals_wechatpayv3(
    key: rsa.RSAPrivateKey, body: str, nonce: str, ts: int, method: str
) -> None:
    path = "/v3/fund-app/mch-transfer/transfer-bills"
    ours = rsa_sign(key, v3_request_message(method, path, ts, nonce, body.encode()))
    sign_str = f"{method}\n{path}\n{ts}\n{nonce}\n{body}\n"
    assert ours == wechatpayv3_utils.rsa_sign(key, sign_str)  # PKCS#1 v1.5 is deterministic


@settings(max_examples=40, deadline=None)
@given(key=keys, body=bodies, nonce=nonces, ts=timestamps)
def test_v3_response_verification_agrees_with_wechatpayv3(
    key: rsa.RSAPrivateKey, body: str, nonce: str, ts: int
) -> None:
    public = key.public_key()
    # theirs signs (as the platform would), ours verifies
    theirs = wechatpayv3_utils.rsa_sign(key, f"{ts}\n{nonce}\n{body}\n")
    headers = {
        "Wechatpay-Serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "Wechatpay-Timestamp": str(ts),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": theirs,
    }
    assert verify_v3_response(headers, body.encode(), {headers["Wechatpay-Serial"]: public})
    # ours signs, theirs verifies
    ours = rsa_sign(key, v3_response_message(ts, nonce, body.encode()))
    assert wechatpayv3_utils.rsa_verify(str(ts), nonce, body, ours, public)
    with pytest.raises(SignatureError):
        verify_v3_response(
            {**headers, "Wechatpay-Nonce": nonce[::-1] + "x"},
            body.encode(),
            {headers["Wechatpay-Serial"]: public},
        )


@settings(max_examples=150, deadline=None)
@given(key=v3_keys, nonce=nonces, plaintext=bodies, aad=st.sampled_from(["", "mch_payment"]))
def test_aes_gcm_agrees_with_wechatpayv3_both_ways(
    key: str, nonce: str, plaintext: str, aad: str
) -> None:
    ours = aead_encrypt(key, nonce, plaintext.encode(), aad)
    assert wechatpayv3_utils.aes_decrypt(nonce, ours, aad, key) == plaintext
    theirs = base64.b64encode(
        AESGCM(key.encode()).encrypt(nonce.encode(), plaintext.encode(), aad.encode())
    ).decode()
    assert aead_decrypt(key, nonce, theirs, aad) == plaintext.encode()


@settings(max_examples=20, deadline=None)
@given(key=keys, name=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s))
def test_rsa_oaep_agrees_with_wechatpayv3_both_ways(key: rsa.RSAPrivateKey, name: str) -> None:
    ours = rsa_oaep_encrypt(key.public_key(), name)
    assert wechatpayv3_utils.rsa_decrypt(ours, key) == name
    theirs = wechatpayv3_utils.rsa_encrypt(name, key.public_key())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert key.decrypt(base64.b64decode(theirs), oaep).decode() == name

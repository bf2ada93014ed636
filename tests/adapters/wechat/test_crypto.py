"""MessageCrypto: the reference §2.6 vectors, round-trips and tampering (reference §2.4)."""

from __future__ import annotations

import base64
import contextlib
import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.channels.wechat import MessageCrypto
from membermkt.channels.wechat.crypto import sha1_signature
from membermkt.errors import ConfigError, DecryptError, MembermktError, SignatureError

OA_TOKEN = "pamtest"
OA_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OA_APPID = "wxb11529c136998cb6"

OA1_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)
OA1_MSG2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName>"
    "<FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime>"
    "<MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV"
    "71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]>"
    "</Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
OA1_ENCRYPT2 = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlku"
    "pqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQ"
    "vFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ"
    "04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9"
    "OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvD"
    "ahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9"
    "Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwo"
    "fJb"
)
OA2_ENCRYPT = (
    "rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgr"
    "kTqdFPwnhqbk+kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0"
    "BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/"
    "LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRU"
    "wPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh"
    "+++yz+CQzBIuikA=="
)
OA2_PLAIN = (
    "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]>"
    "</ToUserName><FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898"
    "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>"
    "12345</MsgId></xml>"
)

WC1 = MessageCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
WC1_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCU"
    "pj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgp"
    "ue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCK"
    "Iw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o"
    "0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2"
    "pDBS8R07+qN+E7Q=="
)
WC1_PLAIN = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA["
    "mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]>"
    "</MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n"
    "<AgentID>218</AgentID>\n</xml>"
)

WC2 = MessageCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
WC2_ECHO = (
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
)
WC2_MSG = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]>"
    "</ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
)
WC2_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqG"
    "sL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZ"
    "SjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UP"
    "PJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2"
    "XeFYFMNMpatF9XiKzHo3"
)
WC2_DECRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrs"
    "TyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+"
    "BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7"
    "vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dS"
    "hyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)


def oa() -> MessageCrypto:
    return MessageCrypto(OA_TOKEN, OA_KEY, OA_APPID)


def envelope(encrypt: str) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )


def raw_encrypt(key43: str, plain: bytes) -> str:
    """Encrypt already laid-out and padded bytes (to craft invalid plaintexts)."""
    key = base64.b64decode(key43 + "=")
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def pad32(b: bytes) -> bytes:
    n = 32 - len(b) % 32
    return b + bytes([n]) * n


# ---------------------------------------------------------------- vectors (reference §2.6)


def test_plaintext_signature_vector():
    """§2.1: sha1 of sorted token/timestamp/nonce."""
    c = MessageCrypto("test", OA_KEY, OA_APPID)
    c.check_signature("f21891de399b4e33a1a93c9a7b8a8fffb5a443ff", "1410685589", "test")
    with pytest.raises(SignatureError):
        c.check_signature("f21891de399b4e33a1a93c9a7b8a8fffb5a443fe", "1410685589", "test")


def test_oa1_encrypt_and_signature():
    """Vector OA-1: encryption with a fixed random prefix, and its msg_signature."""
    c = oa()
    enc = c.encrypt_message("我是中文abcd123", random_prefix=b"aaaabbbbccccdddd")
    assert enc == OA1_ENCRYPT
    assert c.signature("1409304348", "xxxxxx", enc) == "82c962d39941aa48552f90ef55aa323dc620cc10"
    plain = c.decrypt(
        envelope(enc), "82c962d39941aa48552f90ef55aa323dc620cc10", "1409304348", "xxxxxx"
    )
    assert plain == "我是中文abcd123"


def test_oa1_second_message():
    """Vector OA-1 (second message): encrypt, sign, decrypt back."""
    c = oa()
    assert c.encrypt_message(OA1_MSG2, random_prefix=b"aaaabbbbccccdddd") == OA1_ENCRYPT2
    sig = "ea88b765074e41eb8c7a75b449db34fa2fd560d5"
    assert c.signature("1409304348", "xxxxxx", OA1_ENCRYPT2) == sig
    assert c.decrypt(envelope(OA1_ENCRYPT2), sig, "1409304348", "xxxxxx") == OA1_MSG2


def test_oa1_reply_envelope():
    """The encrypted reply envelope carries the vector's Encrypt and msg_signature."""
    env = oa().encrypt("我是中文abcd123", "1409304348", "xxxxxx", random_prefix=b"aaaabbbbccccdddd")
    assert env == (
        f"<xml><Encrypt><![CDATA[{OA1_ENCRYPT}]]></Encrypt>"
        "<MsgSignature><![CDATA[82c962d39941aa48552f90ef55aa323dc620cc10]]></MsgSignature>"
        "<TimeStamp>1409304348</TimeStamp><Nonce><![CDATA[xxxxxx]]></Nonce></xml>"
    )


def test_oa2_decrypt():
    """Vector OA-2 (easywechat decrypt test)."""
    plain = oa().decrypt(
        envelope(OA2_ENCRYPT), "4f3ad57b6989f09f4eb392acce4f9e93942ed890", "1458300676", "260774613"
    )
    assert plain == OA2_PLAIN


def test_wc1_verify_url_and_decrypt():
    """Vector WC-1 (official WeCom sample): URL verification and message decrypt."""
    echo = (
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    )
    assert (
        WC1.verify_url("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", echo)
        == "1616140317555161061"
    )
    body = (
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
        f"<Encrypt><![CDATA[{WC1_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    )
    sig = "477715d11cdb4164915debcba66cb864d751f3e6"
    assert WC1.decrypt(body, sig, "1409659813", "1372623149") == WC1_PLAIN


def test_wc2_vectors():
    """Vector WC-2 (wechatpy WeCom tests): verify (and the wrong nonce fails), encrypt,
    decrypt."""
    sig = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert WC2.verify_url(sig, "1411443780", "437374425", WC2_ECHO) == "5927782489442352469"
    with pytest.raises(SignatureError):
        WC2.verify_url(sig, "1411443780", "437374424", WC2_ECHO)
    enc = WC2.encrypt_message(WC2_MSG, random_prefix=b"1234567890123456")
    assert enc == WC2_ENCRYPT
    assert (
        WC2.signature("1411525903", "461056294", enc) == "407518b7649e86ef23978113f92d27afa9296533"
    )
    plain = WC2.decrypt(
        envelope(WC2_DECRYPT), "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294"
    )
    assert "<Content><![CDATA[test]]></Content>" in plain
    assert "4363689963896700987" in plain
    assert "<FromUserName><![CDATA[messense]]></FromUserName>" in plain


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "key",
    ["", "abc", OA_KEY + "H", OA_KEY[:-1], OA_KEY[:-1] + "+", OA_KEY[:-1] + "=", OA_KEY[:-1] + "é"],
)
def test_bad_keys_are_refused(key):
    """The EncodingAESKey must be exactly 43 chars of [A-Za-z0-9]."""
    with pytest.raises(ConfigError, match="encoding_aes_key"):
        MessageCrypto(OA_TOKEN, key, OA_APPID)


def test_empty_token_is_refused():
    with pytest.raises(ConfigError, match="token"):
        MessageCrypto("", OA_KEY, OA_APPID)


# ---------------------------------------------------------------- round trip


@settings(max_examples=300, deadline=None)
@given(
    msg=st.text(max_size=3000),
    ts=st.integers(0, 2**32).map(str),
    nonce=st.text(alphabet="0123456789abcdef", min_size=1, max_size=16),
)
def test_round_trip_any_unicode(msg, ts, nonce):
    """Any unicode message of any length survives encrypt → envelope → decrypt."""
    c = oa()
    env = c.encrypt(msg, ts, nonce)
    sig = env.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    assert c.decrypt(env, sig, ts, nonce) == msg


@settings(max_examples=100, deadline=None)
@given(receive_id=st.text(max_size=40), msg=st.text(max_size=200))
def test_round_trip_any_receive_id(receive_id, msg):
    """The receive id (also empty, for WeCom bots) is checked on decrypt."""
    c = MessageCrypto(OA_TOKEN, OA_KEY, receive_id)
    assert c.decrypt_encrypted(c.encrypt_message(msg)) == msg


# ---------------------------------------------------------------- tampering


def _signed(c_token: str, enc: str, ts: str = "1", nonce: str = "n") -> tuple[str, str, str, str]:
    return envelope(enc), sha1_signature(c_token, ts, nonce, enc), ts, nonce


def test_each_ciphertext_byte_flipped_is_refused():
    """Flipping any byte of the ciphertext (keeping the pushed signature) is refused."""
    c = oa()
    data = bytearray(base64.b64decode(OA2_ENCRYPT))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        enc = base64.b64encode(bytes(bad)).decode()
        with pytest.raises(SignatureError):
            c.decrypt(
                envelope(enc), "4f3ad57b6989f09f4eb392acce4f9e93942ed890", "1458300676", "260774613"
            )


def test_each_ciphertext_byte_flipped_and_resigned_never_crashes():
    """Even with a valid signature over the tampered ciphertext (a leaked token), every flip
    either decrypts to a message or raises DecryptError — never another exception; flips in
    the last block always break the padding or the receive id."""
    c = oa()
    data = bytearray(base64.b64decode(OA2_ENCRYPT))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x80
        enc = base64.b64encode(bytes(bad)).decode()
        args = _signed(OA_TOKEN, enc)
        if i >= len(data) - 16:
            with pytest.raises(DecryptError):
                c.decrypt(*args)
        else:
            with contextlib.suppress(DecryptError):
                c.decrypt(*args)


def test_each_signature_char_changed_is_refused():
    c = oa()
    sig = "4f3ad57b6989f09f4eb392acce4f9e93942ed890"
    for i in range(len(sig)):
        bad = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
        with pytest.raises(SignatureError):
            c.decrypt(envelope(OA2_ENCRYPT), bad, "1458300676", "260774613")


@pytest.mark.parametrize("cut", [4, 16, 24, 44, 200])
def test_truncated_ciphertext_is_refused(cut):
    enc = OA2_ENCRYPT[:-cut]
    with pytest.raises(DecryptError):
        oa().decrypt(*_signed(OA_TOKEN, enc))


def test_wrong_receive_id_is_refused():
    other = MessageCrypto(OA_TOKEN, OA_KEY, "wx0000000000000000")
    with pytest.raises(DecryptError, match="receive id"):
        other.decrypt(
            envelope(OA2_ENCRYPT),
            "4f3ad57b6989f09f4eb392acce4f9e93942ed890",
            "1458300676",
            "260774613",
        )


@pytest.mark.parametrize("pad", [0, 33, 200])
def test_padding_out_of_range_is_refused(pad):
    body = b"r" * 16 + (5).to_bytes(4, "big") + b"hello" + OA_APPID.encode()
    fill = 32 - len(body) % 32
    plain = body + b"x" * (fill - 1) + bytes([pad])
    with pytest.raises(DecryptError, match="padding"):
        oa().decrypt(*_signed(OA_TOKEN, raw_encrypt(OA_KEY, plain)))


def test_inconsistent_padding_bytes_are_refused():
    body = b"r" * 16 + (5).to_bytes(4, "big") + b"hello" + OA_APPID.encode()
    padded = bytearray(pad32(body))
    padded[-2] ^= 0xFF
    with pytest.raises(DecryptError, match="padding"):
        oa().decrypt(*_signed(OA_TOKEN, raw_encrypt(OA_KEY, bytes(padded))))


@pytest.mark.parametrize("declared", [10_000, 2**32 - 1, 5 + 18 + 1])
def test_declared_length_beyond_bounds_is_refused(declared):
    body = b"r" * 16 + declared.to_bytes(4, "big") + b"hello" + OA_APPID.encode()
    with pytest.raises(DecryptError, match=r"length|receive id"):
        oa().decrypt(*_signed(OA_TOKEN, raw_encrypt(OA_KEY, pad32(body))))


def test_invalid_utf8_is_refused():
    body = b"r" * 16 + (2).to_bytes(4, "big") + b"\xff\xfe" + OA_APPID.encode()
    with pytest.raises(DecryptError, match="UTF-8"):
        oa().decrypt(*_signed(OA_TOKEN, raw_encrypt(OA_KEY, pad32(body))))


@pytest.mark.parametrize(
    "enc", ["", "@@@@", "abc", "YWJj", "YWJjZA=", "YW=J", OA2_ENCRYPT + "A", "a" * 15]
)
def test_bad_base64_is_refused(enc):
    with pytest.raises(DecryptError):
        oa().decrypt_encrypted(enc)


def test_oversize_body_is_refused():
    c = MessageCrypto(OA_TOKEN, OA_KEY, OA_APPID, max_body=1000)
    with pytest.raises(DecryptError, match="over"):
        c.decrypt(envelope("A" * 2000), "x", "1", "n")


def test_body_without_encrypt_is_refused():
    with pytest.raises(DecryptError, match="Encrypt"):
        oa().decrypt("<xml><ToUserName>a</ToUserName></xml>", "x", "1", "n")


def test_envelope_with_dtd_is_refused():
    body = '<!DOCTYPE x [<!ENTITY a "b">]>' + envelope(OA2_ENCRYPT)
    with pytest.raises(DecryptError, match="declarations"):
        oa().decrypt(body, "4f3ad57b6989f09f4eb392acce4f9e93942ed890", "1458300676", "260774613")


def test_non_ascii_signature_inputs_are_refused_cleanly():
    c = oa()
    with pytest.raises(SignatureError):
        c.check_signature("签名", "1", "n")
    with pytest.raises(SignatureError):
        c.decrypt(envelope(OA2_ENCRYPT), "4f3ad57b6989f09f4eb392acce4f9e93942ed890", "时间", "n")


def test_fuzz_ten_thousand_mutations_only_raise_membermkt_errors():
    """10,000 seeded random mutations of valid (re-signed) ciphertexts and envelopes: the
    only exceptions are membermkt errors."""
    rng = random.Random(20240601)
    c = oa()
    base = [base64.b64decode(OA2_ENCRYPT), base64.b64decode(c.encrypt_message("x" * 40))]
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(10_000):
        data = bytearray(rng.choice(base))
        op = rng.randrange(6)
        if op == 0:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            del data[rng.randrange(len(data)) :]
        elif op == 2:
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif op == 3:
            data = bytearray(rng.randbytes(rng.choice([16, 32, 48, 64, 96])))
        enc = base64.b64encode(bytes(data)).decode()
        if op == 4 and enc:
            i = rng.randrange(len(enc))
            enc = enc[:i] + rng.choice("!*=\n é<]") + enc[i + 1 :]
        body = envelope(enc)
        if op == 5:
            i = rng.randrange(len(body))
            body = body[:i] + rng.choice(["<!DOCTYPE a>", "<", "&x;", "]]>", ""]) + body[i:]
        try:
            c.decrypt(body, sha1_signature(OA_TOKEN, "1", "n", enc), "1", "n")
            outcomes["ok"] += 1
        except MembermktError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 5_000

"""Hostile callback requests, by class, for the fuzz and server tests.

Every request is built so that a correct endpoint must NOT accept it: forged or mangled
signatures, broken ciphertexts, documents a parser could choke on, downgrades, stale
timestamps and authentic-looking pushes with unusable fields. Requests that reach the
decryption or parsing stage are signed (and encrypted) with the real Token and key — the
worst case, as if the attacker held them — so the deeper layers are exercised, never just
the first signature check.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from membermkt.channels.wechat.crypto import MessageCrypto, sha1_signature

NOW = 1_700_000_000
TOKEN = "fuzztoken"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
MAX_BODY = 1 << 20


class Request(NamedTuple):
    cls: str
    method: str
    query: dict[str, str]
    body: bytes


def genuine_xml(openid: str = "oGENUINE", at: int = NOW, event: str = "subscribe") -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_fuzz]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{at}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
        "<EventKey><![CDATA[qrscene_attacker]]></EventKey></xml>"
    )


class Hostile:
    """Generator of hostile requests for one endpoint (``wecom``: no plaintext mode)."""

    def __init__(self, receive_id: str, *, wecom: bool, seed: int = 13) -> None:
        self.receive_id = receive_id
        self.wecom = wecom
        self.crypto = MessageCrypto(TOKEN, KEY, receive_id, max_body=MAX_BODY)
        self.rng = random.Random(seed)
        raw_key = base64.b64decode(KEY + "=")
        self._cipher = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16]))
        self._big = b"<xml><Encrypt><![CDATA[" + b"A" * (MAX_BODY + 4096)
        self.classes: dict[str, Callable[[], Request]] = {
            "signature": self.signature,
            "padding": self.padding,
            "base64": self.base64,
            "dtd": self.dtd,
            "encoding": self.encoding,
            "surrogate": self.surrogate,
            "oversize": self.oversize,
            "nesting": self.nesting,
            "downgrade": self.downgrade,
            "stale": self.stale,
            "cdata": self.cdata,
            "fields": self.fields,
        }

    # ------------------------------------------------------------------ building blocks

    def _ts_nonce(self, skew: int = 0) -> tuple[str, str]:
        return str(NOW + skew), str(self.rng.randrange(10**9))

    def envelope(self, encrypt: str) -> bytes:
        return (
            "<xml><ToUserName><![CDATA[gh_fuzz]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ).encode()

    def signed(
        self, cls: str, encrypt: str, *, skew: int = 0, body: bytes | None = None
    ) -> Request:
        """A request whose msg_signature is valid over ``encrypt`` (worst case)."""
        ts, nonce = self._ts_nonce(skew)
        query = {
            "timestamp": ts,
            "nonce": nonce,
            "msg_signature": sha1_signature(TOKEN, ts, nonce, encrypt),
        }
        if not self.wecom:
            query["signature"] = sha1_signature(TOKEN, ts, nonce)
            query["encrypt_type"] = "aes"
            query["openid"] = "oGENUINE"
        return Request(cls, "POST", query, self.envelope(encrypt) if body is None else body)

    def sealed(self, cls: str, inner: bytes, *, skew: int = 0) -> Request:
        """``inner`` encrypted with the real key and signed with the real token."""
        return self.signed(cls, self.crypto.encrypt_message(inner), skew=skew)

    def raw_encrypt(self, plain: bytes) -> str:
        enc = self._cipher.encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    # ------------------------------------------------------------------ classes

    def signature(self) -> Request:
        req = self.sealed("signature", genuine_xml().encode())
        q = dict(req.query)
        key = "msg_signature"
        sig = q[key]
        choice = self.rng.randrange(6)
        if choice == 0:
            i = self.rng.randrange(len(sig))
            sig = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
        elif choice == 1:
            sig = ""
        elif choice == 2:
            sig = sig.upper()
        elif choice == 3:
            sig = sig + "00"
        elif choice == 4:
            sig = "".join(self.rng.choice("0123456789abcdef") for _ in range(40))
        else:
            q["nonce"] = q["nonce"] + "1"  # signature no longer covers the nonce
        q[key] = sig
        if not self.wecom and choice == 5:
            q["signature"] = q["signature"]
        return Request("signature", "POST", q, req.body)

    def padding(self) -> Request:
        rng = self.rng
        n = 32 * rng.randrange(1, 8)
        plain = bytearray(rng.randbytes(n))
        choice = rng.randrange(4)
        if choice == 0:  # pad byte out of range
            plain[-1] = rng.choice([0, *range(33, 256)])
        elif choice == 1:  # inconsistent padding bytes
            pad = rng.randrange(2, 33)
            plain[-pad:] = bytes([pad]) * pad
            plain[-pad] ^= 0x55
        elif choice == 2:  # valid pad, declared length past the end
            plain[-1:] = b"\x01"
            plain[16:20] = (n + rng.randrange(1, 1 << 20)).to_bytes(4, "big")
        else:  # valid pad and length, wrong receive id
            msg = genuine_xml().encode()
            body = rng.randbytes(16) + len(msg).to_bytes(4, "big") + msg + b"wxSOMEONEELSE"
            pad = 32 - len(body) % 32
            plain = bytearray(body + bytes([pad]) * pad)
        return self.signed("padding", self.raw_encrypt(bytes(plain)))

    def base64(self) -> Request:
        rng = self.rng
        good = self.crypto.encrypt_message(genuine_xml())
        choice = rng.randrange(6)
        if choice == 0:
            enc = good[: -rng.randrange(1, 5)]
        elif choice == 1:
            i = rng.randrange(len(good))
            enc = good[:i] + rng.choice("!*$%-_.") + good[i + 1 :]
        elif choice == 2:
            enc = good[: len(good) // 2] + " \n" + good[len(good) // 2 :]
        elif choice == 3:
            enc = base64.b64encode(rng.randbytes(rng.randrange(1, 200))).decode()
        elif choice == 4:
            enc = good + "=" * rng.randrange(1, 4)
        else:
            enc = ""
        return self.signed("base64", enc)

    def dtd(self) -> Request:
        rng = self.rng
        docs = [
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<xml><FromUserName>&b;</FromUserName></xml>",
            b'<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<xml><FromUserName>&xxe;</FromUserName><CreateTime>1</CreateTime></xml>",
            b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:1/evil.dtd"><xml/>',
            b"<xml><!DOCTYPE y><FromUserName>o</FromUserName></xml>",
            b"<xml><FromUserName>&undefined;</FromUserName><CreateTime>1</CreateTime></xml>",
            b'<?xml version="1.0"?>\n<!ENTITY % p SYSTEM "http://x/">%p;<xml/>',
            b"<!-- c --><!DOCTYPE x><xml/>",
        ]
        doc = rng.choice(docs)
        if rng.random() < 0.3:  # the DTD in the outer envelope instead
            return Request(
                "dtd", "POST", self.sealed("dtd", b"<xml/>").query, doc + self.envelope("x")
            )
        return self.sealed("dtd", doc)

    def encoding(self) -> Request:
        rng = self.rng
        text = genuine_xml(openid="o编码")
        choice = rng.randrange(6)
        if choice == 0:
            inner = f'<?xml version="1.0" encoding="GBK"?>{text}'.encode("gbk")
        elif choice == 1:
            inner = f"<?xml version='1.0' encoding='latin-1'?>{genuine_xml()}".encode()
        elif choice == 2:
            inner = text.encode("utf-16")
        elif choice == 3:
            inner = text.encode("gbk")  # no declaration, not UTF-8
        elif choice == 4:
            name = rng.choice(["x-nonsense", "utf-7", "ebcdic-cp-us", "UTF-32"])
            inner = f'<?xml version="1.0" encoding="{name}"?>{genuine_xml()}'.encode()
        else:
            raw = bytearray(genuine_xml().encode())
            raw[rng.randrange(40, len(raw) - 10)] = rng.choice([0x80, 0xC0, 0xFF, 0xFE])
            inner = bytes(raw)
        return self.sealed("encoding", inner)

    def surrogate(self) -> Request:
        rng = self.rng
        if rng.random() < 0.5:
            req = self.sealed("surrogate", genuine_xml().encode())
            q = dict(req.query)
            k = rng.choice(sorted(q))
            q[k] = q[k][:3] + rng.choice(["\ud800", "\udfff", "\udc80x", "é"]) + q[k][3:]
            return Request("surrogate", "POST", q, req.body)
        inner = genuine_xml().encode().replace(b"oGENUINE", b"o\xed\xa0\x80x")  # CESU surrogate
        return self.sealed("surrogate", inner)

    def oversize(self) -> Request:
        rng = self.rng
        req = self.sealed("oversize", genuine_xml().encode())
        if rng.random() < 0.5:
            body = self._big[: MAX_BODY + rng.randrange(1, 4096)]
            return Request("oversize", "POST", req.query, body)
        # a signed Encrypt value just under the body limit: decrypts to a huge document
        n = MAX_BODY - 200
        return self.signed("oversize", "QUFB" * (n // 4))

    def nesting(self) -> Request:
        depth = self.rng.choice([64, 1000, 10_000, 100_000])
        inner = b"<xml>" + b"<a>" * depth + b"x" + b"</a>" * depth + b"</xml>"
        if self.rng.random() < 0.5:
            inner = b"<xml>" + b"<a>" * depth + b"</xml>"  # unclosed
        return self.sealed("nesting", inner)

    def downgrade(self) -> Request:
        """A captured genuine query, its safe-mode parameters dropped, a forged plaintext
        body (a subscribe with an attacker-chosen scene)."""
        req = self.sealed("downgrade", genuine_xml().encode())
        q = {k: v for k, v in req.query.items() if k not in ("encrypt_type", "msg_signature")}
        if self.wecom:
            q["signature"] = sha1_signature(TOKEN, q["timestamp"], q["nonce"])
        if self.rng.random() < 0.3:
            q["encrypt_type"] = self.rng.choice(["raw", "", "AES", "none"])
        forged = genuine_xml(openid=f"oFORGED{self.rng.randrange(1000)}").encode()
        return Request("downgrade", "POST", q, forged)

    def stale(self) -> Request:
        skew = self.rng.choice([-1, 1]) * self.rng.randrange(301, 30 * 86400)
        return self.sealed("stale", genuine_xml(at=NOW + skew).encode(), skew=skew)

    def cdata(self) -> Request:
        n = self.rng.choice([24, 100, 1000, 4096, 16384, 65536])
        tails = [
            "<xml><ToUserName><![CDATA[" + "a" * n,
            "<xml><ToUserName><![CDATA[" + "]" * n,
            "<xml><ToUserName><![CDATA[" + "a]" * (n // 2) + "</ToUserName></xml>",
            "<xml><ToUserName><![CDATA[" + "]]" * (n // 2) + "</xml>",
            "<xml>" + "<a><![CDATA[x" * (n // 13) + "</xml>",
        ]
        return self.sealed("cdata", self.rng.choice(tails).encode())

    def fields(self) -> Request:
        bad_openid = self.rng.choice(["", " ", "x" * 400, "o\t", "o\u3000", "o\u200b"])
        bad_time = self.rng.choice([" 12 ", "１２", "1_000", "-1", "1e3", "99999999999999", ""])
        if self.rng.random() < 0.5:
            inner = genuine_xml().replace("<![CDATA[oGENUINE]]>", f"<![CDATA[{bad_openid}]]>")
        else:
            inner = genuine_xml().replace(f"<CreateTime>{NOW}<", f"<CreateTime>{bad_time}<")
        return self.sealed("fields", inner.encode())

    def stream(self, n: int) -> Iterator[Request]:
        """``n`` requests, cycling through every class."""
        names = sorted(self.classes)
        for i in range(n):
            yield self.classes[names[i % len(names)]]()

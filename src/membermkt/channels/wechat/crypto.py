"""Callback crypto for WeChat official accounts, WeCom and the Open Platform (sans-I/O).

One algorithm serves all three (reference §2.4): AES-256-CBC with ``IV = key[:16]``, a
32-byte PKCS#7 block, the plaintext laid out as ``random(16) ‖ len(4, big-endian) ‖ msg ‖
receive_id``, and ``msg_signature = sha1(sorted(token, timestamp, nonce, Encrypt))``.

Everything here takes bytes/str and returns values: no clock, no network. Every check that
compares a secret-derived value uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from membermkt.channels.wechat._xml import check_prolog
from membermkt.errors import ConfigError, DecryptError, SignatureError, UsageError

_BYTES = (bytes, bytearray, memoryview)

__all__ = ["MessageCrypto", "sha1_signature"]

_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")
_BLOCK = 32

_PADS = [bytes((i,)) * i for i in range(_BLOCK + 1)]

DEFAULT_MAX_BODY = 1 << 20
"""Default largest accepted callback body / ciphertext (1 MiB)."""


def sha1_signature(*parts: str) -> str:
    """``sha1("".join(sorted(parts)))`` as lower-case hex (the platform's signature).

    >>> sha1_signature("test", "1410685589", "test")
    'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff'
    """
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def _same(expected: str, given: object) -> bool:
    # Constant-time compare (str operands must be ASCII); anything else does not match.
    if not isinstance(given, str) or not given.isascii():
        return False
    return hmac.compare_digest(expected, given)


def _text(value: object, name: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise SignatureError(f"{name} is not ASCII") from None
    if not isinstance(value, str):
        raise SignatureError(f"{name} must be str, got {type(value).__name__}")
    return value


class MessageCrypto:
    """Signature checks and AES message crypto for one callback endpoint.

    Args:
        token: the Token configured on the platform's server settings page.
        encoding_aes_key: the 43-character EncodingAESKey (``[A-Za-z0-9]``).
        receive_id: the appid (official account), corpid (WeCom) or suite id; ``""`` for
            WeCom intelligent-bot callbacks.
        max_body: the largest body / ciphertext accepted, in bytes (default 1 MiB).

    Raises:
        ConfigError: when the token is empty or the key is not 43 characters of
            ``[A-Za-z0-9]`` (the key must decode to exactly 32 bytes).
    """

    __slots__ = (
        "_cipher",
        "_ecb",
        "_ecb_lock",
        "_iv",
        "_max_body",
        "_receive_id",
        "_token",
        "receive_id",
    )

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ConfigError("MessageCrypto: token must be a non-empty str")
        if not isinstance(encoding_aes_key, str) or not _KEY_RE.fullmatch(encoding_aes_key):
            raise ConfigError(
                "MessageCrypto: encoding_aes_key must be exactly 43 characters from [A-Za-z0-9] "
                "(copy it from the platform's server settings page)"
            )
        if not isinstance(receive_id, str):
            raise ConfigError("MessageCrypto: receive_id must be a str (appid / corpid)")
        if max_body < 64:
            raise ConfigError(f"MessageCrypto: max_body must be at least 64, got {max_body}")
        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:  # pragma: no cover - guaranteed by the regex
            raise ConfigError("MessageCrypto: encoding_aes_key does not decode to 32 bytes")
        self._token = token
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
        # Decryption runs CBC by hand over one reusable ECB context (block-aligned input
        # leaves ECB without state): P_i = D(C_i) xor C_{i-1}, C_0 = IV. Creating a CBC
        # context per push costs as much as the rest of the AES work.
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
        self._ecb_lock = threading.Lock()
        self._iv = key[:16]
        self.receive_id = receive_id
        self._receive_id = receive_id.encode("utf-8")
        self._max_body = max_body

    def __repr__(self) -> str:
        return f"MessageCrypto(receive_id={self.receive_id!r})"

    # ------------------------------------------------------------------ signatures

    def signature(self, timestamp: str, nonce: str, encrypt: str | None = None) -> str:
        """The plaintext-mode signature, or the ``msg_signature`` when ``encrypt`` is given."""
        if encrypt is None:
            return sha1_signature(self._token, timestamp, nonce)
        return sha1_signature(self._token, timestamp, nonce, encrypt)

    def check_signature(self, signature: str, timestamp: str, nonce: str) -> None:
        """Check a plaintext-mode ``signature`` (every OA push and the URL verification GET).

        Raises:
            SignatureError: when the signature does not match.
        """
        ts = _text(timestamp, "timestamp")
        nc = _text(nonce, "nonce")
        if not _same(sha1_signature(self._token, ts, nc), signature):
            raise SignatureError("signature does not match (check the Token setting)")

    def check_msg_signature(
        self, msg_signature: str, timestamp: str, nonce: str, data: str
    ) -> None:
        """Check a safe-mode ``msg_signature`` over ``data`` (the Encrypt value or echostr).

        Raises:
            SignatureError: when it does not match.
        """
        ts = _text(timestamp, "timestamp")
        nc = _text(nonce, "nonce")
        if not _same(sha1_signature(self._token, ts, nc, data), msg_signature):
            raise SignatureError("msg_signature does not match (check the Token setting)")

    # ------------------------------------------------------------------ decrypt

    def decrypt(self, body: str | bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Verify and decrypt a safe-mode push.

        Args:
            body: the pushed XML envelope (``<xml>…<Encrypt>…</Encrypt></xml>``).
            msg_signature, timestamp, nonce: the query parameters of the push.

        Returns:
            The inner plaintext XML.

        Raises:
            SignatureError: when ``msg_signature`` does not match.
            DecryptError: when the body is oversized, has no ``Encrypt`` element, or the
                ciphertext is invalid (base64, block size, padding, length, receive id,
                UTF-8).
        """
        encrypt = self.extract_encrypt(body)
        self.check_msg_signature(msg_signature, timestamp, nonce, encrypt)
        return self._utf8(self._open(encrypt))

    def decrypt_bytes(
        self, body: str | bytes, msg_signature: str, timestamp: str, nonce: str
    ) -> bytes:
        """Like :meth:`decrypt` but return the inner XML as bytes, without decoding it
        (:func:`~membermkt.channels.wechat.messages.parse_message` checks the UTF-8).

        Raises:
            SignatureError: when ``msg_signature`` does not match.
            DecryptError: as for :meth:`decrypt`, except the UTF-8 check.
        """
        encrypt = self.extract_encrypt(body)
        self.check_msg_signature(msg_signature, timestamp, nonce, encrypt)
        return self._open(encrypt)

    def decrypt_encrypted(self, encrypt: str) -> str:
        """Decrypt a bare ``Encrypt`` value (no signature check: the caller has done it).

        Raises:
            DecryptError: when the ciphertext is invalid.
        """
        return self._utf8(self._open(encrypt))

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Safe-mode URL verification (WeCom): check ``msg_signature`` over ``echostr`` and
        return the decrypted echo to write back as the response body.

        Raises:
            SignatureError: when ``msg_signature`` does not match.
            DecryptError: when ``echostr`` is not a valid ciphertext.
        """
        echo = _text(echostr, "echostr")
        self.check_msg_signature(msg_signature, timestamp, nonce, echo)
        return self.decrypt_encrypted(echo)

    def extract_encrypt(self, body: str | bytes) -> str:
        """The ``Encrypt`` value of a pushed envelope.

        Raises:
            DecryptError: when the body is oversized, declares a DTD, or lacks ``Encrypt``.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, _BYTES):
            raise UsageError(f"body must be str or bytes, got {type(body).__name__}")
        if len(body) > self._max_body:
            raise DecryptError(f"callback body is {len(body)} bytes, over {self._max_body}")
        data = bytes(body)
        check_prolog(data)
        start = data.find(b"<Encrypt>")
        end = data.find(b"</Encrypt>", start)
        if start < 0 or end < 0:
            raise DecryptError("callback body has no <Encrypt> element")
        value = data[start + 9 : end].strip()
        if value.startswith(b"<![CDATA[") and value.endswith(b"]]>"):
            value = value[9:-3].strip()
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise DecryptError("the <Encrypt> value is not base64 (non-ASCII bytes)") from None

    def _open(self, encrypt: str | bytes) -> bytes:
        # The plaintext bytes (UTF-8 is checked by the callers that decode).
        raw = encrypt.encode("ascii", "replace") if isinstance(encrypt, str) else encrypt
        if len(raw) > self._max_body:
            raise DecryptError(f"ciphertext is {len(raw)} characters, over {self._max_body}")
        try:
            data = binascii.a2b_base64(raw, strict_mode=True)
        except binascii.Error as exc:
            raise DecryptError(f"ciphertext is not valid base64: {exc}") from None
        n = len(data)
        if n == 0 or n % 16:
            raise DecryptError(f"ciphertext length {n} is not a positive multiple of 16")
        with self._ecb_lock:
            blocks = self._ecb.update(data)
        chain = int.from_bytes(self._iv + data[:-16], "big")
        plain = (int.from_bytes(blocks, "big") ^ chain).to_bytes(n, "big")
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != _PADS[pad]:
            raise DecryptError("bad padding (wrong EncodingAESKey or corrupted ciphertext)")
        end = n - pad
        if end < 20:
            raise DecryptError("decrypted message is too short")
        msg_end = 20 + int.from_bytes(plain[16:20], "big")
        if msg_end > end:
            raise DecryptError(
                f"declared message length {msg_end - 20} exceeds the ciphertext ({end - 20})"
            )
        if not hmac.compare_digest(plain[msg_end:end], self._receive_id):
            raise DecryptError("receive id does not match (message for another appid/corpid)")
        return plain[20:msg_end]

    @staticmethod
    def _utf8(msg: bytes) -> str:
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("decrypted message is not UTF-8") from None

    # ------------------------------------------------------------------ encrypt

    def encrypt_message(self, xml: str | bytes, *, random_prefix: bytes | None = None) -> str:
        """Encrypt ``xml`` and return the base64 ``Encrypt`` value.

        Args:
            xml: the plaintext message.
            random_prefix: 16 bytes to use instead of fresh random bytes (test vectors).

        Raises:
            UsageError: when ``random_prefix`` is not 16 bytes.
        """
        msg = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise UsageError("random_prefix must be exactly 16 bytes")
        body = prefix + len(msg).to_bytes(4, "big") + msg + self._receive_id
        pad = _BLOCK - len(body) % _BLOCK
        body += bytes((pad,)) * pad
        enc = self._cipher.encryptor()
        return base64.b64encode(enc.update(body) + enc.finalize()).decode("ascii")

    def encrypt(
        self,
        xml: str | bytes,
        timestamp: str,
        nonce: str,
        *,
        random_prefix: bytes | None = None,
    ) -> str:
        """Encrypt a reply and wrap it in the signed envelope XML
        (``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``).

        Raises:
            UsageError: when ``timestamp``/``nonce`` contain XML-special characters.
        """
        for name, value in (("timestamp", timestamp), ("nonce", nonce)):
            if not isinstance(value, str) or any(c in value for c in "<>&]"):
                raise UsageError(f"{name} must be a plain str without XML markup")
        encrypted = self.encrypt_message(xml, random_prefix=random_prefix)
        sig = sha1_signature(self._token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )

"""WeChat Pay signatures and encryption, as pure functions (no I/O, no clock, no randomness).

API v2 (XML, reference §4.1): :func:`v2_sign` / :func:`v2_verify` (MD5 or HMAC-SHA256 over
the sorted, non-empty parameters plus ``&key=API_KEY``), :func:`to_xml` / :func:`from_xml`
(hardened: DTDs and entities are refused, the size is capped).

API v3 (JSON, reference §4.3–4.5): :func:`v3_request_message` and :func:`rsa_sign` for the
``Authorization`` header (:func:`v3_authorization`, parsed back by
:func:`parse_authorization`); :func:`v3_response_message` and :func:`verify_v3_response`
(SHA256withRSA with the platform certificate or platform public key chosen by
``Wechatpay-Serial``); :func:`aead_decrypt` / :func:`aead_encrypt` for callback resources
(AES-256-GCM with the APIv3 key); :func:`rsa_oaep_encrypt` for sensitive fields.

Nonces and timestamps are arguments: the gateways draw them, the tests fix them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Final
from xml.etree import ElementTree

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from membermkt.errors import ConfigError, DecryptError, SignatureError, UsageError

__all__ = [
    "AUTH_SCHEMA",
    "MAX_XML_BYTES",
    "PublicKeys",
    "aead_decrypt",
    "aead_encrypt",
    "find_platform_key",
    "from_xml",
    "load_certificate",
    "load_private_key",
    "load_public_key",
    "parse_authorization",
    "rsa_oaep_encrypt",
    "rsa_sign",
    "rsa_verify",
    "to_xml",
    "v2_sign",
    "v2_string_to_sign",
    "v2_verify",
    "v3_authorization",
    "v3_request_message",
    "v3_response_message",
    "verify_v3_response",
]

AUTH_SCHEMA: Final = "WECHATPAY2-SHA256-RSA2048"
MAX_XML_BYTES: Final = 64 * 1024
"""Largest v2 XML body accepted (red-packet answers are a few hundred bytes)."""

PublicKeys = Mapping[str, rsa.RSAPublicKey]
"""Platform verification keys by ``Wechatpay-Serial``: a hex certificate serial for a
platform certificate, ``PUB_KEY_ID_...`` for the WeChat Pay public key."""


# --------------------------------------------------------------------------- v2


def _v2_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def v2_string_to_sign(params: Mapping[str, object], api_key: str) -> str:
    """``k1=v1&k2=v2...&key=API_KEY`` over the non-empty parameters except ``sign``, sorted by
    key in ASCII order (reference §4.1)."""
    items = sorted(
        (k, _v2_value(v)) for k, v in params.items() if k != "sign" and v is not None and v != ""
    )
    return "&".join(f"{k}={v}" for k, v in items) + f"&key={api_key}"


def v2_sign(params: Mapping[str, object], api_key: str, sign_type: str = "MD5") -> str:
    """The v2 signature: MD5 (default) or HMAC-SHA256 (``sign_type="HMAC-SHA256"``), hex
    upper-case.

    Raises:
        UsageError: for another ``sign_type`` or an empty key.
    """
    if not api_key:
        raise UsageError("v2_sign: the v2 API key is empty")
    text = v2_string_to_sign(params, api_key).encode()
    if sign_type == "MD5":
        return hashlib.md5(text).hexdigest().upper()
    if sign_type == "HMAC-SHA256":
        return hmac.new(api_key.encode(), text, hashlib.sha256).hexdigest().upper()
    raise UsageError(f"v2_sign: sign_type must be 'MD5' or 'HMAC-SHA256', got {sign_type!r}")


def v2_verify(params: Mapping[str, object], api_key: str, sign_type: str = "MD5") -> None:
    """Check ``params["sign"]``.

    Raises:
        SignatureError: when the signature is missing or wrong.
    """
    given = params.get("sign")
    if not isinstance(given, str) or not given:
        raise SignatureError("WeChat Pay v2: the message has no sign")
    if not hmac.compare_digest(given.upper(), v2_sign(params, api_key, sign_type)):
        raise SignatureError("WeChat Pay v2: sign does not match (wrong API key or tampered)")


def to_xml(params: Mapping[str, object]) -> bytes:
    """``<xml><k>v</k>...</xml>`` (UTF-8), empty values left out, keys in sorted order."""
    root = ElementTree.Element("xml")
    for k in sorted(params):
        v = params[k]
        if v is None or v == "":
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise UsageError(f"to_xml: {k!r} is not a valid XML element name")
        ElementTree.SubElement(root, k).text = _v2_value(v)
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=False))


_DTD_RE = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def from_xml(body: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> dict[str, str]:
    """Parse a flat v2 ``<xml>`` document into ``{tag: text}``.

    Raises:
        DecryptError: for a body over ``max_bytes``, a DTD or entity declaration, malformed
            XML, or a root that is not ``<xml>``.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if len(raw) > max_bytes:
        raise DecryptError(f"WeChat Pay XML body too large ({len(raw)} > {max_bytes} bytes)")
    if _DTD_RE.search(raw):
        raise DecryptError("WeChat Pay XML body carries a DTD/entity declaration: refused")
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise DecryptError(f"WeChat Pay XML body is not well-formed: {exc}") from exc
    if root.tag != "xml":
        raise DecryptError(f"WeChat Pay XML root must be <xml>, got <{root.tag}>")
    return {child.tag: (child.text or "") for child in root}


# --------------------------------------------------------------------------- keys


def load_private_key(
    pem: bytes | str, *, what: str = "merchant API private key"
) -> rsa.RSAPrivateKey:
    """Load an RSA private key from PEM (``apiclient_key.pem``).

    Raises:
        ConfigError: when it is not an unencrypted PEM RSA private key.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{what}: an RSA key is required, got {type(key).__name__}")
    return key


def load_certificate(pem: bytes | str, *, what: str = "certificate") -> x509.Certificate:
    """Load an X.509 certificate from PEM.

    Raises:
        ConfigError: when it is not a PEM certificate.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ConfigError(f"{what}: not a PEM X.509 certificate ({exc})") from exc


def load_public_key(pem: bytes | str, *, what: str = "platform key") -> rsa.RSAPublicKey:
    """Load an RSA public key from a PEM public key or a PEM certificate (the platform
    certificate or the WeChat Pay public key file).

    Raises:
        ConfigError: when it is neither, or not RSA.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    key: object
    if b"BEGIN CERTIFICATE" in data:
        key = load_certificate(data, what=what).public_key()
    else:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(f"{what}: not a PEM public key or certificate ({exc})") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"{what}: an RSA key is required, got {type(key).__name__}")
    return key


# --------------------------------------------------------------------------- v3


def v3_request_message(
    method: str, url: str, timestamp: int | str, nonce: str, body: bytes | str
) -> bytes:
    """The v3 string to sign: ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` where ``URL`` is the
    path from ``/v3/...`` plus ``?query`` (reference §4.3)."""
    b = body.encode() if isinstance(body, str) else body
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode() + b + b"\n"


def v3_response_message(timestamp: int | str, nonce: str, body: bytes | str) -> bytes:
    """The v3 string to verify: ``TIMESTAMP\\nNONCE\\nBODY\\n`` (raw body bytes; §4.4)."""
    b = body.encode() if isinstance(body, str) else body
    return f"{timestamp}\n{nonce}\n".encode() + b + b"\n"


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64."""
    sig = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode()


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64 SHA256withRSA) signs ``message``."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def v3_authorization(
    *, mchid: str, serial_no: str, nonce: str, timestamp: int | str, signature: str
) -> str:
    """The ``Authorization`` header value (``WECHATPAY2-SHA256-RSA2048 k="v",...``)."""
    return (
        f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


_AUTH_ITEM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def parse_authorization(header: str) -> dict[str, str]:
    """The five items of a v3 ``Authorization`` header (in any order).

    Raises:
        SignatureError: when the header is not a ``WECHATPAY2-SHA256-RSA2048`` one or an item
            is missing.
    """
    schema, _, rest = header.strip().partition(" ")
    if schema != AUTH_SCHEMA:
        raise SignatureError(f"Authorization schema must be {AUTH_SCHEMA}, got {schema!r}")
    items: dict[str, str] = {}
    for part in rest.split(","):
        m = _AUTH_ITEM.fullmatch(part)
        if m is None:
            raise SignatureError(f"malformed Authorization item {part!r}")
        items[m.group(1)] = m.group(2)
    missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - items.keys()
    if missing:
        raise SignatureError(f"Authorization lacks {', '.join(sorted(missing))}")
    return items


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    raise SignatureError(
        f"WeChat Pay v3: header {name} is missing (a proxy may strip Wechatpay-* headers)"
    )


def _serial_number(serial: str) -> int | None:
    try:
        return int(serial, 16)
    except ValueError:
        return None


def find_platform_key(keys: PublicKeys, serial: str) -> rsa.RSAPublicKey | None:
    """The platform key for a ``Wechatpay-Serial``, or ``None``.

    ``PUB_KEY_ID_...`` ids match exactly; certificate serials are numbers written in hex and
    are compared as integers (a leading zero or another letter case is the same serial, as
    wechatpayv3 compares them).
    """
    # rule: v3.serial -- certificate serials are hex numbers, compared as integers
    key = keys.get(serial)
    if key is not None or serial.startswith("PUB_KEY_ID_"):
        return key
    wanted = _serial_number(serial)
    if wanted is None:
        return None
    for known, candidate in keys.items():
        if not known.startswith("PUB_KEY_ID_") and _serial_number(known) == wanted:
            return candidate
    return None


def verify_v3_response(
    headers: Mapping[str, str],
    body: bytes,
    keys: PublicKeys,
    *,
    now: dt.datetime | None = None,
    max_skew: dt.timedelta = dt.timedelta(minutes=5),
) -> str:
    """Verify a v3 response or callback; return the ``Wechatpay-Serial`` that signed it.

    The key is chosen by ``Wechatpay-Serial`` from ``keys`` (platform certificate serials
    and/or ``PUB_KEY_ID_...`` public-key ids; keep both while migrating). With ``now``, a
    ``Wechatpay-Timestamp`` more than ``max_skew`` away is refused (anti-replay; applying the
    request rule's 5 minutes to responses is common practice, not a documented platform rule).

    Raises:
        SignatureError: missing headers, unknown serial, stale timestamp, bad signature.
    """
    serial = _header(headers, "Wechatpay-Serial")
    signature = _header(headers, "Wechatpay-Signature")
    timestamp = _header(headers, "Wechatpay-Timestamp")
    nonce = _header(headers, "Wechatpay-Nonce")
    key = find_platform_key(keys, serial)
    if key is None:
        raise SignatureError(
            f"WeChat Pay v3: no platform key for Wechatpay-Serial {serial!r} "
            f"(known: {', '.join(sorted(keys)) or 'none'}); download the platform "
            "certificate / public key and configure it"
        )
    if now is not None:
        try:
            at = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError(f"WeChat Pay v3: bad Wechatpay-Timestamp {timestamp!r}") from None
        if abs(now - at) > max_skew:
            raise SignatureError(
                f"WeChat Pay v3: Wechatpay-Timestamp {timestamp} is more than {max_skew} "
                "away from now (replay or clock skew)"
            )
    if not rsa_verify(key, v3_response_message(timestamp, nonce, body), signature):
        raise SignatureError("WeChat Pay v3: Wechatpay-Signature does not verify (tampered?)")
    return serial


def _aead_key(api_v3_key: str | bytes) -> bytes:
    key = api_v3_key.encode() if isinstance(api_v3_key, str) else api_v3_key
    if len(key) != 32:
        raise ConfigError(f"the APIv3 key must be 32 bytes, got {len(key)}")
    return key


def aead_decrypt(
    api_v3_key: str | bytes, nonce: str, ciphertext: str, associated_data: str = ""
) -> bytes:
    """Decrypt a v3 callback ``resource`` (AEAD_AES_256_GCM; ciphertext = base64 of
    ``ct || 16-byte tag``; reference §4.5).

    Raises:
        ConfigError: when the APIv3 key is not 32 bytes.
        DecryptError: bad base64 or authentication failure (wrong key or tampered data).
    """
    key = _aead_key(api_v3_key)
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError("WeChat Pay v3 resource: ciphertext is not base64") from exc
    try:
        return AESGCM(key).decrypt(nonce.encode(), raw, associated_data.encode())
    except (InvalidTag, ValueError) as exc:
        raise DecryptError(
            "WeChat Pay v3 resource: authentication failed (wrong APIv3 key or tampered)"
        ) from exc


def aead_encrypt(
    api_v3_key: str | bytes, nonce: str, plaintext: bytes, associated_data: str = ""
) -> str:
    """The inverse of :func:`aead_decrypt` (what the platform does; used by the emulator).

    Raises:
        ConfigError: when the APIv3 key is not 32 bytes.
    """
    ct = AESGCM(_aead_key(api_v3_key)).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(ct).decode()


def rsa_oaep_encrypt(public_key: rsa.RSAPublicKey, plaintext: str) -> str:
    """Encrypt a sensitive field (e.g. ``user_name``) for the platform: RSA-OAEP with SHA-1
    and MGF1-SHA-1, base64 (reference §4.3)."""
    ct = public_key.encrypt(
        plaintext.encode(),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )
    return base64.b64encode(ct).decode()

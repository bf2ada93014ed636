"""Throw-away test credentials: a CA, the merchant certificate, the platform certificate /
public key and a loopback server certificate, generated with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from membermkt.errors import UsageError
from membermkt.payouts.wechatpay.gateway import certificate_serial


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    not_before: dt.datetime,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer if not ca else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before - dt.timedelta(days=1))
        .not_valid_after(not_before + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@attrs.frozen(slots=True, kw_only=True)
class TestCredentials:
    """Throw-away keys and certificates for a test merchant (PEM bytes).

    Attributes:
        mch_id: the merchant id the merchant certificate was issued to.
        ca_cert: the test CA (signs every certificate below).
        merchant_cert / merchant_key: ``apiclient_cert.pem`` / ``apiclient_key.pem``.
        merchant_serial: the merchant certificate serial (v3 ``serial_no``).
        platform_cert / platform_key: the emulated WeChat Pay platform certificate and key.
        platform_serial: the platform certificate serial (``Wechatpay-Serial``).
        platform_public_key_id: the id of the same key in the public-key scheme.
        server_cert / server_key: a certificate for ``127.0.0.1`` (loopback TLS).
    """

    __test__ = False  # not a pytest test class

    mch_id: str
    ca_cert: bytes
    merchant_cert: bytes
    merchant_key: bytes = attrs.field(repr=False)
    merchant_serial: str
    platform_cert: bytes
    platform_key: bytes = attrs.field(repr=False)
    platform_serial: str
    platform_public_key_id: str
    platform_public_key: bytes
    server_cert: bytes
    server_key: bytes = attrs.field(repr=False)

    def write(self, directory: str | os.PathLike[str]) -> dict[str, str]:
        """Write every PEM into ``directory`` and return their paths by name
        (``ca_cert``, ``merchant_cert``, ``merchant_key``, ``platform_cert``,
        ``platform_public_key``, ``server_cert``, ``server_key``)."""
        out: dict[str, str] = {}
        for name in (
            "ca_cert",
            "merchant_cert",
            "merchant_key",
            "platform_cert",
            "platform_public_key",
            "server_cert",
            "server_key",
        ):
            path = os.path.join(os.fspath(directory), f"{name}.pem")
            with open(path, "wb") as f:
                f.write(getattr(self, name))
            out[name] = path
        return out


def make_test_credentials(
    mch_id: str = "1900000109", *, now: dt.datetime | None = None, key_size: int = 2048
) -> TestCredentials:
    """Generate a CA, merchant, platform and loopback-server certificate set (a fraction of a
    second). ``now`` anchors validity (default: the system clock).

    Raises:
        UsageError: for a key size below 2048 bits.
    """
    if key_size < 2048:
        raise UsageError("make_test_credentials: WeChat Pay uses RSA-2048 or larger")
    at = now or dt.datetime.now(dt.UTC)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=key_size) for _ in range(4)]
    ca_key, merchant_key, platform_key, server_key = keys
    ca = _issue("membermkt test CA", ca_key, x509.Name([]), ca_key, at, ca=True)
    merchant = _issue(mch_id, merchant_key, ca.subject, ca_key, at)
    platform = _issue("Tenpay.com Root CA (emulated)", platform_key, ca.subject, ca_key, at)
    server = _issue("127.0.0.1", server_key, ca.subject, ca_key, at, ip="127.0.0.1")
    pub = platform_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TestCredentials(
        mch_id=mch_id,
        ca_cert=_pem_cert(ca),
        merchant_cert=_pem_cert(merchant),
        merchant_key=_pem_key(merchant_key),
        merchant_serial=certificate_serial(merchant),
        platform_cert=_pem_cert(platform),
        platform_key=_pem_key(platform_key),
        platform_serial=certificate_serial(platform),
        platform_public_key_id=f"PUB_KEY_ID_{mch_id}{secrets.token_hex(4).upper()}",
        platform_public_key=pub,
        server_cert=_pem_cert(server),
        server_key=_pem_key(server_key),
    )

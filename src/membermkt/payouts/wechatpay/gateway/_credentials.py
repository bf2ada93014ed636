"""Loading merchant and platform credentials: each loader fails early with a
:class:`~membermkt.errors.ConfigError` saying what to fix."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from membermkt.errors import ConfigError
from membermkt.payouts.wechatpay import v3
from membermkt.payouts.wechatpay.signing import load_certificate, load_private_key, load_public_key


def certificate_serial(certificate: x509.Certificate) -> str:
    """A certificate's serial as WeChat Pay writes it (upper-case hex)."""
    return f"{certificate.serial_number:X}"


def _read(path: str | os.PathLike[str], what: str, hint: str) -> bytes:
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ConfigError(f"{what} file not found: {p!r} ({hint})")
    try:
        with open(p, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{what} file {p!r} cannot be read: {exc}") from exc


@attrs.frozen(slots=True, kw_only=True)
class MerchantCertificate:
    """The merchant API certificate and key (``apiclient_cert.pem`` + ``apiclient_key.pem``)
    used for v2 mutual TLS, checked to belong together.

    Use :meth:`load`; the fields are the files and the parsed certificate.
    """

    cert_file: str
    key_file: str
    certificate: x509.Certificate = attrs.field(repr=False)

    @property
    def der(self) -> bytes:
        """The certificate in DER form."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def serial_no(self) -> str:
        """The certificate serial (upper-case hex), the v3 ``serial_no``."""
        return certificate_serial(self.certificate)

    @classmethod
    def load(
        cls, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]
    ) -> MerchantCertificate:
        """Read and check the certificate and key files.

        Raises:
            ConfigError: a file is missing or unreadable, is not PEM, the key is not RSA or
                does not match the certificate. (A ``.p12`` bundle must be converted to PEM
                first: ``openssl pkcs12 -in apiclient_cert.p12 -nodes``, password = mch_id.)
        """
        hint = "download it from the merchant console (API security / API certificate)"
        cert_pem = _read(cert_file, "merchant certificate", hint)
        key_pem = _read(key_file, "merchant private key", hint)
        cert = load_certificate(cert_pem, what=f"merchant certificate {os.fspath(cert_file)!r}")
        key = load_private_key(key_pem, what=f"merchant private key {os.fspath(key_file)!r}")
        pub = cert.public_key()
        if not isinstance(pub, rsa.RSAPublicKey) or (
            pub.public_numbers() != key.public_key().public_numbers()
        ):
            raise ConfigError(
                f"merchant private key {os.fspath(key_file)!r} does not match certificate "
                f"{os.fspath(cert_file)!r} (mixed up files from two merchants or renewals?)"
            )
        return cls(cert_file=os.fspath(cert_file), key_file=os.fspath(key_file), certificate=cert)

    def ssl_context(self, *, ca_file: str | None = None) -> ssl.SSLContext:
        """A client TLS context presenting this certificate (server verified against the
        system CAs, or ``ca_file``).

        Raises:
            ConfigError: when the files cannot be loaded by the TLS library.
        """
        ctx = ssl.create_default_context(cafile=ca_file)
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"cannot load the merchant certificate for TLS: {exc}") from exc
        return ctx


def load_merchant_signer(
    mchid: str,
    key_file: str | os.PathLike[str],
    *,
    serial_no: str | None = None,
    cert_file: str | os.PathLike[str] | None = None,
) -> v3.MerchantSigner:
    """The v3 request signer from the merchant key file and the certificate serial (given,
    or read from ``cert_file``).

    Raises:
        ConfigError: missing/unreadable/non-RSA key, neither serial nor certificate given,
            or a certificate that does not match the key.
    """
    hint = "the merchant API private key apiclient_key.pem"
    key = load_private_key(
        _read(key_file, "merchant private key", hint),
        what=f"merchant private key {os.fspath(key_file)!r}",
    )
    if serial_no is None:
        if cert_file is None:
            raise ConfigError("load_merchant_signer needs serial_no or cert_file")
        cert = load_certificate(
            _read(cert_file, "merchant certificate", "apiclient_cert.pem"),
            what=f"merchant certificate {os.fspath(cert_file)!r}",
        )
        pub = cert.public_key()
        if not isinstance(pub, rsa.RSAPublicKey) or (
            pub.public_numbers() != key.public_key().public_numbers()
        ):
            raise ConfigError("merchant private key does not match the merchant certificate")
        serial_no = certificate_serial(cert)
    return v3.MerchantSigner(mchid=mchid, serial_no=serial_no, private_key=key)


def load_platform_keys(
    *,
    certificates: Iterable[bytes | str] = (),
    public_keys: Mapping[str, bytes | str] | None = None,
) -> dict[str, rsa.RSAPublicKey]:
    """Platform verification keys by ``Wechatpay-Serial``: platform certificates (PEM; keyed
    by their serial) and/or WeChat Pay public keys (PEM; keyed by their ``PUB_KEY_ID_...``).
    Keep both while migrating from certificates to the public key.

    Raises:
        ConfigError: for a PEM that is not an RSA certificate / public key, or no keys at all.
    """
    keys: dict[str, rsa.RSAPublicKey] = {}
    for pem in certificates:
        cert = load_certificate(pem, what="platform certificate")
        keys[certificate_serial(cert)] = load_public_key(pem, what="platform certificate")
    for key_id, pem in (public_keys or {}).items():
        if not key_id.startswith("PUB_KEY_ID_"):
            raise ConfigError(f"a WeChat Pay public key id starts with PUB_KEY_ID_, got {key_id!r}")
        keys[key_id] = load_public_key(pem, what=f"WeChat Pay public key {key_id}")
    if not keys:
        raise ConfigError(
            "no platform keys: configure the platform certificate or the WeChat Pay public key"
        )
    return keys

"""WeChat Pay gateways: the I/O drivers around the sans-I/O :mod:`.v2` and :mod:`.v3` layers.

* :class:`WeChatPayV2Gateway` / :class:`AsyncWeChatPayV2Gateway` — cash red packets
  (``sendredpack`` / ``gethbinfo``) over mutual TLS with the merchant certificate.
* :class:`WeChatPayV3Gateway` / :class:`AsyncWeChatPayV3Gateway` — merchant transfers,
  RSA-signed requests, verified responses and callbacks.

Credentials are loaded by explicit functions that fail early with a :class:`ConfigError`
saying what to fix (:meth:`MerchantCertificate.load`, :func:`load_merchant_signer`,
:func:`load_platform_keys`); constructors do no I/O, the HTTP client is created on first use.
Every gateway accepts ``transport=`` (e.g. the emulator's) or ``http_client=`` (yours; you
then own its lifecycle and its TLS settings).

Gateways never raise for a platform answer or a transport failure: they return a
:class:`~membermkt.payouts.base.PayoutResult` classified as described in
:mod:`membermkt.payouts.base` (timeouts are ``UNKNOWN``).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import ssl
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Final, Self

import attrs
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from membermkt.core.ports import Clock
from membermkt.errors import ConfigError, UsageError
from membermkt.payouts.base import (
    HttpRequest,
    HttpResponse,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
)
from membermkt.payouts.wechatpay import v2, v3
from membermkt.payouts.wechatpay.signing import (
    PublicKeys,
    load_certificate,
    load_private_key,
    load_public_key,
)

__all__ = [
    "API_BASE",
    "CLIENT_CERT_EXTENSION",
    "AsyncWeChatPayV2Gateway",
    "AsyncWeChatPayV3Gateway",
    "MerchantCertificate",
    "WeChatPayV2Gateway",
    "WeChatPayV3Gateway",
    "certificate_serial",
    "load_merchant_signer",
    "load_platform_keys",
]

API_BASE: Final = "https://api.mch.weixin.qq.com"

CLIENT_CERT_EXTENSION: Final = "membermkt.client_cert"
"""httpx request extension carrying the DER merchant certificate the gateway presents.

Real transports present the certificate in the TLS handshake and ignore this extension; an
in-process transport (the emulator) cannot see the handshake, so it checks this instead.
"""


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


def _nonce() -> str:
    return secrets.token_hex(16)


def _transport_failure(bill_no: str, exc: httpx.HTTPError) -> PayoutResult:
    state = "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
    return PayoutResult(
        bill_no=bill_no,
        status=PayoutStatus.UNKNOWN,
        state=state,
        reason=f"no usable answer ({type(exc).__name__}: {exc}); query before retrying",
    )


def _to_httpx(base_url: str, req: HttpRequest, cert_der: bytes | None) -> httpx.Request:
    extensions = {CLIENT_CERT_EXTENSION: cert_der} if cert_der is not None else {}
    return httpx.Request(
        req.method,
        base_url.rstrip("/") + req.path,
        headers=dict(req.headers),
        content=req.body,
        extensions=extensions,
    )


def _from_httpx(resp: httpx.Response) -> HttpResponse:
    return HttpResponse(status_code=resp.status_code, headers=dict(resp.headers), body=resp.content)


def _check_injection(transport: object, http_client: object) -> None:
    if transport is not None and http_client is not None:
        raise UsageError(
            "pass either transport= or http_client=, not both (configure the transport on "
            "your own client instead)"
        )


class _Closing:
    """Context-manager plumbing shared by the sync gateways."""

    _http: httpx.Client | None
    _owns: bool

    def close(self) -> None:
        """Close the HTTP client if the gateway created it."""
        if self._http is not None and self._owns:
            self._http.close()
        self._http = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _AsyncClosing:
    _http: httpx.AsyncClient | None
    _owns: bool

    async def aclose(self) -> None:
        """Close the HTTP client if the gateway created it."""
        if self._http is not None and self._owns:
            await self._http.aclose()
        self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- v2


class _V2Common:
    product: str = "wechatpay.v2.redpack"

    def __init__(
        self,
        config: v2.RedPacketConfig,
        certificate: MerchantCertificate,
        *,
        base_url: str = API_BASE,
        ca_file: str | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        if not isinstance(certificate, MerchantCertificate):
            raise ConfigError(
                "the v2 red-packet APIs need the merchant certificate: pass "
                "MerchantCertificate.load('apiclient_cert.pem', 'apiclient_key.pem')"
            )
        self.config = config
        self.certificate = certificate
        self.base_url = base_url
        self._ca_file = ca_file
        self._timeout = timeout
        self._nonce = nonce

    def __repr__(self) -> str:
        return f"<{type(self).__name__} mch_id={self.config.mch_id} base_url={self.base_url}>"


class WeChatPayV2Gateway(_V2Common, _Closing):
    """Cash red packets through WeChat Pay API v2 (sync).

    Args:
        config: a :class:`~membermkt.payouts.wechatpay.v2.RedPacketConfig`.
        certificate: a :class:`MerchantCertificate` (mutual TLS is required).
        base_url: the API host.
        transport: an httpx transport (e.g. ``WeChatPayEmulator.transport()``).
        http_client: your own ``httpx.Client`` (configure its client certificate yourself).
        ca_file: CA bundle to verify the server with (default: system CAs).
        timeout: seconds per request.

    Raises:
        ConfigError: without a :class:`MerchantCertificate`.
        UsageError: when both ``transport`` and ``http_client`` are given.
    """

    def __init__(
        self,
        config: v2.RedPacketConfig,
        certificate: MerchantCertificate,
        *,
        base_url: str = API_BASE,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        _check_injection(transport, http_client)
        super().__init__(
            config, certificate, base_url=base_url, ca_file=ca_file, timeout=timeout, nonce=nonce
        )
        self._transport = transport
        self._http = http_client
        self._owns = http_client is None

    def _client(self) -> httpx.Client:
        if self._http is None:
            if self._transport is not None:
                self._http = httpx.Client(transport=self._transport, timeout=self._timeout)
            else:
                ctx = self.certificate.ssl_context(ca_file=self._ca_file)
                self._http = httpx.Client(verify=ctx, timeout=self._timeout)
        return self._http

    def _send(self, bill_no: str, req: HttpRequest) -> HttpResponse | PayoutResult:
        try:
            resp = self._client().send(_to_httpx(self.base_url, req, self.certificate.der))
        except httpx.HTTPError as exc:
            return _transport_failure(bill_no, exc)
        return _from_httpx(resp)

    def pay(self, request: PayoutRequest) -> PayoutResult:
        """Send one red packet under ``request.bill_no`` (the platform is re-entrant on it)."""
        resp = self._send(
            request.bill_no, v2.build_sendredpack(self.config, request, self._nonce())
        )
        if isinstance(resp, PayoutResult):
            return resp
        return v2.parse_sendredpack(request.bill_no, resp, self.config.api_key)

    def query(self, bill_no: str) -> PayoutResult:
        """Where the red packet ``bill_no`` stands (``gethbinfo``)."""
        resp = self._send(bill_no, v2.build_gethbinfo(self.config, bill_no, self._nonce()))
        if isinstance(resp, PayoutResult):
            return resp
        return v2.parse_gethbinfo(bill_no, resp, self.config.api_key)


class AsyncWeChatPayV2Gateway(_V2Common, _AsyncClosing):
    """The async twin of :class:`WeChatPayV2Gateway` (same arguments, awaited methods).

    Raises:
        ConfigError: without a :class:`MerchantCertificate`.
        UsageError: when both ``transport`` and ``http_client`` are given.
    """

    def __init__(
        self,
        config: v2.RedPacketConfig,
        certificate: MerchantCertificate,
        *,
        base_url: str = API_BASE,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        _check_injection(transport, http_client)
        super().__init__(
            config, certificate, base_url=base_url, ca_file=ca_file, timeout=timeout, nonce=nonce
        )
        self._transport = transport
        self._http = http_client
        self._owns = http_client is None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            if self._transport is not None:
                self._http = httpx.AsyncClient(transport=self._transport, timeout=self._timeout)
            else:
                ctx = self.certificate.ssl_context(ca_file=self._ca_file)
                self._http = httpx.AsyncClient(verify=ctx, timeout=self._timeout)
        return self._http

    async def _send(self, bill_no: str, req: HttpRequest) -> HttpResponse | PayoutResult:
        try:
            resp = await self._client().send(_to_httpx(self.base_url, req, self.certificate.der))
        except httpx.HTTPError as exc:
            return _transport_failure(bill_no, exc)
        return _from_httpx(resp)

    async def pay(self, request: PayoutRequest) -> PayoutResult:
        """Send one red packet under ``request.bill_no``."""
        req = v2.build_sendredpack(self.config, request, self._nonce())
        resp = await self._send(request.bill_no, req)
        if isinstance(resp, PayoutResult):
            return resp
        return v2.parse_sendredpack(request.bill_no, resp, self.config.api_key)

    async def query(self, bill_no: str) -> PayoutResult:
        """Where the red packet ``bill_no`` stands."""
        resp = await self._send(bill_no, v2.build_gethbinfo(self.config, bill_no, self._nonce()))
        if isinstance(resp, PayoutResult):
            return resp
        return v2.parse_gethbinfo(bill_no, resp, self.config.api_key)


# --------------------------------------------------------------------------- v3


class _V3Common:
    product: str = "wechatpay.v3.transfer"

    def __init__(
        self,
        config: v3.TransferConfig,
        signer: v3.MerchantSigner,
        platform_keys: PublicKeys,
        *,
        api_v3_key: str | None = None,
        base_url: str = API_BASE,
        clock: Clock | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
        check_timestamp: bool = True,
    ) -> None:
        if not platform_keys:
            raise ConfigError(
                "no platform keys: pass load_platform_keys(certificates=..., public_keys=...)"
            )
        if api_v3_key is not None and len(api_v3_key.encode()) != 32:
            raise ConfigError("the APIv3 key must be 32 bytes (set it in the merchant console)")
        self.config = config
        self.signer = signer
        self.platform_keys = dict(platform_keys)
        self.base_url = base_url
        self._api_v3_key = api_v3_key
        self._clock = clock
        self._timeout = timeout
        self._nonce = nonce
        self._check_timestamp = check_timestamp

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} mchid={self.signer.mchid} "
            f"platform_keys={sorted(self.platform_keys)} base_url={self.base_url}>"
        )

    def _now(self) -> dt.datetime:
        return self._clock.now() if self._clock is not None else dt.datetime.now(dt.UTC)

    def _signed(self, method: str, path: str, body: bytes) -> HttpRequest:
        return v3.sign_request(
            self.signer,
            method,
            path,
            body,
            timestamp=int(self._now().timestamp()),
            nonce=self._nonce(),
        )

    def _verify_now(self) -> dt.datetime | None:
        return self._now() if self._check_timestamp else None

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PayoutResult:
        """Verify and decrypt a transfer callback (``MCHTRANSFER.BILL.FINISHED``).

        Raises:
            ConfigError: when the gateway has no APIv3 key.
            SignatureError: the callback does not verify (answer the platform non-2xx).
            DecryptError: the resource cannot be decrypted.
        """
        if self._api_v3_key is None:
            raise ConfigError("parse_notification needs the gateway's api_v3_key")
        return v3.parse_notification(
            headers, body, self.platform_keys, self._api_v3_key, now=self._verify_now()
        )


class WeChatPayV3Gateway(_V3Common, _Closing):
    """Merchant transfers through WeChat Pay API v3 (sync).

    Args:
        config: a :class:`~membermkt.payouts.wechatpay.v3.TransferConfig`.
        signer: a :class:`~membermkt.payouts.wechatpay.v3.MerchantSigner`
            (:func:`load_merchant_signer`).
        platform_keys: verification keys by serial (:func:`load_platform_keys`).
        api_v3_key: the 32-byte APIv3 key (callback decryption).
        base_url, transport, http_client, timeout: as for :class:`WeChatPayV2Gateway`.
        clock: where request timestamps come from (default: the system clock).
        check_timestamp: refuse responses whose timestamp is more than 5 minutes off.

    Raises:
        ConfigError: without platform keys or with a malformed APIv3 key.
        UsageError: when both ``transport`` and ``http_client`` are given.
    """

    def __init__(
        self,
        config: v3.TransferConfig,
        signer: v3.MerchantSigner,
        platform_keys: PublicKeys,
        *,
        api_v3_key: str | None = None,
        base_url: str = API_BASE,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        clock: Clock | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
        check_timestamp: bool = True,
    ) -> None:
        _check_injection(transport, http_client)
        super().__init__(
            config,
            signer,
            platform_keys,
            api_v3_key=api_v3_key,
            base_url=base_url,
            clock=clock,
            timeout=timeout,
            nonce=nonce,
            check_timestamp=check_timestamp,
        )
        self._transport = transport
        self._http = http_client
        self._owns = http_client is None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(transport=self._transport, timeout=self._timeout)
        return self._http

    def _send(self, bill_no: str, req: HttpRequest) -> HttpResponse | PayoutResult:
        try:
            resp = self._client().send(_to_httpx(self.base_url, req, None))
        except httpx.HTTPError as exc:
            return _transport_failure(bill_no, exc)
        return _from_httpx(resp)

    def pay(self, request: PayoutRequest) -> PayoutResult:
        """Create the transfer bill ``request.bill_no`` (idempotent on ``out_bill_no``)."""
        path, body = v3.build_transfer(self.config, request)
        resp = self._send(request.bill_no, self._signed("POST", path, body))
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_transfer(request.bill_no, resp, self.platform_keys, now=self._verify_now())

    def query(self, bill_no: str) -> PayoutResult:
        """Where the transfer ``bill_no`` stands (``NOT_FOUND`` when never created)."""
        path, body = v3.build_query(bill_no)
        resp = self._send(bill_no, self._signed("GET", path, body))
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_query(bill_no, resp, self.platform_keys, now=self._verify_now())


class AsyncWeChatPayV3Gateway(_V3Common, _AsyncClosing):
    """The async twin of :class:`WeChatPayV3Gateway` (same arguments, awaited methods).

    Raises:
        ConfigError: without platform keys or with a malformed APIv3 key.
        UsageError: when both ``transport`` and ``http_client`` are given.
    """

    def __init__(
        self,
        config: v3.TransferConfig,
        signer: v3.MerchantSigner,
        platform_keys: PublicKeys,
        *,
        api_v3_key: str | None = None,
        base_url: str = API_BASE,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
        check_timestamp: bool = True,
    ) -> None:
        _check_injection(transport, http_client)
        super().__init__(
            config,
            signer,
            platform_keys,
            api_v3_key=api_v3_key,
            base_url=base_url,
            clock=clock,
            timeout=timeout,
            nonce=nonce,
            check_timestamp=check_timestamp,
        )
        self._transport = transport
        self._http = http_client
        self._owns = http_client is None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, timeout=self._timeout)
        return self._http

    async def _send(self, bill_no: str, req: HttpRequest) -> HttpResponse | PayoutResult:
        try:
            resp = await self._client().send(_to_httpx(self.base_url, req, None))
        except httpx.HTTPError as exc:
            return _transport_failure(bill_no, exc)
        return _from_httpx(resp)

    async def pay(self, request: PayoutRequest) -> PayoutResult:
        """Create the transfer bill ``request.bill_no``."""
        path, body = v3.build_transfer(self.config, request)
        resp = await self._send(request.bill_no, self._signed("POST", path, body))
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_transfer(request.bill_no, resp, self.platform_keys, now=self._verify_now())

    async def query(self, bill_no: str) -> PayoutResult:
        """Where the transfer ``bill_no`` stands."""
        path, body = v3.build_query(bill_no)
        resp = await self._send(bill_no, self._signed("GET", path, body))
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_query(bill_no, resp, self.platform_keys, now=self._verify_now())

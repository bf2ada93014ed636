"""The v2 cash red-packet gateways (``sendredpack`` / ``gethbinfo``) over mutual TLS."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from membermkt.errors import ConfigError
from membermkt.payouts.base import HttpRequest, HttpResponse, PayoutRequest, PayoutResult
from membermkt.payouts.wechatpay import v2
from membermkt.payouts.wechatpay.gateway._credentials import MerchantCertificate
from membermkt.payouts.wechatpay.gateway._shared import (
    API_BASE,
    _AsyncClosing,
    _check_injection,
    _Closing,
    _from_httpx,
    _nonce,
    _to_httpx,
    _transport_failure,
)
from membermkt.security.redact import install_redaction


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
                install_redaction()  # no token/secret in httpx's URL logs
                self._http = httpx.Client(transport=self._transport, timeout=self._timeout)
            else:
                ctx = self.certificate.ssl_context(ca_file=self._ca_file)
                install_redaction()  # no token/secret in httpx's URL logs
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
                install_redaction()  # no token/secret in httpx's URL logs
                self._http = httpx.AsyncClient(transport=self._transport, timeout=self._timeout)
            else:
                ctx = self.certificate.ssl_context(ca_file=self._ca_file)
                install_redaction()  # no token/secret in httpx's URL logs
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

"""The v3 merchant-transfer gateways: signed requests, verified responses, callbacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from membermkt.core.ports import Clock
from membermkt.errors import ConfigError
from membermkt.payouts.base import HttpRequest, HttpResponse, PayoutRequest, PayoutResult
from membermkt.payouts.wechatpay import v3
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
from membermkt.payouts.wechatpay.gateway._v3base import _V3Base
from membermkt.payouts.wechatpay.signing import PublicKeys
from membermkt.security.redact import install_redaction


class _V3Common(_V3Base[v3.TransferConfig]):
    product: str = "wechatpay.v3.transfer"

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} mchid={self.signer.mchid} "
            f"platform_keys={sorted(self.platform_keys)} base_url={self.base_url}>"
        )

    def _transfer_request(self, request: PayoutRequest) -> HttpRequest:
        """The signed transfer; a ``user_name`` is RSA-OAEP encrypted with the platform key
        and the request names that key in ``Wechatpay-Serial`` (reference §4.3)."""
        key = v3.encryption_key(self.platform_keys) if request.user_name else None
        path, body = v3.build_transfer(self.config, request, encrypt_with=key)
        return self._signed("POST", path, body, key[0] if key else None)

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
            install_redaction()  # no token/secret in httpx's URL logs
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
        resp = self._send(request.bill_no, self._transfer_request(request))
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

    def query_transfer_bill(self, transfer_bill_no: str) -> PayoutResult:
        """Where a transfer stands, by the platform's ``transfer_bill_no``."""
        resp = self._send(
            transfer_bill_no, self._signed("GET", v3.transfer_bill_path(transfer_bill_no), b"")
        )
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_query_by_transfer_bill(
            transfer_bill_no, resp, self.platform_keys, now=self._verify_now()
        )

    def cancel(self, bill_no: str) -> PayoutResult:
        """Cancel a transfer the user has not confirmed yet (``CANCELLED`` → ``FAILED``,
        ``CANCELING`` → ``PENDING``; a refusal is ``UNKNOWN``: query it)."""
        resp = self._send(bill_no, self._signed("POST", v3.cancel_path(bill_no), b""))
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_cancel(bill_no, resp, self.platform_keys, now=self._verify_now())


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
            install_redaction()  # no token/secret in httpx's URL logs
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
        resp = await self._send(request.bill_no, self._transfer_request(request))
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

    async def query_transfer_bill(self, transfer_bill_no: str) -> PayoutResult:
        """See :meth:`WeChatPayV3Gateway.query_transfer_bill`."""
        resp = await self._send(
            transfer_bill_no, self._signed("GET", v3.transfer_bill_path(transfer_bill_no), b"")
        )
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_query_by_transfer_bill(
            transfer_bill_no, resp, self.platform_keys, now=self._verify_now()
        )

    async def cancel(self, bill_no: str) -> PayoutResult:
        """See :meth:`WeChatPayV3Gateway.cancel`."""
        resp = await self._send(bill_no, self._signed("POST", v3.cancel_path(bill_no), b""))
        if isinstance(resp, PayoutResult):
            return resp
        return v3.parse_cancel(bill_no, resp, self.platform_keys, now=self._verify_now())

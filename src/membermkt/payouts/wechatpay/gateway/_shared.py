"""What both gateway families share: the API host, the client-certificate extension, request
/ response conversion to httpx, transport-failure classification and close plumbing."""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import Final, Self

import httpx

from membermkt.errors import UsageError
from membermkt.payouts.base import HttpRequest, HttpResponse, PayoutResult, PayoutStatus

API_BASE: Final = "https://api.mch.weixin.qq.com"

CLIENT_CERT_EXTENSION: Final = "membermkt.client_cert"
"""httpx request extension carrying the DER merchant certificate the gateway presents.

Real transports present the certificate in the TLS handshake and ignore this extension; an
in-process transport (the emulator) cannot see the handshake, so it checks this instead.
"""


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

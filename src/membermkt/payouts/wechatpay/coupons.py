"""WeChat Pay v3 coupons (代金券, the "favor" marketing API): grant, query, use callbacks.

* Grant: ``POST /v3/marketing/favor/users/{openid}/coupons`` with ``stock_id``,
  ``out_request_no``, ``appid``, ``stock_creator_mchid``; answers ``{"coupon_id": ...}``.
  The platform documents the call as idempotent on ``out_request_no`` (幂等重入), so an
  ambiguous answer (timeout, 5xx, unverifiable body) is resolved by granting again with the
  **same** request number: the answer then names the coupon already given, or the grant
  happens now, once.
* Query: ``GET /v3/marketing/favor/users/{openid}/coupons/{coupon_id}?appid=...`` answers the
  coupon with ``status`` ``SENDED`` (in the wallet), ``USED`` or ``EXPIRED`` and, once used,
  ``consume_information`` (``consume_time``, ``transaction_id``...).
* Use callback: ``event_type`` ``COUPON.USE``, an AES-256-GCM ``resource`` whose plaintext is
  the coupon as the query shows it (the callback URL is set once per merchant with
  ``POST /v3/marketing/favor/callbacks``, not per request).

Requests are signed and answers verified exactly like merchant transfers
(:mod:`membermkt.payouts.wechatpay.v3`); an answer that does not verify is ``UNKNOWN``.

Sources: the platform's "发放指定批次的代金券" page (path, body fields, 500/s, idempotency),
the official Go SDK's ``cashcoupons`` service (query path and parameters). Unconfirmed (not
in our reference, taken from common v3 practice and marked so): the error-code names below
and their HTTP statuses, the 404 code of an unknown coupon, and the ``COUPON.USE`` resource's
``original_type`` (``coupon``).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import httpx

from membermkt.core.membership.coupons import CouponGrant, CouponResult, CouponStatus
from membermkt.core.ports import Clock
from membermkt.errors import ConfigError, DecryptError, SignatureError, UsageError
from membermkt.payouts.base import HttpResponse
from membermkt.payouts.wechatpay.gateway._shared import (
    API_BASE,
    _AsyncClosing,
    _check_injection,
    _Closing,
    _from_httpx,
    _nonce,
    _to_httpx,
)
from membermkt.payouts.wechatpay.gateway._v3base import _V3Base
from membermkt.payouts.wechatpay.signing import PublicKeys, aead_decrypt, verify_v3_response
from membermkt.payouts.wechatpay.v3 import MerchantSigner

__all__ = [
    "COUPON_USE_EVENT",
    "DEFINITE_REFUSALS",
    "FAVOR_USERS_PATH",
    "AsyncWeChatPayCouponGateway",
    "CouponConfig",
    "WeChatPayCouponGateway",
    "build_grant",
    "build_query",
    "parse_grant",
    "parse_query",
    "parse_use_notification",
]

FAVOR_USERS_PATH: Final = "/v3/marketing/favor/users"
COUPON_USE_EVENT: Final = "COUPON.USE"

_STATUS: Final = {
    "SENDED": CouponStatus.GRANTED,  # sic, the platform's spelling
    "USED": CouponStatus.USED,
    "EXPIRED": CouponStatus.EXPIRED,
}

DEFINITE_REFUSALS: Final = frozenset(
    {
        "PARAM_ERROR",
        "INVALID_REQUEST",
        "SIGN_ERROR",
        "NO_AUTH",
        "RESOURCE_NOT_EXISTS",
        "RULE_LIMIT",
        "NOT_ENOUGH",
        "USER_ACCOUNT_ABNORMAL",
        "REQUEST_BLOCKED",
        "FREQUENCY_LIMITED",
    }
)
"""Error codes taken as "no coupon was given" (unconfirmed names, see the module doc):
stock exhausted (``NOT_ENOUGH``), per-user limit (``RULE_LIMIT``), unknown stock
(``RESOURCE_NOT_EXISTS``), bad request, no permission, risk control, throttled
(``FREQUENCY_LIMITED``, retryable). Anything else non-2xx is ``UNKNOWN``."""

_RETRYABLE: Final = frozenset({"FREQUENCY_LIMITED"})


@attrs.frozen(slots=True, kw_only=True)
class CouponConfig:
    """What a merchant sends with every grant.

    Attributes:
        appid: the appid the members' openids belong to (bound to the merchant).
        stock_creator_mchid: the merchant that created the stocks (``None``: the signer's
            mchid; set it when granting another merchant's stock).

    Raises:
        ConfigError: on an empty or over-long appid.
    """

    appid: str
    stock_creator_mchid: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.appid or len(self.appid) > 128:
            raise ConfigError(f"CouponConfig.appid must be 1-128 chars, got {self.appid!r}")


def _json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def build_grant(config: CouponConfig, grant: CouponGrant, mchid: str) -> tuple[str, bytes]:
    """The path and JSON body granting ``grant`` (unsigned; see :func:`sign_request`)."""
    body = {
        "stock_id": grant.stock_id,
        "out_request_no": grant.request_no,
        "appid": config.appid,
        "stock_creator_mchid": config.stock_creator_mchid or mchid,
    }
    return f"{FAVOR_USERS_PATH}/{_quote(grant.openid)}/coupons", _json(body)


def build_query(config: CouponConfig, openid: str, coupon_id: str) -> tuple[str, bytes]:
    """The path (with ``appid`` query) and empty body of a coupon query.

    Raises:
        UsageError: on an empty openid or coupon id.
    """
    if not openid or not coupon_id:
        raise UsageError("a coupon query needs the openid and the coupon_id")
    query = urllib.parse.urlencode({"appid": config.appid})
    return f"{FAVOR_USERS_PATH}/{_quote(openid)}/coupons/{_quote(coupon_id)}?{query}", b""


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _verified(
    request_no: str, response: HttpResponse, keys: PublicKeys, now: dt.datetime | None
) -> CouponResult | None:
    if response.status_code >= 500:
        return CouponResult(
            request_no=request_no,
            status=CouponStatus.UNKNOWN,
            state=f"HTTP_{response.status_code}",
            reason="server error: outcome unknown; grant again with the same out_request_no",
        )
    try:
        verify_v3_response(response.headers, response.body, keys, now=now)
    except SignatureError as exc:
        return CouponResult(
            request_no=request_no,
            status=CouponStatus.UNKNOWN,
            state="BAD_SIGNATURE",
            reason=str(exc),
        )
    return None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _from_coupon(request_no: str, data: Mapping[str, Any]) -> CouponResult:
    state = str(data.get("status", ""))
    consume = data.get("consume_information")
    consume = consume if isinstance(consume, dict) else {}
    return CouponResult(
        request_no=request_no,
        status=_STATUS.get(state, CouponStatus.UNKNOWN),
        coupon_id=str(data["coupon_id"]) if data.get("coupon_id") else None,
        state=state or None,
        used_at=_time(consume.get("consume_time")),
        transaction_id=str(consume["transaction_id"]) if consume.get("transaction_id") else None,
        stock_id=str(data["stock_id"]) if data.get("stock_id") else None,
    )


def parse_grant(
    request_no: str, response: HttpResponse, keys: PublicKeys, *, now: dt.datetime | None = None
) -> CouponResult:
    """Classify a grant answer after verifying it (never raises for what the platform said)."""
    bad = _verified(request_no, response, keys, now)
    if bad is not None:
        return bad
    data = _payload(response.body)
    if 200 <= response.status_code < 300 and data is not None and data.get("coupon_id"):
        return CouponResult(
            request_no=request_no,
            status=CouponStatus.GRANTED,
            coupon_id=str(data["coupon_id"]),
            state="SENDED",
        )
    code = str((data or {}).get("code", "")) or f"HTTP_{response.status_code}"
    message = str((data or {}).get("message", "")) or f"HTTP {response.status_code}"
    if 400 <= response.status_code < 500 and code in DEFINITE_REFUSALS:
        return CouponResult(
            request_no=request_no,
            status=CouponStatus.FAILED,
            state=code,
            reason=message,
            retryable=code in _RETRYABLE,
        )
    return CouponResult(
        request_no=request_no, status=CouponStatus.UNKNOWN, state=code, reason=message
    )


def parse_query(
    response: HttpResponse, keys: PublicKeys, *, now: dt.datetime | None = None
) -> CouponResult:
    """Classify a coupon query answer (404 → ``NOT_FOUND``)."""
    bad = _verified("", response, keys, now)
    if bad is not None:
        return bad
    data = _payload(response.body)
    if response.status_code == 404:
        return CouponResult(
            request_no="",
            status=CouponStatus.NOT_FOUND,
            state=str((data or {}).get("code", "NOT_FOUND")),
            reason=str((data or {}).get("message", "no such coupon")),
        )
    if not 200 <= response.status_code < 300 or data is None:
        return CouponResult(
            request_no="",
            status=CouponStatus.UNKNOWN,
            state=str((data or {}).get("code", f"HTTP_{response.status_code}")),
            reason=str((data or {}).get("message", "query failed")),
        )
    return _from_coupon("", data)


def parse_use_notification(
    headers: Mapping[str, str],
    body: bytes,
    keys: PublicKeys,
    api_v3_key: str | bytes,
    *,
    now: dt.datetime | None = None,
) -> CouponResult:
    """Verify and decrypt a ``COUPON.USE`` callback into the used coupon's result.

    Callbacks repeat: record the use idempotently (by coupon id).

    Raises:
        SignatureError: the callback does not verify (answer the platform non-2xx).
        DecryptError: the body or its resource cannot be decoded, decrypted, or is not a
            ``COUPON.USE`` callback.
    """
    verify_v3_response(headers, body, keys, now=now)
    try:
        envelope = json.loads(body)
        if envelope.get("event_type") != COUPON_USE_EVENT:
            raise DecryptError(
                f"not a {COUPON_USE_EVENT} callback: event_type {envelope.get('event_type')!r}"
            )
        resource = envelope["resource"]
        plaintext = aead_decrypt(
            api_v3_key,
            str(resource["nonce"]),
            str(resource["ciphertext"]),
            str(resource.get("associated_data") or ""),
        )
        data = json.loads(plaintext)
    except DecryptError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DecryptError(f"WeChat Pay coupon callback: unreadable body ({exc})") from exc
    if not isinstance(data, dict) or not data.get("coupon_id"):
        raise DecryptError("WeChat Pay coupon callback: the resource names no coupon")
    return _from_coupon("", data)


class _CouponCommon(_V3Base[CouponConfig]):
    """Configuration, signing and answer classification shared by the sync and async
    gateways (their ``_send`` differs)."""

    name = "wechatpay.favor"

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} mchid={self.signer.mchid} appid={self.config.appid} "
            f"base_url={self.base_url}>"
        )

    def _request(self, method: str, path: str, body: bytes) -> httpx.Request:
        return _to_httpx(self.base_url, self._signed(method, path, body), None)

    def _grant_result(self, grant: CouponGrant, resp: HttpResponse | str) -> CouponResult:
        if isinstance(resp, str):
            return CouponResult(
                request_no=grant.request_no,
                status=CouponStatus.UNKNOWN,
                state=resp,
                reason="no usable answer; grant again with the same out_request_no",
            )
        return parse_grant(grant.request_no, resp, self.platform_keys, now=self._verify_now())

    def _query_result(self, resp: HttpResponse | str) -> CouponResult:
        if isinstance(resp, str):
            return CouponResult(
                request_no="", status=CouponStatus.UNKNOWN, state=resp, reason="no answer"
            )
        return parse_query(resp, self.platform_keys, now=self._verify_now())

    def parse_use_notification(self, headers: Mapping[str, str], body: bytes) -> CouponResult:
        """Verify and decrypt a ``COUPON.USE`` callback.

        Raises:
            ConfigError: when the gateway has no APIv3 key.
            SignatureError / DecryptError: see :func:`parse_use_notification`.
        """
        if self._api_v3_key is None:
            raise ConfigError("parse_use_notification needs the gateway's api_v3_key")
        return parse_use_notification(
            headers, body, self.platform_keys, self._api_v3_key, now=self._verify_now()
        )


def _failure(exc: httpx.HTTPError) -> str:
    return "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__


class WeChatPayCouponGateway(_CouponCommon, _Closing):
    """Grant and query WeChat Pay coupons (sync); implements
    :class:`~membermkt.core.ports.CouponGateway`.

    Args:
        config: a :class:`CouponConfig`.
        signer: the merchant's v3 signer
            (:func:`~membermkt.payouts.wechatpay.gateway.load_merchant_signer`).
        platform_keys: verification keys by serial
            (:func:`~membermkt.payouts.wechatpay.gateway.load_platform_keys`).
        api_v3_key: the 32-byte APIv3 key (use-callback decryption).
        base_url: the API host (the emulator's loopback URL in tests).
        transport / http_client: an httpx transport (e.g. the emulator's) or your own client.
        clock: where request timestamps come from (default: the system clock).
        timeout: seconds per request.
        check_timestamp: refuse answers whose timestamp is more than 5 minutes off.

    Raises:
        ConfigError: without platform keys or with a malformed APIv3 key.
        UsageError: when both ``transport`` and ``http_client`` are given.
    """

    def __init__(
        self,
        config: CouponConfig,
        signer: MerchantSigner,
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

    def _send(self, method: str, path: str, body: bytes) -> HttpResponse | str:
        try:
            return _from_httpx(self._client().send(self._request(method, path, body)))
        except httpx.HTTPError as exc:
            return _failure(exc)

    def grant(self, grant: CouponGrant) -> CouponResult:
        """Give one coupon of ``grant.stock_id`` to ``grant.openid`` (idempotent on
        ``grant.request_no``; an ``UNKNOWN`` answer is resolved by calling again with the
        same grant)."""
        path, body = build_grant(self.config, grant, self.signer.mchid)
        return self._grant_result(grant, self._send("POST", path, body))

    def query(self, openid: str, coupon_id: str) -> CouponResult:
        """Where the coupon stands (``GRANTED`` / ``USED`` / ``EXPIRED`` / ``NOT_FOUND``)."""
        path, body = build_query(self.config, openid, coupon_id)
        return self._query_result(self._send("GET", path, body))


class AsyncWeChatPayCouponGateway(_CouponCommon, _AsyncClosing):
    """The async twin of :class:`WeChatPayCouponGateway` (same arguments, awaited
    ``grant`` / ``query``).

    Raises:
        ConfigError: without platform keys or with a malformed APIv3 key.
        UsageError: when both ``transport`` and ``http_client`` are given.
    """

    def __init__(
        self,
        config: CouponConfig,
        signer: MerchantSigner,
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

    async def _send(self, method: str, path: str, body: bytes) -> HttpResponse | str:
        try:
            return _from_httpx(await self._client().send(self._request(method, path, body)))
        except httpx.HTTPError as exc:
            return _failure(exc)

    async def grant(self, grant: CouponGrant) -> CouponResult:
        """Give one coupon (see :meth:`WeChatPayCouponGateway.grant`)."""
        path, body = build_grant(self.config, grant, self.signer.mchid)
        return self._grant_result(grant, await self._send("POST", path, body))

    async def query(self, openid: str, coupon_id: str) -> CouponResult:
        """Where the coupon stands (see :meth:`WeChatPayCouponGateway.query`)."""
        path, body = build_query(self.config, openid, coupon_id)
        return self._query_result(await self._send("GET", path, body))

"""WeChat Pay API v2 cash red packets, sans-I/O: build requests, classify answers.

``sendredpack`` pays; ``gethbinfo`` queries (reference §4.2). Both need the merchant client
certificate (mutual TLS; the driver in :mod:`membermkt.payouts.wechatpay.gateway` sets it up)
and an MD5 signature with the v2 API key.

Classification is safety-first: only a short allow-list of error codes counts as "definitely
not paid" (``FAILED``); ``SYSTEMERROR``, unknown codes, unparseable bodies and HTTP errors are
``UNKNOWN`` (query, then retry with the same ``mch_billno``), ``PROCESSING`` is ``PENDING``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import attrs

from membermkt.errors import ConfigError, DecryptError, SignatureError
from membermkt.payouts.base import (
    HttpRequest,
    HttpResponse,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
)
from membermkt.payouts.wechatpay.signing import from_xml, to_xml, v2_sign, v2_verify

__all__ = [
    "DEFINITE_FAILURES",
    "GETHBINFO_PATH",
    "NO_FUNDS_CODE",
    "PER_USER_LIMITS",
    "SENDREDPACK_PATH",
    "RedPacketConfig",
    "build_gethbinfo",
    "build_sendredpack",
    "parse_gethbinfo",
    "parse_sendredpack",
]

SENDREDPACK_PATH: Final = "/mmpaymkttransfers/sendredpack"
GETHBINFO_PATH: Final = "/mmpaymkttransfers/gethbinfo"

# rule: v2.error_names -- the official sendredpack error table's spellings (§4.2)
DEFINITE_FAILURES: Final = frozenset(
    {
        # Names as spelled by the official sendredpack error table (public copies of it; our
        # reference, shared/reference/wechat-platform.md §4.2, lists the older unconfirmed
        # spellings SENDNUMLIMIT / SENDAMOUNTLIMIT / RCVDAMOUNTLIMIT, which the platform does
        # not send). Every one of them is a refusal before any money moves under the bill.
        "SENDNUM_LIMIT",  # this user's packets today exceed the merchant's setting
        "SENDAMOUNT_LIMIT",  # the merchant's outflow today exceeds its setting
        "RCVDAMOUNT_LIMIT",  # this user's money today exceeds the merchant's setting
        "FREQ_LIMIT",
        "MONEY_LIMIT",  # the amount is outside the allowed range
        "SEND_FAILED",  # "该红包已经发放失败": the table says change the bill to send again
        "FATAL_ERROR",  # the bill number exists with another openid / other parameters
        "CA_ERROR",
        "SIGN_ERROR",
        "NO_AUTH",
        "OPENID_ERROR",
        "ILLEGAL_APPID",
        "PARAM_ERROR",
        "XML_ERROR",
        "API_METHOD_CLOSED",
    }
)
"""v2 red-packet error codes taken as "not paid, will not be paid under this bill"."""

NO_FUNDS_CODE: Final = "NOTENOUGH"
"""Merchant balance insufficient: not paid yet; top up, then retry with the **same**
``mch_billno`` (reference §4.2) — classified :attr:`PayoutStatus.NO_FUNDS`, never FAILED."""

_RETRYABLE_FAILURES: Final = frozenset(
    {"FREQ_LIMIT", "SENDNUM_LIMIT", "SENDAMOUNT_LIMIT", "RCVDAMOUNT_LIMIT"}
)
"""Limits that lift by themselves (next second, next Beijing day)."""

PER_USER_LIMITS: Final = frozenset({"SENDNUM_LIMIT", "RCVDAMOUNT_LIMIT"})
"""The per-user daily limits ("give up for this user today", reference §4.2)."""

NOT_FOUND_CODE: Final = "NOT_FOUND"
"""``gethbinfo`` error code for an unknown ``mch_billno`` (name **unconfirmed**: not in our
reference; the emulator uses it)."""

_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _check_len(limit: int) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, str) or not value or len(value) > limit:
            raise ConfigError(
                f"RedPacketConfig.{attribute.name} must be a str of 1-{limit} chars, got {value!r}"
            )

    return check


@attrs.frozen(slots=True, kw_only=True)
class RedPacketConfig:
    """What a merchant sends with every v2 red packet.

    Attributes:
        mch_id: merchant id.
        wxappid: the official account appid the receivers' openids belong to (bound to the
            merchant; mini programs use another API).
        api_key: the 32-char v2 API key (signing). Kept out of ``repr``.
        send_name: sender name shown to the user (≤ 32 chars).
        act_name: activity name (≤ 32 chars).
        wishing: blessing text (≤ 128 chars), used when a request carries no remark.
        remark: remark (≤ 256 chars).
        client_ip: the calling server's IPv4 address.
        scene_id: ``PRODUCT_1``..``PRODUCT_8``; required by the platform for packets below
            1 CNY or above 200 CNY.

    Raises:
        ConfigError: on a missing or over-long field.
    """

    mch_id: str = attrs.field(validator=_check_len(32))
    wxappid: str = attrs.field(validator=_check_len(32))
    api_key: str = attrs.field(repr=False, validator=_check_len(64))
    send_name: str = attrs.field(validator=_check_len(32))
    act_name: str = attrs.field(validator=_check_len(32))
    wishing: str = attrs.field(validator=_check_len(128))
    remark: str = attrs.field(validator=_check_len(256))
    client_ip: str = "127.0.0.1"
    scene_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if not _IP_RE.match(self.client_ip):
            raise ConfigError(
                f"RedPacketConfig.client_ip must be an IPv4 address: {self.client_ip!r}"
            )


def build_sendredpack(config: RedPacketConfig, request: PayoutRequest, nonce: str) -> HttpRequest:
    """The signed ``sendredpack`` request for one packet (``total_num`` = 1)."""
    params: dict[str, object] = {
        "nonce_str": nonce,
        "mch_billno": request.bill_no,
        "mch_id": config.mch_id,
        "wxappid": config.wxappid,
        "send_name": config.send_name,
        "re_openid": request.openid,
        "total_amount": request.amount_fen,
        "total_num": 1,
        "wishing": (request.remark or config.wishing)[:128],
        "client_ip": config.client_ip,
        "act_name": config.act_name,
        "remark": config.remark,
        "scene_id": config.scene_id,
    }
    params["sign"] = v2_sign(params, config.api_key)
    return HttpRequest(
        method="POST",
        path=SENDREDPACK_PATH,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        body=to_xml(params),
    )


def build_gethbinfo(config: RedPacketConfig, bill_no: str, nonce: str) -> HttpRequest:
    """The signed ``gethbinfo`` query for one ``mch_billno``."""
    params: dict[str, object] = {
        "nonce_str": nonce,
        "mch_billno": bill_no,
        "mch_id": config.mch_id,
        "appid": config.wxappid,
        "bill_type": "MCHT",
    }
    params["sign"] = v2_sign(params, config.api_key)
    return HttpRequest(
        method="POST",
        path=GETHBINFO_PATH,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        body=to_xml(params),
    )


def _read(bill_no: str, response: HttpResponse, api_key: str) -> dict[str, str] | PayoutResult:
    if response.status_code != 200:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=f"HTTP_{response.status_code}",
            reason=f"HTTP {response.status_code}: outcome unknown",
        )
    try:
        fields = from_xml(response.body)
    except DecryptError as exc:
        return PayoutResult(
            bill_no=bill_no, status=PayoutStatus.UNKNOWN, state="XML_UNREADABLE", reason=str(exc)
        )
    if fields.get("sign"):
        try:
            v2_verify(fields, api_key)
        except SignatureError as exc:
            return PayoutResult(
                bill_no=bill_no, status=PayoutStatus.UNKNOWN, state="BAD_SIGN", reason=str(exc)
            )
    return fields


def _amount(fields: dict[str, str]) -> int | None:
    raw = fields.get("total_amount", "")
    return int(raw) if raw.isdigit() else None


def _business_error(bill_no: str, fields: dict[str, str]) -> PayoutResult:
    code = fields.get("err_code", "") or "UNKNOWN_ERROR"
    reason = fields.get("err_code_des") or fields.get("return_msg") or code
    if code == "PROCESSING":
        return PayoutResult(bill_no=bill_no, status=PayoutStatus.PENDING, state=code, reason=reason)
    if code == NO_FUNDS_CODE:
        return PayoutResult(
            bill_no=bill_no, status=PayoutStatus.NO_FUNDS, state=code, reason=reason, retryable=True
        )
    if code in DEFINITE_FAILURES:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.FAILED,
            state=code,
            reason=reason,
            retryable=code in _RETRYABLE_FAILURES,
        )
    # SYSTEMERROR and anything unknown: the outcome is unknown; never change the bill number.
    return PayoutResult(bill_no=bill_no, status=PayoutStatus.UNKNOWN, state=code, reason=reason)


def parse_sendredpack(bill_no: str, response: HttpResponse, api_key: str) -> PayoutResult:
    """Classify a ``sendredpack`` answer (never raises for what the platform says)."""
    fields = _read(bill_no, response, api_key)
    if isinstance(fields, PayoutResult):
        return fields
    if fields.get("return_code") != "SUCCESS":
        # Communication-level failure (bad signature, malformed request): the business layer
        # did not run. Still classified UNKNOWN unless a definite err_code says otherwise, so
        # the engine confirms with a query before giving the money back to the budget.
        return _business_error(bill_no, fields)
    if fields.get("result_code") != "SUCCESS":
        return _business_error(bill_no, fields)
    return PayoutResult(
        bill_no=bill_no,
        status=PayoutStatus.SUCCESS,
        platform_id=fields.get("send_listid") or None,
        state="SENT",
        amount_fen=_amount(fields),
    )


_HB_STATUS: Final = {
    "SENDING": PayoutStatus.PENDING,
    "SENT": PayoutStatus.SUCCESS,
    "RECEIVED": PayoutStatus.SUCCESS,
    "FAILED": PayoutStatus.FAILED,
    "RFUND_ING": PayoutStatus.REFUNDED,  # sic, the platform's spelling (reference §4.2)
    "REFUND": PayoutStatus.REFUNDED,
}


def parse_gethbinfo(bill_no: str, response: HttpResponse, api_key: str) -> PayoutResult:
    """Classify a ``gethbinfo`` answer: ``SENDING`` → pending, ``SENT``/``RECEIVED`` →
    success, ``FAILED`` → failed, ``RFUND_ING``/``REFUND`` → refunded, an unknown bill →
    ``NOT_FOUND``, anything else → unknown."""
    fields = _read(bill_no, response, api_key)
    if isinstance(fields, PayoutResult):
        return fields
    if fields.get("return_code") != "SUCCESS" or fields.get("result_code") != "SUCCESS":
        code = fields.get("err_code", "")
        if code == NOT_FOUND_CODE:
            return PayoutResult(
                bill_no=bill_no,
                status=PayoutStatus.NOT_FOUND,
                state=code,
                reason=fields.get("err_code_des") or "no such mch_billno",
            )
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=code or "QUERY_FAILED",
            reason=fields.get("err_code_des") or fields.get("return_msg") or "query failed",
        )
    state = fields.get("status", "")
    status = _HB_STATUS.get(state, PayoutStatus.UNKNOWN)
    return PayoutResult(
        bill_no=bill_no,
        status=status,
        platform_id=fields.get("detail_id") or None,
        state=state or None,
        reason=fields.get("reason") or None,
        amount_fen=_amount(fields),
    )

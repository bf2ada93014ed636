"""v3 signing shared by the API groups: platform-signed responses (``Wechatpay-*``
headers) and verification of the merchant's ``Authorization`` header."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from typing import Any

import httpx

from membermkt.errors import SignatureError
from membermkt.payouts.wechatpay.signing import (
    parse_authorization,
    rsa_sign,
    rsa_verify,
    v3_request_message,
    v3_response_message,
)
from membermkt.testing.emulator.wechatpay._base import _Base


class _SigningMixin(_Base):
    def _signed(self, status: int, payload: Mapping[str, Any] | None) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        ts = str(int(self._clock().timestamp()))
        nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "Request-ID": secrets.token_hex(12),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": rsa_sign(
                self._platform_key, v3_response_message(ts, nonce, body)
            ),
        }
        return httpx.Response(status, content=body, headers=headers)

    def _v3_error(self, status: int, code: str, message: str) -> httpx.Response:
        return self._signed(status, {"code": code, "message": message})

    def _v3_auth(self, request: httpx.Request, body: bytes) -> httpx.Response | None:
        try:
            auth = parse_authorization(request.headers.get("Authorization", ""))
        except SignatureError as exc:
            return self._v3_error(401, "SIGN_ERROR", str(exc))
        if auth["mchid"] != self.mch_id:
            return self._v3_error(401, "SIGN_ERROR", "mchid does not match")
        if auth["serial_no"] != self.credentials.merchant_serial:
            return self._v3_error(401, "SIGN_ERROR", "unknown merchant certificate serial_no")
        try:
            at = dt.datetime.fromtimestamp(int(auth["timestamp"]), dt.UTC)
        except (ValueError, OverflowError, OSError):
            return self._v3_error(401, "SIGN_ERROR", "bad timestamp")
        if abs(self._clock() - at) > self.max_skew:
            return self._v3_error(401, "SIGN_ERROR", "timestamp与发起请求的时间不得超过5分钟")
        target = request.url.raw_path.decode()
        message = v3_request_message(
            request.method, target, auth["timestamp"], auth["nonce_str"], body
        )
        if not rsa_verify(self._merchant_pub, message, auth["signature"]):
            return self._v3_error(401, "SIGN_ERROR", "签名错误")
        return None

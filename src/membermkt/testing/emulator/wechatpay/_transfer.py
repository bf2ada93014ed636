"""v3 merchant transfers (``transfer-bills``): create and query, with amount bounds,
``out_bill_no`` format and idempotency, and user confirmation."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from membermkt.errors import UsageError
from membermkt.testing.emulator.wechatpay._models import _BILL_V3_MAX, _TRANSFER_PATH, Fault, _Bill
from membermkt.testing.emulator.wechatpay._notify import _NotificationsMixin
from membermkt.testing.emulator.wechatpay._signing import _SigningMixin


class _TransfersMixin(_SigningMixin, _NotificationsMixin):
    def confirm(self, bill_no: str) -> None:
        """The user confirms a v3 transfer waiting for them: it succeeds (callback queued).

        Raises:
            UsageError: for an unknown bill or one not waiting for confirmation.
        """
        with self._lock:
            bill = self.bills.get(bill_no)
            if bill is None or bill.status != "WAIT_USER_CONFIRM":
                raise UsageError(f"bill {bill_no!r} is not waiting for user confirmation")
            self._succeed(bill)

    def _v3(self, request: httpx.Request, body: bytes, fault: Fault | None) -> httpx.Response:
        denied = self._v3_auth(request, body)
        if denied is not None:
            return denied
        # rule: v3.rate -- transfer-bills and its queries: 100 requests/s per merchant (§4.6)
        if self._over_rate("transfer-bills", self.v3_rate_per_s):
            return self._v3_error(429, "FREQUENCY_LIMITED", "频率超限")
        path = request.url.path
        if request.method == "POST" and path == _TRANSFER_PATH:
            return self._v3_transfer(request, body, fault)
        prefix = f"{_TRANSFER_PATH}/out-bill-no/"
        by_platform = f"{_TRANSFER_PATH}/transfer-bill-no/"
        if request.method == "POST" and path.startswith(prefix) and path.endswith("/cancel"):
            return self._v3_cancel(path[len(prefix) : -len("/cancel")])
        if request.method == "GET" and path.startswith((prefix, by_platform)):
            if fault is Fault.TIMEOUT:
                raise httpx.ReadTimeout("emulated timeout", request=request)
            if fault is Fault.SYSTEMERROR:
                return self._v3_error(500, "SYSTEM_ERROR", "system busy")
            with self._lock:
                if path.startswith(prefix):
                    bill = self.bills.get(path[len(prefix) :])
                else:
                    wanted = path[len(by_platform) :]
                    bill = next((b for b in self.bills.values() if b.platform_id == wanted), None)
                if bill is None or bill.product != "v3":
                    return self._v3_error(404, "NOT_FOUND", "记录不存在")
                return self._signed(200, self._v3_view(bill))
        return self._v3_error(404, "NOT_FOUND", "no such API")

    def _v3_cancel(self, bill_no: str) -> httpx.Response:
        """rule: v3.cancel -- only a transfer the user has not confirmed can be cancelled
        (reference §4.6); the answer goes straight to CANCELLED (CANCELING is unconfirmed).
        The refusal code for a bill past confirmation is unconfirmed (INVALID_REQUEST)."""
        with self._lock:
            bill = self.bills.get(bill_no)
            if bill is None or bill.product != "v3":
                return self._v3_error(404, "NOT_FOUND", "记录不存在")
            if bill.status not in ("ACCEPTED", "WAIT_USER_CONFIRM"):
                return self._v3_error(
                    400, "INVALID_REQUEST", f"state {bill.status}: not cancellable"
                )
            bill.status = "CANCELLED"
            if self.balance_fen is not None:
                self.balance_fen += bill.amount_fen  # the money held for it comes back
            return self._signed(
                200,
                {
                    "out_bill_no": bill.bill_no,
                    "transfer_bill_no": bill.platform_id,
                    "state": "CANCELLED",
                    "update_time": self._clock().isoformat(),
                },
            )

    def _v3_check_fields(self, request: httpx.Request, data: dict[str, Any]) -> str | None:
        """The first rule a transfer body breaks, as a PARAM_ERROR message, or ``None``."""
        # rule: v3.required_fields -- transfer_scene_id and transfer_remark (reference §4.6)
        for name in ("transfer_scene_id", "transfer_remark"):
            if not isinstance(data.get(name), str) or not data[name]:
                return f"{name} is required"
        # rule: v3.remark_length -- transfer_remark String(32) (reference §4.6)
        if len(data["transfer_remark"]) > 32:
            return "transfer_remark: at most 32 characters"
        # rule: v3.scene_report -- the scene's transfer_scene_report_infos are required;
        # scene 1000 (cash marketing) needs them (which info_types: unconfirmed)
        infos = data.get("transfer_scene_report_infos")
        if data["transfer_scene_id"] == "1000" and not infos:
            return "transfer_scene_report_infos is required for transfer_scene_id 1000"
        # rule: v3.notify_url -- https, no query (reference §4.6)
        url = data.get("notify_url")
        if url is not None and (not str(url).startswith("https://") or "?" in str(url)):
            return "notify_url must be an https URL without query"
        # rule: v3.user_name -- RSA-OAEP with the platform key named in Wechatpay-Serial
        # (reference §4.3); required from 2,000 CNY (§4.6)
        user_name = data.get("user_name")
        if user_name is not None:
            serial = request.headers.get("Wechatpay-Serial", "")
            if not self._is_platform_serial(serial):
                return "user_name is encrypted but Wechatpay-Serial names no platform key"
            try:
                self._platform_key.decrypt(
                    base64.b64decode(str(user_name), validate=True),
                    padding.OAEP(
                        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None
                    ),
                )
            except (ValueError, binascii.Error):
                return "user_name cannot be decrypted with the platform key"
        return None

    def _is_platform_serial(self, serial: str) -> bool:
        if serial == self.credentials.platform_public_key_id:
            return True
        try:
            return int(serial, 16) == int(self.credentials.platform_serial, 16)
        except ValueError:
            return False

    def _v3_transfer(
        self, request: httpx.Request, body: bytes, fault: Fault | None
    ) -> httpx.Response:
        try:
            data = json.loads(body)
            bill_no = str(data["out_bill_no"])
            openid = str(data["openid"])
            amount = data["transfer_amount"]
        except (ValueError, KeyError, TypeError):
            return self._v3_error(400, "PARAM_ERROR", "malformed body")
        if data.get("appid") != self.appid:
            return self._v3_error(400, "PARAM_ERROR", "appid does not match the merchant")
        if not (0 < len(bill_no) <= _BILL_V3_MAX and bill_no.isalnum() and bill_no.isascii()):
            return self._v3_error(400, "PARAM_ERROR", "out_bill_no: ≤ 32 chars of [0-9a-zA-Z]")
        if isinstance(amount, bool) or not isinstance(amount, int):
            return self._v3_error(400, "PARAM_ERROR", "transfer_amount must be an integer")
        if amount >= 200_000 and not data.get("user_name"):
            return self._v3_error(400, "PARAM_ERROR", "user_name is required from 2000 CNY")
        broken = self._v3_check_fields(request, data)
        if broken is not None:
            return self._v3_error(400, "PARAM_ERROR", broken)
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            existing = self.bills.get(bill_no)
            if existing is not None:
                # rule: v3.bill_reuse -- the same out_bill_no with other data is refused
                # (code unconfirmed: INVALID_REQUEST)
                if existing.openid != openid or existing.amount_fen != amount:
                    return self._v3_error(400, "INVALID_REQUEST", "out_bill_no reused")
                return self._v3_answer(request, existing, fault)
            lo, hi = self.v3_bounds
            if not lo <= amount <= hi:
                return self._v3_error(400, "PARAM_ERROR", f"amount must be within {lo}..{hi}")
            now = self._clock()
            if (
                self.merchant_daily_fen is not None
                and self._merchant_day_fen(now) + amount > self.merchant_daily_fen
            ):
                # unconfirmed code for v3 (the daily outflow rule is v2's, reference §4.2)
                return self._v3_error(403, "QUOTA_EXCEED", "商户今日转账额度已用完")
            if not applied:
                if fault is Fault.TIMEOUT:
                    raise httpx.ReadTimeout("emulated timeout", request=request)
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            # rule: v3.not_enough -- balance short: no bill; top up and retry the same
            # out_bill_no (NOT_ENOUGH / HTTP 403: unconfirmed in our reference)
            if not self._debit(amount):
                return self._v3_error(403, "NOT_ENOUGH", "商户账户资金不足")
            bill = _Bill(
                product="v3",
                bill_no=bill_no,
                openid=openid,
                amount_fen=amount,
                status="ACCEPTED",
                platform_id=f"1330000{secrets.token_hex(10)}",
                created_at=now,
                fields=dict(data),
            )
            self.bills[bill_no] = bill
            if self.auto_confirm:
                self._succeed(bill)
            else:
                bill.status = "WAIT_USER_CONFIRM"
            return self._v3_answer(request, bill, fault, fresh=True)

    def _v3_answer(
        self, request: httpx.Request, bill: _Bill, fault: Fault | None, *, fresh: bool = False
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout after the transfer", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
        view = {
            "out_bill_no": bill.bill_no,
            "transfer_bill_no": bill.platform_id,
            "create_time": bill.created_at.isoformat(),
            "state": "PROCESSING" if fault is Fault.PROCESSING else bill.status,
        }
        if fresh and self.auto_confirm and fault is None:
            view["state"] = "ACCEPTED"  # created; the query (or callback) shows SUCCESS
        if bill.status == "WAIT_USER_CONFIRM":
            view["package_info"] = f"emulated-package-{bill.platform_id}"
        return self._signed(200, view)

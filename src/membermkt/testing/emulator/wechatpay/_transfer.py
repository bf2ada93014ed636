"""v3 merchant transfers (``transfer-bills``): create and query, with amount bounds,
``out_bill_no`` format and idempotency, and user confirmation."""

from __future__ import annotations

import json
import secrets

import httpx

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
        path = request.url.path
        if request.method == "POST" and path == _TRANSFER_PATH:
            return self._v3_transfer(request, body, fault)
        prefix = f"{_TRANSFER_PATH}/out-bill-no/"
        if request.method == "GET" and path.startswith(prefix):
            if fault is Fault.TIMEOUT:
                raise httpx.ReadTimeout("emulated timeout", request=request)
            if fault is Fault.SYSTEMERROR:
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            with self._lock:
                bill = self.bills.get(path[len(prefix) :])
                if bill is None or bill.product != "v3":
                    return self._v3_error(404, "NOT_FOUND", "记录不存在")
                return self._signed(200, self._v3_view(bill))
        return self._v3_error(404, "NOT_FOUND", "no such API")

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
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            existing = self.bills.get(bill_no)
            if existing is not None:
                if existing.openid != openid or existing.amount_fen != amount:
                    return self._v3_error(400, "INVALID_REQUEST", "out_bill_no reused")
                return self._v3_answer(request, existing, fault)
            lo, hi = self.v3_bounds
            if not lo <= amount <= hi:
                return self._v3_error(400, "PARAM_ERROR", f"amount must be within {lo}..{hi}")
            if not applied:
                if fault is Fault.TIMEOUT:
                    raise httpx.ReadTimeout("emulated timeout", request=request)
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            now = self._clock()
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

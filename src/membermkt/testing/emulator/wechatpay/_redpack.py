"""v2 cash red packets (``sendredpack`` / ``gethbinfo``): the merchant certificate, the MD5
signature, amount bounds, per-user daily limits and ``mch_billno`` idempotency."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Final

import httpx

from membermkt.core.redpackets import BEIJING
from membermkt.errors import DecryptError, SignatureError
from membermkt.payouts.wechatpay.signing import from_xml, to_xml, v2_sign, v2_verify
from membermkt.testing.emulator.wechatpay._base import _Base
from membermkt.testing.emulator.wechatpay._models import _BILL_V2_MAX, Fault, Payment, _Bill

_V2_REQUIRED: Final = (
    "re_openid",
    "send_name",
    "act_name",
    "wishing",
    "remark",
    "client_ip",
    "total_num",
    "total_amount",
)
_V2_LENGTHS: Final = {
    "re_openid": 32,
    "send_name": 32,
    "act_name": 32,
    "wishing": 128,
    "remark": 256,
    "client_ip": 15,
}
_V2_SCENES: Final = frozenset(f"PRODUCT_{i}" for i in range(1, 9))


def _v2_reply(**fields: object) -> dict[str, object]:
    return {"return_code": "SUCCESS", "return_msg": "OK", **fields}


class _RedPacketsMixin(_Base):
    def _xml(self, fields: Mapping[str, object]) -> httpx.Response:
        return httpx.Response(200, content=to_xml(fields), headers={"Content-Type": "text/xml"})

    def _v2_check(self, body: bytes, cert: object) -> dict[str, str] | httpx.Response:
        if cert != self._merchant_der:
            return self._xml(
                _v2_reply(result_code="FAIL", err_code="CA_ERROR", err_code_des="证书错误")
            )
        try:
            fields = from_xml(body)
        except DecryptError:
            return self._xml({"return_code": "FAIL", "return_msg": "XML_ERROR"})
        try:
            v2_verify(fields, self.api_key)
        except SignatureError:
            return self._xml(
                _v2_reply(result_code="FAIL", err_code="SIGN_ERROR", err_code_des="签名错误")
            )
        if fields.get("mch_id") != self.mch_id:
            return self._xml(
                _v2_reply(result_code="FAIL", err_code="PARAM_ERROR", err_code_des="mch_id")
            )
        return fields

    def _v2_error(self, code: str, des: str, fields: Mapping[str, str]) -> httpx.Response:
        return self._xml(
            _v2_reply(
                result_code="FAIL",
                err_code=code,
                err_code_des=des,
                mch_billno=fields.get("mch_billno", ""),
                mch_id=self.mch_id,
            )
        )

    def _user_day(self, product: str, openid: str, now: dt.datetime) -> tuple[int, int]:
        day = now.astimezone(BEIJING).date()
        n = fen = 0
        for p in self.payments:
            if (
                p.product == product
                and p.openid == openid
                and p.at.astimezone(BEIJING).date() == day
            ):
                n += 1
                fen += p.amount_fen
        return n, fen

    def _v2_send(
        self, request: httpx.Request, body: bytes, cert: object, fault: Fault | None
    ) -> httpx.Response:
        checked = self._v2_check(body, cert)
        if isinstance(checked, httpx.Response):
            return checked
        f = checked
        # rule: v2.rate -- sendredpack 30 requests/s by default (reference §4.2 / §5)
        if self._over_rate("sendredpack", self.v2_rate_per_s):
            return self._v2_error("FREQ_LIMIT", "超过频率限制,请稍后再试", f)
        bill_no = f.get("mch_billno", "")
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            if f.get("wxappid") != self.appid:
                return self._v2_error("PARAM_ERROR", "wxappid does not match the merchant", f)
            if not (0 < len(bill_no) <= _BILL_V2_MAX and bill_no.isalnum() and bill_no.isascii()):
                return self._v2_error("PARAM_ERROR", "mch_billno: ≤ 28 chars of [0-9a-zA-Z]", f)
            # rule: v2.required_fields -- every required field is present (reference §4.2)
            for name in _V2_REQUIRED:
                if not f.get(name):
                    return self._v2_error("PARAM_ERROR", f"{name} is required", f)
            for name, limit in _V2_LENGTHS.items():
                if len(f.get(name, "")) > limit:
                    return self._v2_error("PARAM_ERROR", f"{name}: at most {limit} chars", f)
            # rule: v2.total_num -- a cash red packet has total_num = 1 (reference §4.2)
            if f.get("total_num") != "1":
                return self._v2_error("PARAM_ERROR", "total_num must be 1", f)
            try:
                amount = int(f.get("total_amount", ""))
            except ValueError:
                return self._v2_error("PARAM_ERROR", "total_amount", f)
            scene = f.get("scene_id") or None
            # rule: v2.scene_id -- PRODUCT_1..PRODUCT_8 only (reference §4.2)
            if scene is not None and scene not in _V2_SCENES:
                return self._v2_error("PARAM_ERROR", f"scene_id {scene!r} is not PRODUCT_1..8", f)
            openid = f["re_openid"]
            existing = self.bills.get(bill_no)
            if existing is not None:
                # rule: v2.fatal_error -- a bill re-sent with another openid (or amount) is
                # FATAL_ERROR "openid和原始单参数不一致" (official error table; for a changed
                # amount alone the table's PARAM_ERROR text is also plausible: unconfirmed)
                if existing.openid != openid or existing.amount_fen != amount:
                    return self._v2_error("FATAL_ERROR", "openid和原始单参数不一致", f)
                return self._v2_result(request, existing, f, fault)
            # rule: v2.amount_range -- 1-200 CNY without scene_id; outside it scene_id is
            # required (reference §4.2), MONEY_LIMIT "发送红包金额不在限制范围内"
            lo, hi = self.v2_bounds if scene is None else self.v2_scene_bounds
            if not lo <= amount <= hi:
                return self._v2_error("MONEY_LIMIT", f"amount must be within {lo}..{hi} fen", f)
            now = self._clock()
            n, fen = self._user_day("v2", openid, now)
            # rule: v2.user_daily -- <= 10 packets and <= 1000 CNY per user per day (§4.2)
            if self.per_user_daily_count is not None and n + 1 > self.per_user_daily_count:
                return self._v2_error("SENDNUM_LIMIT", "该用户今日领取红包个数超过限制", f)
            if self.per_user_daily_fen is not None and fen + amount > self.per_user_daily_fen:
                return self._v2_error("RCVDAMOUNT_LIMIT", "该用户今日领取金额超过限制", f)
            # rule: pay.merchant_daily -- merchant outflow <= 1,000,000 CNY per day (§4.2)
            if (
                self.merchant_daily_fen is not None
                and self._merchant_day_fen(now) + amount > self.merchant_daily_fen
            ):
                return self._v2_error("SENDAMOUNT_LIMIT", "您的商户号今日发放金额超过限制", f)
            if not applied:
                return self._v2_fault_reply(request, f, fault)
            # rule: v2.notenough -- no money, no packet; top up and retry the same bill (§4.2)
            if not self._debit(amount):
                return self._v2_error("NOTENOUGH", "帐号余额不足，请到商户平台充值后再重试", f)
            bill = _Bill(
                product="v2",
                bill_no=bill_no,
                openid=openid,
                amount_fen=amount,
                status="SENDING" if fault is Fault.PROCESSING else "SENT",
                platform_id=f"1000041701{secrets.token_hex(8)}",
                created_at=now,
            )
            self.bills[bill_no] = bill
            self.payments.append(
                Payment(bill_no=bill_no, product="v2", openid=openid, amount_fen=amount, at=now)
            )
            return self._v2_result(request, bill, f, fault)

    def _v2_fault_reply(
        self, request: httpx.Request, f: Mapping[str, str], fault: Fault | None
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout", request=request)
        return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", f)

    def _v2_result(
        self, request: httpx.Request, bill: _Bill, f: Mapping[str, str], fault: Fault | None
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout after the payment", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", f)
        if fault is Fault.PROCESSING or bill.status == "SENDING":
            bill.status = "SENT"  # the next query finds it sent
            return self._v2_error("PROCESSING", "请求已受理，请稍后使用原单号查询发放结果", f)
        return self._xml(
            _v2_reply(
                result_code="SUCCESS",
                mch_billno=bill.bill_no,
                mch_id=self.mch_id,
                wxappid=self.appid,
                re_openid=bill.openid,
                total_amount=bill.amount_fen,
                send_listid=bill.platform_id,
            )
        )

    def _v2_query(
        self, request: httpx.Request, body: bytes, cert: object, fault: Fault | None
    ) -> httpx.Response:
        checked = self._v2_check(body, cert)
        if isinstance(checked, httpx.Response):
            return checked
        f = checked
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", f)
        with self._lock:
            bill = self.bills.get(f.get("mch_billno", ""))
            if bill is None or bill.product != "v2":
                return self._v2_error("NOT_FOUND", "指定单号数据不存在", f)
            reply = _v2_reply(
                result_code="SUCCESS",
                mch_billno=bill.bill_no,
                mch_id=self.mch_id,
                detail_id=bill.platform_id,
                status=bill.status,
                send_type="API",
                hb_type="NORMAL",
                total_num=1,
                total_amount=bill.amount_fen,
                send_time=bill.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        reply["sign"] = v2_sign(reply, self.api_key)
        return self._xml(reply)

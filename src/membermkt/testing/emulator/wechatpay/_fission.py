"""Fission (group) red packets: ``sendgroupredpack`` and the group side of ``gethbinfo``.

Refusals (err_code names beyond the reference's three are **unconfirmed**, as for
``sendredpack``): ``total_num`` below 3 or above ``group_max_num`` (20 by default; the upper
bound is unconfirmed), ``amt_type`` other than ``ALL_RAND``, an average share outside the
single-packet bounds (1–200 CNY by default) — all ``PARAM_ERROR`` — plus everything
``sendredpack`` refuses (certificate, signature, appid, bill number reuse with other data).
The total is split at send time (seeded, every share ≥ 1 CNY when the total allows);
:meth:`_FissionMixin.open_share` plays a member opening one.
"""

from __future__ import annotations

import secrets

import httpx

from membermkt.errors import UsageError
from membermkt.payouts.wechatpay.signing import v2_sign
from membermkt.testing.emulator.wechatpay._models import _BILL_V2_MAX, Fault, Payment, _Bill
from membermkt.testing.emulator.wechatpay._redpack import _RedPacketsMixin, _v2_reply

GROUP = "v2group"
GROUP_MAX_NUM = 20


def _split(total: int, n: int, floor: int, seq: list[float]) -> list[int]:
    base = floor if total >= floor * n else 1
    rest = total - base * n
    weights = seq[:n]
    s = sum(weights) or 1.0
    parts = [base + int(rest * w / s) for w in weights]
    parts[0] += total - sum(parts)
    return parts


class _FissionMixin(_RedPacketsMixin):
    """Group packets: sending, opening shares, querying the hblist."""

    group_max_num = GROUP_MAX_NUM

    def open_share(self, bill_no: str, openid: str) -> int:
        """``openid`` opens a share of group packet ``bill_no``; returns its amount in fen.

        Raises:
            UsageError: for an unknown group bill, a second share for the same openid, or
                when every share has been opened.
        """
        with self._lock:
            bill = self.bills.get(bill_no)
            if bill is None or bill.product != GROUP:
                raise UsageError(f"no group red packet {bill_no!r}")
            opened: list[tuple[str, int, str]] = bill.fields.setdefault("opened", [])
            if any(o == openid for o, _, _ in opened):
                raise UsageError(f"{openid} already opened a share of {bill_no}")
            split: list[int] = bill.fields["split"]
            if len(opened) >= len(split):
                raise UsageError(f"every share of {bill_no} has been opened")
            amount = split[len(opened)]
            at = self._clock().strftime("%Y-%m-%d %H:%M:%S")
            opened.append((openid, amount, at))
            bill.status = "RECEIVED" if len(opened) == len(split) else bill.status
            return amount

    def _group_send(
        self, request: httpx.Request, body: bytes, cert: object, fault: Fault | None
    ) -> httpx.Response:
        checked = self._v2_check(body, cert)
        if isinstance(checked, httpx.Response):
            return checked
        f = checked
        bill_no = f.get("mch_billno", "")
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            if f.get("wxappid") != self.appid:
                return self._v2_error("PARAM_ERROR", "wxappid does not match the merchant", f)
            if not (0 < len(bill_no) <= _BILL_V2_MAX and bill_no.isalnum() and bill_no.isascii()):
                return self._v2_error("PARAM_ERROR", "mch_billno: ≤ 28 chars of [0-9a-zA-Z]", f)
            try:
                amount = int(f.get("total_amount", ""))
                num = int(f.get("total_num", ""))
            except ValueError:
                return self._v2_error("PARAM_ERROR", "total_amount / total_num", f)
            if not 3 <= num <= self.group_max_num:
                return self._v2_error(
                    "PARAM_ERROR", f"total_num must be 3..{self.group_max_num}", f
                )
            if f.get("amt_type") != "ALL_RAND":
                return self._v2_error("PARAM_ERROR", "amt_type must be ALL_RAND", f)
            openid = f.get("re_openid", "")
            existing = self.bills.get(bill_no)
            if existing is not None:
                same = (
                    existing.product == GROUP
                    and existing.openid == openid
                    and existing.amount_fen == amount
                    and len(existing.fields["split"]) == num
                )
                if not same:
                    return self._v2_error("PARAM_ERROR", "mch_billno reused with other data", f)
                return self._v2_result(request, existing, f, fault)
            lo, hi = self.v2_bounds
            if not lo * num <= amount <= hi * num:
                return self._v2_error(
                    "PARAM_ERROR", f"the average share must be within {lo}..{hi} fen", f
                )
            if not applied:
                return self._v2_fault_reply(request, f, fault)
            now = self._clock()
            seq = [self._rng.random() + 0.05 for _ in range(num)]
            bill = _Bill(
                product=GROUP,
                bill_no=bill_no,
                openid=openid,
                amount_fen=amount,
                status="SENDING" if fault is Fault.PROCESSING else "SENT",
                platform_id=f"1000041702{secrets.token_hex(8)}",
                created_at=now,
                fields={"split": _split(amount, num, lo, seq)},
            )
            self.bills[bill_no] = bill
            self.payments.append(
                Payment(bill_no=bill_no, product=GROUP, openid=openid, amount_fen=amount, at=now)
            )
            return self._v2_result(request, bill, f, fault)

    def _v2_query(
        self, request: httpx.Request, body: bytes, cert: object, fault: Fault | None
    ) -> httpx.Response:
        checked = self._v2_check(body, cert)
        if isinstance(checked, httpx.Response):
            return checked
        with self._lock:
            bill = self.bills.get(checked.get("mch_billno", ""))
            group = bill is not None and bill.product == GROUP
        if not group:
            return super()._v2_query(request, body, cert, fault)
        assert bill is not None
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", checked)
        with self._lock:
            reply: dict[str, object] = _v2_reply(
                result_code="SUCCESS",
                mch_billno=bill.bill_no,
                mch_id=self.mch_id,
                detail_id=bill.platform_id,
                status=bill.status,
                send_type="API",
                hb_type="GROUP",
                total_num=len(bill.fields["split"]),
                total_amount=bill.amount_fen,
                send_time=bill.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            opened = list(bill.fields.get("opened", ()))
        reply["sign"] = v2_sign(reply, self.api_key)
        return _with_hblist(self._xml(reply), opened)


def _with_hblist(response: httpx.Response, opened: list[tuple[str, int, str]]) -> httpx.Response:
    if not opened:
        return response
    items = "".join(
        f"<hbinfo><openid><![CDATA[{o}]]></openid><amount>{a}</amount>"
        f"<rcv_time><![CDATA[{t}]]></rcv_time></hbinfo>"
        for o, a, t in opened
    )
    body = response.content.replace(b"</xml>", f"<hblist>{items}</hblist></xml>".encode())
    return httpx.Response(200, content=body, headers={"Content-Type": "text/xml"})

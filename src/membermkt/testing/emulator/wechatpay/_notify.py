"""v3 notifications: the bill view, a transfer's success (ledger + callback) and the
AES-256-GCM-encrypted, platform-signed ``MCHTRANSFER.BILL.FINISHED`` callbacks."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from membermkt.payouts.wechatpay.signing import aead_encrypt, rsa_sign, v3_response_message
from membermkt.testing.emulator.wechatpay._base import _Base
from membermkt.testing.emulator.wechatpay._models import Callback, Payment, _Bill


class _NotificationsMixin(_Base):
    def deliver_callbacks(self, handler: Callable[[Mapping[str, str], bytes], object]) -> int:
        """Hand every queued callback to ``handler(headers, body)``; returns how many."""
        with self._lock:
            pending, self.callbacks = self.callbacks, []
        for cb in pending:
            handler(cb.headers, cb.body)
        return len(pending)

    def _v3_view(self, bill: _Bill) -> dict[str, Any]:
        view: dict[str, Any] = {
            "mch_id": self.mch_id,
            "out_bill_no": bill.bill_no,
            "transfer_bill_no": bill.platform_id,
            "appid": self.appid,
            "state": bill.status,
            "transfer_amount": bill.amount_fen,
            "transfer_remark": bill.fields.get("transfer_remark", ""),
            "openid": bill.openid,
            "create_time": bill.created_at.isoformat(),
        }
        if bill.status == "WAIT_USER_CONFIRM":
            view["package_info"] = f"emulated-package-{bill.platform_id}"
        return view

    def _succeed(self, bill: _Bill) -> None:
        now = self._clock()
        bill.status = "SUCCESS"
        self.payments.append(
            Payment(
                bill_no=bill.bill_no,
                product="v3",
                openid=bill.openid,
                amount_fen=bill.amount_fen,
                at=now,
            )
        )
        notify_url = str(bill.fields.get("notify_url") or "")
        if notify_url:
            self.callbacks.append(self._callback(notify_url, bill))

    def _callback(self, url: str, bill: _Bill) -> Callback:
        nonce = secrets.token_urlsafe(9)[:12]
        resource = json.dumps(self._v3_view(bill), ensure_ascii=False).encode()
        envelope = {
            "id": secrets.token_hex(16),
            "create_time": self._clock().isoformat(),
            "resource_type": "encrypt-resource",
            "event_type": "MCHTRANSFER.BILL.FINISHED",
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aead_encrypt(self.api_v3_key, nonce, resource, "mch_payment"),
                "associated_data": "mch_payment",
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        ts = str(int(self._clock().timestamp()))
        sig_nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "Wechatpay-Nonce": sig_nonce,
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": rsa_sign(
                self._platform_key, v3_response_message(ts, sig_nonce, body)
            ),
        }
        return Callback(url=url, headers=headers, body=body)

"""Welcome messages: ``send_welcome_msg`` with its single-use, 20-second code."""

from __future__ import annotations

from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    WelcomeReceipt,
    _Refuse,
)


class _WelcomeMixin(_EmulatorBase):
    """``send_welcome_msg`` (41051 for a used, expired or chatting code)."""

    def _welcome(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        code = str(body.get("welcome_code", ""))
        text, attachments = self._content(body)
        w = corp.welcome_codes.get(code)
        now = self.now()
        reason = None
        if w is None:
            reason = "unknown"  # emulator choice: 41051 for an unknown code as well
        elif w.used:
            reason = "used"
        elif now - w.issued_at > self.welcome_window:
            reason = "expired"  # emulator choice: the reference names no expiry code
        else:
            rel = corp.relations.get((w.userid, w.external_userid))
            if rel is None or rel.chatting:
                reason = "chatting"
        if reason is not None:
            corp.welcome_refusals[reason] += 1
            raise _Refuse(41051, f"externaluser has started chatting ({reason})")
        assert w is not None
        w.used = True
        corp.welcome_counts[w.external_userid] += 1
        corp.welcomes.append(
            WelcomeReceipt(
                code, w.userid, w.external_userid, text, len(attachments), now, now - w.issued_at
            )
        )
        return {}

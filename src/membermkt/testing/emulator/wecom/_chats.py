"""Customer group chats: ``groupchat/list`` and ``groupchat/get``."""

from __future__ import annotations

from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _INVALID,
    _Refuse,
)


class _GroupChatsMixin(_EmulatorBase):
    """``groupchat/list`` and ``groupchat/get``."""

    def _chat_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        owners = set((body.get("owner_filter") or {}).get("userid_list") or ())
        if not owners and len(corp.staff) > 1000:
            raise _Refuse(81017, "too many owners, add owner_filter")
        chats = [
            {"chat_id": cid, "status": c.get("status", 0)}
            for cid, c in sorted(corp.chats.items())
            if not owners or c.get("owner") in owners
        ]
        page, nxt = self._page(chats, body, 100, 1000)
        return {"group_chat_list": page, "next_cursor": nxt}

    def _chat_get(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        cid = str(body.get("chat_id", ""))
        c = corp.chats.get(cid)
        if c is None:
            raise _Refuse(_INVALID, "invalid chat_id")
        return {"group_chat": {"chat_id": cid, **{k: v for k, v in c.items() if k != "status"}}}

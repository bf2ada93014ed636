"""Contact ways (渠道活码): add, get, update, delete and list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase, _offset
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _INVALID,
    _Refuse,
    _Way,
)

MAX_WAY_EXPIRES = 14 * 86_400


class _WaysMixin(_EmulatorBase):
    """``*_contact_way``: ``state`` ≤ 30 characters, type 1 takes one user."""

    def _way_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 30):
            raise _Refuse(_INVALID, "invalid state: longer than 30 characters")
        # rule: wecom.way_expires -- expires_in (temporary codes) and chat_expires_in are at
        # most 14 days (reference §3.6)
        for name in ("expires_in", "chat_expires_in"):
            value = body.get(name)
            if value is not None and (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= MAX_WAY_EXPIRES
            ):
                raise _Refuse(_INVALID, f"invalid {name}: at most 14 days ({MAX_WAY_EXPIRES} s)")
        remark = body.get("remark")
        if remark is not None and (not isinstance(remark, str) or len(remark) > 30):
            raise _Refuse(_INVALID, "invalid remark")
        return {"state": state, "remark": remark}

    def _way_add(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        type_, scene = body.get("type"), body.get("scene")
        if type_ not in (1, 2) or scene not in (1, 2):
            raise _Refuse(_INVALID, "invalid type or scene")
        users = list(body.get("user") or ())
        if type_ == 1 and len(users) != 1:
            raise _Refuse(_INVALID, "type 1 contact way needs exactly one user")
        if not users or any(u not in corp.staff for u in users):
            raise _Refuse(84074, "no external contact permission")  # emulator choice
        f = self._way_fields(body)
        extra = {k: v for k, v in body.items() if k not in ("type", "scene", "user", *f)}
        way = corp._new_way(type_, scene, users, f["state"], f["remark"] or "", extra)
        out: dict[str, Any] = {"config_id": way.config_id}
        if scene == 2:
            out["qr_code"] = f"https://wework.qq.com/emulated/qr/{way.config_id}"
        return out

    def _way(self, corp: Corp, body: Mapping[str, Any]) -> _Way:
        way = corp.ways.get(str(body.get("config_id", "")))
        if way is None:
            raise _Refuse(_INVALID, "invalid config_id")
        return way

    def _way_get(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        w = self._way(corp, body)
        out: dict[str, Any] = {
            "config_id": w.config_id,
            "type": w.type,
            "scene": w.scene,
            "remark": w.remark,
            "user": w.users,
            **w.extra,
        }
        if w.state:
            out["state"] = w.state
        if w.scene == 2:
            out["qr_code"] = f"https://wework.qq.com/emulated/qr/{w.config_id}"
        return {"contact_way": out}

    def _way_update(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        w = self._way(corp, body)
        f = self._way_fields(body)
        if f["state"] is not None:
            w.state = f["state"]
        if f["remark"] is not None:
            w.remark = f["remark"]
        if body.get("user") is not None:
            users = list(body["user"])
            if w.type == 1 and len(users) != 1:
                raise _Refuse(_INVALID, "type 1 contact way needs exactly one user")
            w.users = users
        return {}

    def _way_del(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        w = self._way(corp, body)
        del corp.ways[w.config_id]
        return {}

    def _way_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        ways = sorted(corp.ways.values(), key=lambda w: (w.created_at, w.config_id))
        start = _offset(body)
        limit = int(body.get("limit") or 100)
        page = ways[start : start + limit]
        nxt = str(start + limit) if start + limit < len(ways) else ""
        return {"contact_way": [{"config_id": w.config_id} for w in page], "next_cursor": nxt}

"""Account set-up APIs: QR codes and the custom menu."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from membermkt.channels.wechat.api.menu import (
    BUTTON_TYPES,
    KEY_MAX,
    NAME_MAX,
    SUB_NAME_MAX,
    URL_MAX,
)
from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, _Refuse


class _AccountMixin(_Base):
    """``/cgi-bin/qrcode/create`` and ``/cgi-bin/menu/*``."""

    def _qrcode(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action_name")
        scene = (body.get("action_info") or {}).get("scene") or {}
        if action in ("QR_SCENE", "QR_LIMIT_SCENE"):
            sid = scene.get("scene_id", 0)
            # rule: oa.qr_scene_id -- QR_SCENE: a 32-bit non-zero integer; QR_LIMIT_SCENE:
            # 1-100,000 (reference §1.7; signed or unsigned 32 bits is unconfirmed: both
            # ranges are accepted, nothing wider)
            ok = (
                isinstance(sid, int)
                and not isinstance(sid, bool)
                and (
                    1 <= sid <= 100_000
                    if action == "QR_LIMIT_SCENE"
                    else sid != 0 and -(2**31) <= sid < 2**32
                )
            )
            value = str(sid)
        elif action in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
            s = scene.get("scene_str")
            ok = isinstance(s, str) and 1 <= len(s) <= 64
            value = str(s)
        else:
            raise _Refuse(40053, "invalid action_name")  # emulator choice (global list)
        if not ok:
            raise _Refuse(40054, "invalid scene")  # emulator choice (unconfirmed code)
        permanent = action.startswith("QR_LIMIT")
        expire = body.get("expire_seconds", 30)
        if not permanent and not (isinstance(expire, int) and 1 <= expire <= 2_592_000):
            raise _Refuse(40009, "invalid expire_seconds")  # emulator choice (unconfirmed code)
        ticket = f"gQ{next(self._ids)}{acct.appid[-4:]}"
        acct.qrcodes[ticket] = (value, permanent)
        out: dict[str, Any] = {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket}"}
        if not permanent:
            out["expire_seconds"] = expire
        return out

    def _menu_create(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        # Errcodes 40016-40027 per the official global list as recalled; the reference gives
        # only the range (mapping unconfirmed).
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise _Refuse(40016, "invalid button size")
        for b in buttons:
            subs = b.get("sub_button") if isinstance(b, dict) else None
            if subs:
                if len(subs) > 5:
                    raise _Refuse(40023, "invalid sub button size")
                if len(str(b.get("name", "")).encode()) > NAME_MAX:
                    raise _Refuse(40018, "invalid button name size")
                for s in subs:
                    _check_button(s, sub=True)
            else:
                _check_button(b, sub=False)
        acct.menu = buttons
        return {"errcode": 0, "errmsg": "ok"}

    def _menu_get(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        if acct.menu is None:
            raise _Refuse(46003, "menu no exist")  # global errcode list
        return {"menu": {"button": acct.menu}}

    def _menu_delete(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        acct.menu = None
        return {"errcode": 0, "errmsg": "ok"}


def _check_button(b: Any, *, sub: bool) -> None:
    codes = (40024, 40025, 40026, 40027) if sub else (40017, 40018, 40019, 40020)
    if not isinstance(b, dict) or b.get("type") not in BUTTON_TYPES:
        raise _Refuse(codes[0], "invalid button type")
    if not b.get("name") or len(str(b["name"]).encode()) > (SUB_NAME_MAX if sub else NAME_MAX):
        raise _Refuse(codes[1], "invalid button name size")
    if b.get("key") is not None and len(str(b["key"]).encode()) > KEY_MAX:
        raise _Refuse(codes[2], "invalid button key size")
    if b.get("url") is not None and len(str(b["url"]).encode()) > URL_MAX:
        raise _Refuse(codes[3], "invalid button url size")


ROUTES: dict[str, Callable[[_AccountMixin, Account, Any, Any], dict[str, Any]]] = {
    "/cgi-bin/qrcode/create": _AccountMixin._qrcode,
    "/cgi-bin/menu/create": _AccountMixin._menu_create,
    "/cgi-bin/menu/get": _AccountMixin._menu_get,
    "/cgi-bin/menu/delete": _AccountMixin._menu_delete,
}

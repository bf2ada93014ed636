"""Conditional menus: ``menu/addconditional``, ``delconditional``, ``trymatch``, and the
full ``menu/get`` / ``menu/delete`` (which also cover conditional menus).

Refusals (the privacy rule 65320 is confirmed by the current official doc; the other
codes come from the global errcode list as recalled — **unconfirmed**): no default menu
65303, empty matchrule 65304, province/city without country/province 65310/65311, more than
3 link domains across conditional menus 65316, unknown menuid 65301, unknown user for
trymatch 65302. An unknown tag id (45159) and a bad ``client_platform_type`` (47001) are
emulator choices.

Matching is newest first. The platform matches a follower with several tags by the tag
applied last; the emulator does not record tagging order, so when several conditional
menus could match through different tags it answers the newest and counts the case in
``ambiguous_menu_matches`` (a MenuSet never creates that situation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from membermkt.testing.emulator.wechat._account import _check_button
from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, _Refuse

_PRIVACY = ("sex", "country", "province", "city", "language")
MAX_DOMAINS = 3


@attrs.define
class _Conditional:
    menuid: str
    buttons: list[Any]
    matchrule: dict[str, str]


def _check_buttons(buttons: Any) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise _Refuse(40016, "invalid button size")
    for b in buttons:
        subs = b.get("sub_button") if isinstance(b, dict) else None
        if subs:
            if len(subs) > 5:
                raise _Refuse(40023, "invalid sub button size")
            for s in subs:
                _check_button(s, sub=True)
        else:
            _check_button(b, sub=False)


def _domains(buttons: list[Any]) -> set[str]:
    out: set[str] = set()
    for b in buttons:
        for leaf in b.get("sub_button") or (b,):
            url = leaf.get("url")
            if url:
                out.add(str(url).split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].lower())
    return out


class _MenusMixin(_Base):
    """Conditional menus per account."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conditional_menus: dict[str, list[_Conditional]] = {}
        self.ambiguous_menu_matches = 0

    def _conds(self, acct: Account) -> list[_Conditional]:
        return self.conditional_menus.setdefault(acct.appid, [])

    def _add_conditional(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        if acct.menu is None:
            raise _Refuse(65303, "there is no selfmenu, please create selfmenu first")
        buttons = body.get("button")
        _check_buttons(buttons)
        assert isinstance(buttons, list)
        rule = body.get("matchrule")
        if not isinstance(rule, dict):
            raise _Refuse(65304, "match rule empty")
        rule = {k: str(v) for k, v in rule.items() if v not in (None, "")}
        if not rule:
            raise _Refuse(65304, "match rule empty")
        if any(rule.get(f) for f in _PRIVACY):
            raise _Refuse(65320, "matchrule contains privacy info")
        if rule.get("city") and not rule.get("province"):
            raise _Refuse(65311, "province info empty")
        if rule.get("province") and not rule.get("country"):
            raise _Refuse(65310, "country info empty")
        if "tag_id" in rule and (
            not rule["tag_id"].isdigit() or int(rule["tag_id"]) not in acct.tags
        ):
            raise _Refuse(45159, "invalid tag id")
        if "client_platform_type" in rule and rule["client_platform_type"] not in ("1", "2", "3"):
            raise _Refuse(47001, "data format error")
        domains = _domains(buttons)
        for c in self._conds(acct):
            domains |= _domains(c.buttons)
        if len(domains) > MAX_DOMAINS:
            raise _Refuse(65316, "too many url domains in conditional menus")
        menuid = str(next(self._ids))
        self._conds(acct).append(_Conditional(menuid, buttons, rule))
        return {"menuid": menuid}

    def _del_conditional(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        menuid = str(body.get("menuid", ""))
        conds = self._conds(acct)
        for i, c in enumerate(conds):
            if c.menuid == menuid:
                del conds[i]
                return {"errcode": 0, "errmsg": "ok"}
        raise _Refuse(65301, "no such conditional menu")

    def _trymatch(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        if acct.menu is None:
            raise _Refuse(46003, "menu no exist")
        follower = acct.followers.get(str(body.get("user_id", "")))
        if follower is None or not follower.subscribed:
            raise _Refuse(65302, "no such user")
        matches = [
            c
            for c in reversed(self._conds(acct))
            if "tag_id" in c.matchrule
            and int(c.matchrule["tag_id"]) in follower.tagids
            and set(c.matchrule) == {"tag_id"}
        ]
        if len({c.matchrule["tag_id"] for c in matches}) > 1:
            self.ambiguous_menu_matches += 1
        if matches:
            return {"button": matches[0].buttons}
        return {"button": acct.menu}

    def _menu_get_all(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        if acct.menu is None:
            raise _Refuse(46003, "menu no exist")
        out: dict[str, Any] = {"menu": {"button": acct.menu}}
        conds = self._conds(acct)
        if conds:
            out["conditionalmenu"] = [
                {"button": c.buttons, "matchrule": dict(c.matchrule), "menuid": c.menuid}
                for c in conds
            ]
        return out

    def _menu_delete_all(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        acct.menu = None
        self._conds(acct).clear()  # deleting the default menu deletes the conditional ones
        return {"errcode": 0, "errmsg": "ok"}


ROUTES: dict[str, Callable[[_MenusMixin, Account, Any, Any], dict[str, Any]]] = {
    "/cgi-bin/menu/addconditional": _MenusMixin._add_conditional,
    "/cgi-bin/menu/delconditional": _MenusMixin._del_conditional,
    "/cgi-bin/menu/trymatch": _MenusMixin._trymatch,
    "/cgi-bin/menu/get": _MenusMixin._menu_get_all,
    "/cgi-bin/menu/delete": _MenusMixin._menu_delete_all,
}

"""Users and tags: follower lists and info, tag management and tagging."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, Follower, _Refuse, _Tag


class _UsersMixin(_Base):
    """``/cgi-bin/user/*`` and ``/cgi-bin/tags/*``."""

    def _user_get(self, acct: Account, params: Mapping[str, str], body: Any) -> dict[str, Any]:
        cursor = params.get("next_openid") or ""
        start = acct._position[cursor] + 1 if cursor in acct._position else 0
        if cursor and cursor not in acct._position:
            raise _Refuse(40003, "invalid next_openid")
        page: list[str] = []
        i = start
        while i < len(acct._order) and len(page) < 10_000:
            o = acct._order[i]
            if acct.followers[o].subscribed:
                page.append(o)
            i += 1
        total = sum(1 for f in acct.followers.values() if f.subscribed)
        nxt = page[-1] if page else ""
        return {"total": total, "count": len(page), "data": {"openid": page}, "next_openid": nxt}

    @staticmethod
    def _info(f: Follower) -> dict[str, Any]:
        if not f.subscribed:
            return {"subscribe": 0, "openid": f.openid}
        out: dict[str, Any] = {
            "subscribe": 1,
            "openid": f.openid,
            "subscribe_time": f.subscribe_time,
            "remark": "",
            "groupid": 0,
            "tagid_list": sorted(f.tagids),
            "subscribe_scene": "ADD_SCENE_QR_CODE" if f.scene else "ADD_SCENE_OTHERS",
            "qr_scene": 0,
            "qr_scene_str": f.scene or "",
        }
        if f.unionid:
            out["unionid"] = f.unionid
        return out

    def _user_info(self, acct: Account, params: Mapping[str, str], body: Any) -> dict[str, Any]:
        return self._info(acct._follower(params.get("openid", "")))

    def _batchget(
        self, acct: Account, params: Mapping[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        users = body.get("user_list")
        if not isinstance(users, list) or not 1 <= len(users) <= 100:
            raise _Refuse(40032, "invalid openid list size")  # emulator choice (unconfirmed)
        return {"user_info_list": [self._info(acct._follower(u.get("openid", ""))) for u in users]}

    # ----------------------------------------------------------- tags

    def _check_tag_name(self, acct: Account, name: Any, except_id: int | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise _Refuse(45157, "invalid tag name")
        if len(name.encode("utf-8")) > 30:
            raise _Refuse(45158, "tag name too long")
        if any(t.name == name and t.id != except_id for t in acct.tags.values()):
            raise _Refuse(45157, "invalid tag name")
        return name

    def _tags_create(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        name = self._check_tag_name(acct, (body.get("tag") or {}).get("name"))
        if len(acct.tags) >= 100:
            raise _Refuse(45056, "too many tag now, no need to add new")
        tag = _Tag(acct._next_tag, name)
        acct._next_tag += 1
        acct.tags[tag.id] = tag
        return {"tag": {"id": tag.id, "name": name}}

    def _tags_get(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        return {
            "tags": [{"id": t.id, "name": t.name, "count": len(t.fans)} for t in acct.tags.values()]
        }

    def _tags_update(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("tag") or {}
        tag = self._tag(acct, spec.get("id"), edit=True)
        tag.name = self._check_tag_name(acct, spec.get("name"), except_id=tag.id)
        return {"errcode": 0, "errmsg": "ok"}

    def _tags_delete(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, (body.get("tag") or {}).get("id"), edit=True)
        if len(tag.fans) > 100_000:
            raise _Refuse(45057, "can't delete the tag that has too much fans")
        for o in tag.fans:
            acct.followers[o].tagids.discard(tag.id)
        del acct.tags[tag.id]
        return {"errcode": 0, "errmsg": "ok"}

    def _batch_openids(self, acct: Account, body: dict[str, Any], limit: int) -> list[Follower]:
        openids = body.get("openid_list")
        if not isinstance(openids, list) or not 1 <= len(openids) <= limit:
            raise _Refuse(40032, "invalid openid list size")
        return [acct._subscribed(o, 40003) for o in openids]

    def _batchtagging(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, body.get("tagid"), edit=True)
        users = self._batch_openids(acct, body, 50)
        for f in users:
            if tag.id not in f.tagids and len(f.tagids) >= 20:
                raise _Refuse(45059, "can not tagging one user too much")
        for f in users:
            f.tagids.add(tag.id)
            tag.fans[f.openid] = None
        return {"errcode": 0, "errmsg": "ok"}

    def _batchuntagging(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, body.get("tagid"), edit=True)
        for f in self._batch_openids(acct, body, 50):
            f.tagids.discard(tag.id)
            tag.fans.pop(f.openid, None)
        return {"errcode": 0, "errmsg": "ok"}

    def _tag_fans(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, body.get("tagid"))
        fans = list(tag.fans)
        cursor = body.get("next_openid") or ""
        start = fans.index(cursor) + 1 if cursor in tag.fans else 0
        page = fans[start : start + 10_000]
        return {
            "count": len(page),
            "data": {"openid": page},
            "next_openid": page[-1] if page else "",
        }

    def _getidlist(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {"tagid_list": sorted(acct._follower(body.get("openid", "")).tagids)}


ROUTES: dict[str, Callable[[_UsersMixin, Account, Any, Any], dict[str, Any]]] = {
    "/cgi-bin/user/get": _UsersMixin._user_get,
    "/cgi-bin/user/info": _UsersMixin._user_info,
    "/cgi-bin/user/info/batchget": _UsersMixin._batchget,
    "/cgi-bin/tags/create": _UsersMixin._tags_create,
    "/cgi-bin/tags/get": _UsersMixin._tags_get,
    "/cgi-bin/tags/update": _UsersMixin._tags_update,
    "/cgi-bin/tags/delete": _UsersMixin._tags_delete,
    "/cgi-bin/tags/members/batchtagging": _UsersMixin._batchtagging,
    "/cgi-bin/tags/members/batchuntagging": _UsersMixin._batchuntagging,
    "/cgi-bin/user/tag/get": _UsersMixin._tag_fans,
    "/cgi-bin/tags/getidlist": _UsersMixin._getidlist,
}

"""External contacts: follow users, list/get/batch get, unionid and openid conversion."""

from __future__ import annotations

from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase, _offset
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _INVALID,
    Relation,
    _Refuse,
)


class _ContactsMixin(_EmulatorBase):
    """``get_follow_user_list``, ``list``, ``get``, ``batch/get_by_user`` and id conversion."""

    def _follow_users(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        return {"follow_user": sorted(corp.staff)}

    def _list(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        userid = params.get("userid", "")
        ids = sorted(e for (u, e) in corp.relations if u == userid)
        if not ids:
            raise _Refuse(84061, "not external contact")
        return {"external_userid": ids}

    def _contact(self, corp: Corp, ext: str) -> dict[str, Any]:
        c = corp.customers.get(ext)
        if c is None:
            raise _Refuse(40096, "invalid external userid")
        out: dict[str, Any] = {
            "external_userid": c.external_userid,
            "name": c.name,
            "type": c.type,
            "avatar": "",
            "gender": c.gender,
        }
        if c.unionid:
            out["unionid"] = c.unionid
        return out

    def _follow(self, corp: Corp, rel: Relation, *, detailed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "userid": rel.userid,
            "remark": rel.remark,
            "description": "",
            "createtime": rel.createtime,
            "add_way": 1,
        }
        if rel.state:
            out["state"] = rel.state
        if detailed:
            tags = []
            for tid in sorted(rel.tag_ids):
                g, t = corp._tag(tid)
                tags.append(
                    {"group_name": g.group_name, "tag_name": t.name, "type": 1, "tag_id": t.id}
                )
            out["tags"] = tags
        else:
            out["tag_id"] = sorted(rel.tag_ids)
        return out

    def _get(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        ext = params.get("external_userid", "")
        contact = self._contact(corp, ext)
        rels = [r for (u, e), r in sorted(corp.relations.items()) if e == ext]
        return {
            "external_contact": contact,
            "follow_user": [self._follow(corp, r, detailed=True) for r in rels],
        }

    def _batch_get_by_user(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        users = body.get("userid_list")
        limit = body.get("limit", 50)
        if not isinstance(users, list) or not 1 <= len(users) <= 100:
            raise _Refuse(_INVALID, "invalid userid_list size")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise _Refuse(_INVALID, "invalid limit")
        wanted = set(users)
        rels = [r for (u, e), r in sorted(corp.relations.items()) if u in wanted]
        start = _offset(body)
        page = rels[start : start + limit]
        out: dict[str, Any] = {
            "external_contact_list": [
                {
                    "external_contact": self._contact(corp, r.external_userid),
                    "follow_info": self._follow(corp, r, detailed=False),
                }
                for r in page
            ]
        }
        out["next_cursor"] = str(start + limit) if start + limit < len(rels) else ""
        return out

    def _unionid_to_external(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        for c in corp.customers.values():
            if c.unionid and c.unionid == body.get("unionid"):
                return {"external_userid": c.external_userid}
        raise _Refuse(40096, "invalid external userid")  # emulator choice: unknown unionid

    def _convert_to_openid(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        c = corp.customers.get(str(body.get("external_userid", "")))
        if c is None or not c.openid:
            raise _Refuse(40096, "invalid external userid")
        return {"openid": c.openid}

"""Corp tags: list, add, edit, delete and ``mark_tag``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _INVALID,
    MAX_CORP_TAGS,
    _Group,
    _Refuse,
    _Tag,
)


class _TagsMixin(_EmulatorBase):
    """Corp tag groups and tags (≤ 3000 tags per corp)."""

    @staticmethod
    def _name(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 30:
            raise _Refuse(_INVALID, "invalid tag name")
        return value

    def _tag_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        gids = set(body.get("group_id") or ())
        tids = set(body.get("tag_id") or ())
        out = []
        for g in corp.groups.values():
            if gids and g.group_id not in gids:
                continue
            tags = [t for t in g.tags.values() if gids or not tids or t.id in tids]
            if not tags:
                continue
            out.append(self._group_json(g, tags))
        return {"tag_group": out}

    @staticmethod
    def _group_json(g: _Group, tags: Iterable[_Tag]) -> dict[str, Any]:
        return {
            "group_id": g.group_id,
            "group_name": g.group_name,
            "create_time": g.create_time,
            "order": g.order,
            "tag": [
                {"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order}
                for t in tags
            ],
        }

    def _tag_add(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        specs = body.get("tag")
        if not isinstance(specs, list) or not specs:
            raise _Refuse(_INVALID, "tag list empty")
        names = [self._name(s.get("name") if isinstance(s, dict) else None) for s in specs]
        now = int(self.now())
        gid = body.get("group_id")
        if gid:
            group = corp.groups.get(gid)
            if group is None:
                raise _Refuse(40068, "invalid tagid")
        else:
            gname = self._name(body.get("group_name"))
            group = next((g for g in corp.groups.values() if g.group_name == gname), None)
            if group is None:
                group = _Group(f"et{next(self._ids)}", gname, int(body.get("order") or 0), now)
                corp.groups[group.group_id] = group
        existing = {t.name: t for t in group.tags.values()}
        new = [n for n in dict.fromkeys(names) if n not in existing]
        if corp.tag_count() + len(new) > MAX_CORP_TAGS:
            # emulator choice: the reference gives the 3000 limit but no WeCom errcode
            raise _Refuse(45056, "too many corp tags")
        for n in new:
            t = _Tag(f"et{next(self._ids)}", n, 0, now)
            group.tags[t.id] = t
            existing[n] = t
        created = [existing[n] for n in dict.fromkeys(names)]
        return {"tag_group": self._group_json(group, created)}

    def _tag_edit(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tid = str(body.get("id", ""))
        if tid in corp.groups:
            g = corp.groups[tid]
            if body.get("name") is not None:
                g.group_name = self._name(body["name"])
            return {}
        _, t = corp._tag(tid)
        if body.get("name") is not None:
            t.name = self._name(body["name"])
        if body.get("order") is not None:
            t.order = int(body["order"])
        return {}

    def _tag_del(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        gids = list(body.get("group_id") or ())
        tids = list(body.get("tag_id") or ())
        if not gids and not tids:
            raise _Refuse(_INVALID, "tag_id and group_id are empty")
        for gid in gids:
            g = corp.groups.pop(gid, None)
            if g is None:
                raise _Refuse(40068, "invalid tagid")
            tids.extend(g.tags)
        for tid in tids:
            for g in list(corp.groups.values()):
                if tid in g.tags:
                    del g.tags[tid]
                    if not g.tags:  # deleting a group's last tag deletes the group
                        del corp.groups[g.group_id]
            for rel in corp.relations.values():
                rel.tag_ids.discard(tid)
        return {}

    def _mark_tag(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        rel = corp._relation(str(body.get("userid", "")), str(body.get("external_userid", "")))
        add = list(body.get("add_tag") or ())
        remove = list(body.get("remove_tag") or ())
        if not add and not remove:
            raise _Refuse(_INVALID, "add_tag and remove_tag are empty")
        for tid in (*add, *remove):
            corp._tag(str(tid))
        rel.tag_ids.update(str(t) for t in add)
        rel.tag_ids.difference_update(str(t) for t in remove)
        return {}

"""Mass messages: ``add_msg_template`` and the group-message list, tasks, results, remind
and cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _INVALID,
    REMINDS_PER_DAY,
    _Mass,
    _Refuse,
)


class _MassMixin(_EmulatorBase):
    """Mass messages (≤ 10,000 customers; sent only once each sender confirms)."""

    def _msg_template(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        chat_type = body.get("chat_type", "single")
        text, attachments = self._content(body)
        users = list(body.get("external_userid") or ())
        sender = body.get("sender")
        if len(users) > 10_000:
            raise _Refuse(_INVALID, "external_userid over 10000")
        if chat_type != "single":
            raise _Refuse(_INVALID, "group mass send is not emulated")  # emulator scope
        if not users and not sender:
            raise _Refuse(_INVALID, "external_userid and sender are both empty")
        if sender is not None and sender not in corp.staff:
            raise _Refuse(_INVALID, "invalid sender")
        targets: dict[str, list[str]] = {}
        fail: list[str] = []
        if not users:
            users = sorted(e for (u, e) in corp.relations if u == sender)
        for ext in dict.fromkeys(users):
            if sender is not None:
                owner = sender if (sender, ext) in corp.relations else None
            else:  # the member who last chatted with the customer (emulator: latest chat)
                rels = [r for (u, e), r in corp.relations.items() if e == ext]
                owner = max(rels, key=lambda r: (r.last_chat_at, r.userid)).userid if rels else None
            if owner is None:
                fail.append(ext)
            else:
                targets.setdefault(owner, []).append(ext)
        msgid = f"msg{next(self._ids)}"
        m = _Mass(
            msgid,
            sender,
            int(self.now()),
            chat_type,
            text,
            attachments,
            targets,
            tasks=dict.fromkeys(targets, (0, None)),
            results={(u, e): (0, None) for u, es in targets.items() for e in es},
        )
        corp.masses[msgid] = m
        return {"fail_list": fail, "msgid": msgid}

    def _mass(self, corp: Corp, body: Mapping[str, Any]) -> _Mass:
        m = corp.masses.get(str(body.get("msgid", "")))
        if m is None:
            raise _Refuse(_INVALID, "invalid msgid")
        return m

    def _msg_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        start, end = int(body.get("start_time", 0)), int(body.get("end_time", 0))
        if not 0 <= end - start <= 31 * 86400:
            raise _Refuse(_INVALID, "time span over one month")
        creator = body.get("creator")
        msgs = [
            m
            for m in corp.masses.values()
            if start <= m.create_time <= end and (creator is None or m.creator == creator)
        ]
        page, nxt = self._page(msgs, body, 50, 100)
        return {
            "group_msg_list": [
                {
                    "msgid": m.msgid,
                    "creator": m.creator or "",
                    "create_time": str(m.create_time),
                    "create_type": 0,
                    "text": {"content": m.text or ""},
                    "attachments": m.attachments,
                }
                for m in page
            ],
            "next_cursor": nxt,
        }

    def _msg_tasks(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        m = self._mass(corp, body)
        rows = [
            {"userid": u, "status": s, **({"send_time": t} if t else {})}
            for u, (s, t) in sorted(m.tasks.items())
        ]
        page, nxt = self._page(rows, body, 500, 1000)
        return {"task_list": page, "next_cursor": nxt}

    def _msg_results(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        m = self._mass(corp, body)
        userid = body.get("userid")
        rows = [
            {"external_userid": e, "userid": u, "status": s, **({"send_time": t} if t else {})}
            for (u, e), (s, t) in sorted(m.results.items())
            if u == userid
        ]
        page, nxt = self._page(rows, body, 500, 1000)
        return {"send_list": page, "next_cursor": nxt}

    def _msg_remind(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        m = self._mass(corp, body)
        now = self.now()
        m.reminds = [t for t in m.reminds if now - t < 86400]
        if len(m.reminds) >= REMINDS_PER_DAY:
            raise _Refuse(45009, "remind limit reached")  # emulator choice (code not given)
        m.reminds.append(now)
        return {}

    def _msg_cancel(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        self._mass(corp, body).cancelled = True
        return {}

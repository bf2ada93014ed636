"""Mass messages: ``add_msg_template`` and the group-message list, tasks, results, remind
and cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _INVALID,
    CHATS_MAX,
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
        if chat_type == "group":
            return self._group_template(corp, body, text, attachments)
        if chat_type != "single":
            raise _Refuse(_INVALID, "invalid chat_type")  # emulator choice (code unsourced)
        if len(users) > 10_000:
            raise _Refuse(_INVALID, "external_userid over 10000")
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

    def _group_template(
        self, corp: Corp, body: dict[str, Any], text: str | None, attachments: list[Any]
    ) -> dict[str, Any]:
        """``chat_type=group``: a task for ``sender`` (required, reference §3.4) to send to
        customer groups. ``chat_id_list`` (≤ 2000) names the groups; without it the owner
        picks among their groups in the client — the emulator targets all of them.

        A group that does not exist or that ``sender`` does not own is put in ``fail_list``
        (emulator choice, **unconfirmed**: the reference documents ``fail_list`` only as
        external_userids; WeCom's doc says the task goes to the groups' owner)."""
        sender = body.get("sender")
        # rule: wecom.group_sender -- sender required, ≤ 2000 groups, only the owner's groups
        if not sender:
            # reference §3.4: sender "Required for group"; the errcode is not documented
            raise _Refuse(_INVALID, "sender is required for chat_type group")
        if sender not in corp.staff:
            raise _Refuse(_INVALID, "invalid sender")
        chats = body.get("chat_id_list") or []
        if not isinstance(chats, list) or not all(isinstance(c, str) for c in chats):
            raise _Refuse(47001, "data format error")
        if len(chats) > CHATS_MAX:
            raise _Refuse(_INVALID, f"chat_id_list over {CHATS_MAX}")
        if not chats:
            chats = sorted(c for c, g in corp.chats.items() if g.get("owner") == sender)
        fail: list[str] = []
        mine: list[str] = []
        for cid in dict.fromkeys(chats):
            chat = corp.chats.get(cid)
            if chat is None or chat.get("owner") != sender or chat.get("dismissed"):
                fail.append(cid)
            else:
                mine.append(cid)
        msgid = f"msg{next(self._ids)}"
        targets = {sender: mine} if mine else {}
        corp.masses[msgid] = _Mass(
            msgid,
            sender,
            int(self.now()),
            "group",
            text,
            attachments,
            targets,
            tasks=dict.fromkeys(targets, (0, None)),
            results={(sender, c): (0, None) for c in mine},
        )
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
        chat_type = body.get("chat_type") or "single"
        msgs = [
            m
            for m in corp.masses.values()
            if start <= m.create_time <= end
            and (creator is None or m.creator == creator)
            and m.chat_type == chat_type
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
        # a group message answers chat_id and no external_userid, a customer message the
        # reverse (WeCom's field notes, as mirrored by SDKs; reference §3.4)
        field = "chat_id" if m.chat_type == "group" else "external_userid"
        rows = [
            {field: e, "userid": u, "status": s, **({"send_time": t} if t else {})}
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

"""Messaging: mass sends (with their quotas, ``clientmsgid`` de-duplication and 45066 for a
key retried within a minute), template, subscribe and customer-service messages, and the
job-result pushes (``MASSSENDJOBFINISH``, ``TEMPLATESENDJOBFINISH``) they queue."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from membermkt.channels.wechat.api.messaging import CUSTOM_MSGTYPES, MASS_MSGTYPES
from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, _MassJob, _Refuse

BEIJING = dt.timezone(dt.timedelta(hours=8))
MASS_PER_USER_PER_MONTH = 4
CLIENTMSGID_WINDOW = 24 * 3600
CLIENTMSGID_RETRY_INTERVAL = 60
"""Seconds before the same ``clientmsgid`` may be tried again (ref §1.4: 45066, wait >= 1
minute)."""
MSG_WINDOW, MSG_WINDOW_QUOTA = 48 * 3600, 5
EVENT_WINDOW, EVENT_WINDOW_QUOTA = 60, 3


class _MessagingMixin(_Base):
    """``/cgi-bin/message/*``."""

    @staticmethod
    def _content(body: dict[str, Any], allowed: frozenset[str]) -> tuple[str, str]:
        msgtype = body.get("msgtype")
        if msgtype not in allowed or not isinstance(body.get(msgtype), dict):
            raise _Refuse(40008, "invalid message type")  # global errcode list
        digest = hashlib.sha1(
            json.dumps({msgtype: body[msgtype]}, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        return msgtype, digest

    def _mass_deliver(
        self, acct: Account, openids: Iterable[str], msgtype: str, digest: str
    ) -> _MassJob:
        now = self.now()
        month = dt.datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m")
        msg_id = str(next(self._ids))
        total = sent = filtered = 0
        for o in openids:
            total += 1
            f = acct.followers.get(o)
            # Unknown or unfollowed openids are filtered out of the job (emulator choice).
            if f is None or not f.subscribed:
                continue
            filtered += 1
            if f.mass_month.get(month, 0) >= MASS_PER_USER_PER_MONTH:
                continue
            f.mass_month[month] = f.mass_month.get(month, 0) + 1
            self._receive(acct, o, "mass", digest, msg_id)
            sent += 1
        job = _MassJob(msg_id, msgtype, "SEND_SUCCESS", total, sent)
        acct.mass_jobs[msg_id] = job
        self._queue_job_finish(acct, msg_id, total, filtered, sent)
        return job

    def _queue_job_finish(
        self, acct: Account, msg_id: str, total: int, filtered: int, sent: int
    ) -> None:
        # MASSSENDJOBFINISH (ref §1.4): TotalCount, FilterCount (audience after filtering),
        # SentCount, ErrorCount. Unconfirmed: the FromUserName the platform uses for this
        # system event; the emulator sends "mphelper".
        pushes: list[tuple[str, Any]] = self.__dict__.setdefault("_job_finish", [])
        pushes.append(
            (
                acct.appid,
                lambda: acct.event_push(
                    "mphelper",
                    "MASSSENDJOBFINISH",
                    encrypted=False,
                    MsgID=msg_id,
                    Status="send success",
                    TotalCount=str(total),
                    FilterCount=str(filtered),
                    SentCount=str(sent),
                    ErrorCount=str(filtered - sent),
                ),
            )
        )

    def _queue_template_finish(self, acct: Account, msg_id: str, status: str) -> None:
        # TEMPLATESENDJOBFINISH (ref §1.5): MsgID and Status, one of "success",
        # "failed:user block", "failed: system failed" (sic). The emulator answers a blocked
        # follower 48002 at send time, so an accepted send always finishes "success".
        # Unconfirmed: the FromUserName of this event; the emulator sends "mphelper".
        pushes: list[tuple[str, Any]] = self.__dict__.setdefault("_job_finish", [])
        pushes.append(
            (
                acct.appid,
                lambda: acct.event_push(
                    "mphelper",
                    "TEMPLATESENDJOBFINISH",
                    encrypted=False,
                    MsgID=msg_id,
                    Status=status,
                ),
            )
        )

    def job_finish_pushes(self, appid: str | None = None) -> list[Any]:
        """The job-result callback pushes — ``MASSSENDJOBFINISH`` of finished mass jobs,
        ``TEMPLATESENDJOBFINISH`` of template sends — (plain XML), in order, taken off the
        queue (``appid``: only that account's)."""
        with self.lock:
            queue: list[tuple[str, Any]] = self.__dict__.setdefault("_job_finish", [])
            mine = [p for p in queue if appid is None or p[0] == appid]
            self.__dict__["_job_finish"] = [p for p in queue if p not in mine]
        return [make() for _, make in mine]

    def _check_clientmsgid(self, acct: Account, body: dict[str, Any]) -> str | None:
        cid = body.get("clientmsgid")
        if cid is None:
            return None
        if not isinstance(cid, str) or len(cid.encode("utf-8")) > 64:
            raise _Refuse(45067, "clientmsgid size out of limit")
        now = self.now()
        # 45066 (ref §1.4, §1.10): the same clientmsgid retried within a minute of the
        # previous attempt. Unconfirmed: whether a refused (45066) attempt restarts the
        # minute; the emulator counts every attempt, the stricter reading.
        tried: dict[str, float] = acct.__dict__.setdefault("_clientmsgid_tries", {})
        last = tried.get(cid)
        tried[cid] = now
        if last is not None and now - last < CLIENTMSGID_RETRY_INTERVAL:
            raise _Refuse(45066, "clientmsgid retried too fast, retry after 1 minute")
        seen = acct._clientmsgids.get(cid)
        if seen is not None and now - seen[1] < CLIENTMSGID_WINDOW:
            raise _Refuse(45065, "clientmsgid exist", msg_id=int(seen[0]))
        return cid

    def _mass_send(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        touser = body.get("touser")
        if not isinstance(touser, list) or len(touser) < 2:
            raise _Refuse(40130, "invalid openid list size, at least two openid")
        if len(touser) > 10_000:
            raise _Refuse(40032, "invalid openid list size")
        msgtype, digest = self._content(body, MASS_MSGTYPES)
        cid = self._check_clientmsgid(acct, body)
        job = self._mass_deliver(acct, dict.fromkeys(touser), msgtype, digest)
        if cid is not None:
            acct._clientmsgids[cid] = (job.msg_id, self.now())
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": int(job.msg_id),
            "msg_data_id": int(job.msg_id) + 1,
        }

    def _mass_sendall(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        flt = body.get("filter") or {}
        msgtype, digest = self._content(body, MASS_MSGTYPES)
        cid = self._check_clientmsgid(acct, body)
        if flt.get("is_to_all"):
            now = self.now()
            day = dt.datetime.fromtimestamp(now, BEIJING)
            same_day = [
                t
                for t in acct._to_all
                if dt.datetime.fromtimestamp(t, BEIJING).date() == day.date()
            ]
            same_month = [
                t
                for t in acct._to_all
                if dt.datetime.fromtimestamp(t, BEIJING).strftime("%Y-%m") == day.strftime("%Y-%m")
            ]
            if same_day or len(same_month) >= 4:
                raise _Refuse(45028, "has no masssend quota")
            acct._to_all.append(now)
            audience: Iterable[str] = list(acct._order)
        else:
            audience = list(self._tag(acct, flt.get("tag_id")).fans)
        job = self._mass_deliver(acct, audience, msgtype, digest)
        if cid is not None:
            acct._clientmsgids[cid] = (job.msg_id, self.now())
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": int(job.msg_id),
            "msg_data_id": int(job.msg_id) + 1,
        }

    def _mass_preview(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        _, digest = self._content(body, MASS_MSGTYPES)
        openid = body.get("touser")
        if body.get("towxname"):
            return {"errcode": 0, "errmsg": "preview success"}
        f = acct._subscribed(str(openid))
        self._receive(acct, f.openid, "preview", digest, str(next(self._ids)))
        return {"errcode": 0, "errmsg": "preview success", "msg_id": next(self._ids)}

    def _mass_get(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        job = acct.mass_jobs.get(str(body.get("msg_id")))
        if job is None:
            raise _Refuse(40059, "invalid msg id")
        return {"msg_id": int(job.msg_id), "msg_status": job.status}

    def _mass_delete(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        job = acct.mass_jobs.get(str(body.get("msg_id")))
        if job is None:
            raise _Refuse(40059, "invalid msg id")
        job.status = "DELETE"
        return {"errcode": 0, "errmsg": "ok"}

    def _template(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        f = acct._subscribed(str(body.get("touser", "")))
        tid = body.get("template_id")
        if tid not in acct.templates:
            raise _Refuse(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and "value" in v for v in data.values()
        ):
            raise _Refuse(47003, "argument invalid! data.value invalid")
        if f.blocked:
            raise _Refuse(48002, "api forbid for user")
        digest = hashlib.sha1(
            json.dumps([tid, data, body.get("url")], sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        msgid = str(next(self._ids))
        self._receive(acct, f.openid, "template", digest, msgid)
        self._queue_template_finish(acct, msgid, "success")
        return {"errcode": 0, "errmsg": "ok", "msgid": int(msgid)}

    def _subscribe_send(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        f = acct._subscribed(str(body.get("touser", "")))
        tid = str(body.get("template_id", ""))
        if f.subscribe_grants[tid] <= 0:
            raise _Refuse(43101, "user refuse to accept the msg")
        f.subscribe_grants[tid] -= 1
        digest = hashlib.sha1(
            json.dumps([tid, body.get("data")], sort_keys=True).encode()
        ).hexdigest()
        self._receive(acct, f.openid, "subscribe", digest, str(next(self._ids)))
        return {"errcode": 0, "errmsg": "ok"}

    def _custom(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        f = acct.followers.get(str(body.get("touser", "")))
        if f is None:
            raise _Refuse(40003, "invalid openid")
        _, digest = self._content(body, CUSTOM_MSGTYPES)
        now = self.now()
        if not f.subscribed:
            raise _Refuse(45015, "response out of time limit or subscription is canceled")
        open_windows = [
            (group, w)
            for group, w in sorted(f.windows.items())  # "event" (short-lived) before "message"
            if now - w[0] <= (MSG_WINDOW if group == "message" else EVENT_WINDOW)
        ]
        if not open_windows:
            raise _Refuse(45015, "response out of time limit or subscription is canceled")
        for group, w in open_windows:
            if w[1] < (MSG_WINDOW_QUOTA if group == "message" else EVENT_WINDOW_QUOTA):
                w[1] += 1
                break
        else:
            raise _Refuse(45047, "out of response count limit")
        self._receive(acct, f.openid, "custom", digest, str(next(self._ids)))
        return {"errcode": 0, "errmsg": "ok"}


ROUTES: dict[str, Callable[[_MessagingMixin, Account, Any, Any], dict[str, Any]]] = {
    "/cgi-bin/message/mass/send": _MessagingMixin._mass_send,
    "/cgi-bin/message/mass/sendall": _MessagingMixin._mass_sendall,
    "/cgi-bin/message/mass/preview": _MessagingMixin._mass_preview,
    "/cgi-bin/message/mass/get": _MessagingMixin._mass_get,
    "/cgi-bin/message/mass/delete": _MessagingMixin._mass_delete,
    "/cgi-bin/message/template/send": _MessagingMixin._template,
    "/cgi-bin/message/subscribe/bizsend": _MessagingMixin._subscribe_send,
    "/cgi-bin/message/custom/send": _MessagingMixin._custom,
}

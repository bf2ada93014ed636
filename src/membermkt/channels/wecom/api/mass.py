"""Customer mass messages (客户群发, reference §3.4) and the welcome message (§3.5).

``add_msg_template`` sends nothing by itself: every sender (staff member) must confirm in
the WeCom client. membermkt therefore models a delivery as *pending confirmation* until the
per-customer results (:func:`groupmsg_send_results`) say it was sent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import EC, need, post, strs
from membermkt.errors import UsageError

__all__ = [
    "ATTACHMENTS_MAX",
    "ATTACHMENT_TYPES",
    "CHATS_MAX",
    "CUSTOMERS_MAX",
    "TEXT_MAX_BYTES",
    "CustomerResult",
    "CustomerResultPage",
    "GroupMsg",
    "GroupMsgPage",
    "MsgTemplate",
    "SendStatus",
    "Task",
    "TaskPage",
    "add_msg_template",
    "cancel_groupmsg_send",
    "check_content",
    "groupmsg_list",
    "groupmsg_send_results",
    "groupmsg_tasks",
    "remind_groupmsg_send",
    "send_welcome_msg",
]

CUSTOMERS_MAX: Final = 10_000
"""``external_userid`` list: at most 10,000 customers per ``add_msg_template``."""
CHATS_MAX: Final = 2000
ATTACHMENTS_MAX: Final = 9
TEXT_MAX_BYTES: Final = 4000
ATTACHMENT_TYPES: Final = frozenset({"image", "link", "miniprogram", "video", "file"})


class SendStatus(enum.IntEnum):
    """Per-customer status of ``get_groupmsg_send_result`` (values 0–3 are **unconfirmed**:
    the reference saw them only in a third-party mirror of WeCom's doc)."""

    NOT_SENT = 0
    """Not sent yet (the staff member has not confirmed)."""
    SENT = 1
    NOT_FRIEND = 2
    """Failed: the customer is no longer the staff member's contact."""
    CAP_REACHED = 3
    """Failed: the customer already received another mass message (receive cap)."""


def check_content(text: str | None, attachments: Sequence[Mapping[str, Any]]) -> None:
    """Refuse content WeCom would refuse: text over 4000 UTF-8 bytes, more than 9
    attachments, an unknown attachment ``msgtype``, or nothing at all.

    Raises:
        UsageError: naming the limit.
    """
    if text is not None and len(text.encode("utf-8")) > TEXT_MAX_BYTES:
        raise UsageError(f"text is {len(text.encode())} bytes, over {TEXT_MAX_BYTES}")
    if len(attachments) > ATTACHMENTS_MAX:
        raise UsageError(f"{len(attachments)} attachments, over {ATTACHMENTS_MAX}")
    for a in attachments:
        kind = a.get("msgtype") if isinstance(a, Mapping) else None
        if kind not in ATTACHMENT_TYPES or not isinstance(a.get(kind), Mapping):
            raise UsageError(
                f"attachment {a!r} needs msgtype in {sorted(ATTACHMENT_TYPES)} and its object"
            )
    if not text and not attachments:
        raise UsageError("a message needs text or attachments")


@attrs.frozen(slots=True, kw_only=True)
class MsgTemplate:
    """``add_msg_template``'s answer: the ``msgid`` and the customers WeCom refused."""

    msgid: str
    fail_list: tuple[str, ...] = ()


def add_msg_template(
    *,
    external_userids: Sequence[str] = (),
    sender: str | None = None,
    text: str | None = None,
    attachments: Sequence[Mapping[str, Any]] = (),
    chat_type: str = "single",
    chat_ids: Sequence[str] = (),
    tag_filter: Mapping[str, Any] | None = None,
    allow_select: bool | None = None,
) -> ApiCall[MsgTemplate]:
    """``POST /externalcontact/add_msg_template`` — create a mass-send task for staff to
    confirm. Not idempotent (no key): a retry after a lost answer creates a second task.

    Raises:
        UsageError: for more than 10,000 customers / 2000 chats, a group send without a
            sender, a single send with neither customers nor sender, or bad content.
    """
    if chat_type not in ("single", "group"):
        raise UsageError(f"chat_type must be 'single' or 'group', got {chat_type!r}")
    users = strs(external_userids, "external_userids", max_items=CUSTOMERS_MAX)
    chats = strs(chat_ids, "chat_ids", max_items=CHATS_MAX)
    # rule: wecom.group_sender -- a group mass send names its sender; ≤ 2000 chat_id_list
    if chat_type == "group" and not sender:
        raise UsageError("a group mass send needs a sender")
    if chat_type == "single" and not users and not sender:
        raise UsageError("external_userids and sender cannot both be empty")
    check_content(text, attachments)
    body: dict[str, Any] = {
        "chat_type": chat_type,
        "external_userid": users or None,
        "chat_id_list": chats or None,
        "tag_filter": dict(tag_filter) if tag_filter else None,
        "sender": sender,
        "allow_select": allow_select,
        "text": {"content": text} if text else None,
        "attachments": [dict(a) for a in attachments] or None,
    }
    api = f"{EC}/add_msg_template"
    return post(
        api,
        body,
        lambda d: MsgTemplate(
            msgid=str(need(d, "msgid", api)),
            fail_list=tuple(str(u) for u in d.get("fail_list") or ()),
        ),
    )


@attrs.frozen(slots=True, kw_only=True)
class GroupMsg:
    """One mass message record (``group_msg_list[]``)."""

    msgid: str
    creator: str | None = None
    create_time: int | None = None
    create_type: int | None = None
    text: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> GroupMsg:
        return cls(
            msgid=str(d.get("msgid", "")),
            creator=d.get("creator") or None,
            create_time=int(d["create_time"]) if d.get("create_time") else None,
            create_type=d.get("create_type"),
            text=(d.get("text") or {}).get("content"),
            raw=dict(d),
        )


@attrs.frozen(slots=True, kw_only=True)
class GroupMsgPage:
    items: tuple[GroupMsg, ...]
    next_cursor: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class Task:
    """One sender's task (``task_list[]``): ``status`` 0 not sent, 2 sent (per WxJava; the
    reference does not list task statuses)."""

    userid: str
    status: int
    send_time: int | None = None


@attrs.frozen(slots=True, kw_only=True)
class TaskPage:
    items: tuple[Task, ...]
    next_cursor: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class CustomerResult:
    """One customer's result (``send_list[]``)."""

    external_userid: str
    userid: str
    status: int
    chat_id: str | None = None
    send_time: int | None = None


@attrs.frozen(slots=True, kw_only=True)
class CustomerResultPage:
    items: tuple[CustomerResult, ...]
    next_cursor: str | None = None


def _limit(limit: int, top: int, api: str) -> int:
    if not 1 <= limit <= top:
        raise UsageError(f"{api}: limit must be 1..{top}, got {limit}")
    return limit


def groupmsg_list(
    *,
    start_time: int,
    end_time: int,
    chat_type: str = "single",
    creator: str | None = None,
    filter_type: int = 2,
    cursor: str | None = None,
    limit: int = 50,
) -> ApiCall[GroupMsgPage]:
    """``POST /externalcontact/get_groupmsg_list_v2`` (span ≤ 1 month, ``limit`` ≤ 100;
    ``filter_type`` 0 corp, 1 personal, 2 all).

    Raises:
        UsageError: for a span over 31 days or a limit outside 1..100.
    """
    if not 0 <= end_time - start_time <= 31 * 86400:
        raise UsageError("get_groupmsg_list_v2: end_time - start_time must be 0..1 month")
    body = {
        "chat_type": chat_type,
        "start_time": start_time,
        "end_time": end_time,
        "creator": creator,
        "filter_type": filter_type,
        "cursor": cursor,
        "limit": _limit(limit, 100, "get_groupmsg_list_v2"),
    }
    return post(
        f"{EC}/get_groupmsg_list_v2",
        body,
        lambda d: GroupMsgPage(
            items=tuple(GroupMsg.from_api(g) for g in d.get("group_msg_list") or ()),
            next_cursor=d.get("next_cursor") or None,
        ),
        idempotent=True,
    )


def groupmsg_tasks(msgid: str, *, cursor: str | None = None, limit: int = 500) -> ApiCall[TaskPage]:
    """``POST /externalcontact/get_groupmsg_task`` (``limit`` ≤ 1000).

    Raises:
        UsageError: for a limit outside 1..1000.
    """
    body = {"msgid": msgid, "cursor": cursor, "limit": _limit(limit, 1000, "get_groupmsg_task")}
    return post(
        f"{EC}/get_groupmsg_task",
        body,
        lambda d: TaskPage(
            items=tuple(
                Task(
                    userid=str(t.get("userid", "")),
                    status=int(t.get("status") or 0),
                    send_time=t.get("send_time"),
                )
                for t in d.get("task_list") or ()
            ),
            next_cursor=d.get("next_cursor") or None,
        ),
        idempotent=True,
    )


def groupmsg_send_results(
    msgid: str, userid: str, *, cursor: str | None = None, limit: int = 500
) -> ApiCall[CustomerResultPage]:
    """``POST /externalcontact/get_groupmsg_send_result`` (``limit`` ≤ 1000).

    Raises:
        UsageError: for a limit outside 1..1000.
    """
    body = {
        "msgid": msgid,
        "userid": userid,
        "cursor": cursor,
        "limit": _limit(limit, 1000, "get_groupmsg_send_result"),
    }
    return post(
        f"{EC}/get_groupmsg_send_result",
        body,
        lambda d: CustomerResultPage(
            items=tuple(
                CustomerResult(
                    external_userid=str(s.get("external_userid") or ""),
                    userid=str(s.get("userid") or userid),
                    status=int(s.get("status") or 0),
                    chat_id=s.get("chat_id") or None,
                    send_time=s.get("send_time"),
                )
                for s in d.get("send_list") or ()
            ),
            next_cursor=d.get("next_cursor") or None,
        ),
        idempotent=True,
    )


def remind_groupmsg_send(msgid: str) -> ApiCall[None]:
    """``POST /externalcontact/remind_groupmsg_send`` (≤ 3 reminders per message per 24 h)."""
    return post(f"{EC}/remind_groupmsg_send", {"msgid": msgid}, lambda d: None)


def cancel_groupmsg_send(msgid: str) -> ApiCall[None]:
    """``POST /externalcontact/cancel_groupmsg_send``."""
    return post(f"{EC}/cancel_groupmsg_send", {"msgid": msgid}, lambda d: None, idempotent=True)


def send_welcome_msg(
    welcome_code: str, *, text: str | None = None, attachments: Sequence[Mapping[str, Any]] = ()
) -> ApiCall[None]:
    """``POST /externalcontact/send_welcome_msg`` — within 20 s of the add event, once.

    Never idempotent: the code is single-use; a lost answer must not be retried (a second
    call gets 41051 at best).

    Raises:
        UsageError: for an empty code or bad content.
    """
    if not welcome_code:
        raise UsageError("send_welcome_msg needs a welcome_code")
    check_content(text, attachments)
    body = {
        "welcome_code": welcome_code,
        "text": {"content": text} if text else None,
        "attachments": [dict(a) for a in attachments] or None,
    }
    return post(f"{EC}/send_welcome_msg", body, lambda d: None)

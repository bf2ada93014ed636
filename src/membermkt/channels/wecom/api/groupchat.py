"""Customer groups (客户群, reference §3.7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import EC, need, post, strs
from membermkt.errors import UsageError

__all__ = ["GroupChat", "GroupChatPage", "groupchat", "groupchats"]


@attrs.frozen(slots=True, kw_only=True)
class GroupChat:
    """A customer group (``status`` in list answers; details from ``groupchat/get``)."""

    chat_id: str
    status: int | None = None
    name: str | None = None
    owner: str | None = None
    create_time: int | None = None
    members: tuple[Mapping[str, Any], ...] = attrs.field(default=(), eq=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> GroupChat:
        return cls(
            chat_id=str(d.get("chat_id", "")),
            status=d.get("status"),
            name=d.get("name"),
            owner=d.get("owner"),
            create_time=d.get("create_time"),
            members=tuple(d.get("member_list") or ()),
            raw=dict(d),
        )


@attrs.frozen(slots=True, kw_only=True)
class GroupChatPage:
    items: tuple[GroupChat, ...]
    next_cursor: str | None = None


def groupchats(
    *,
    owners: Sequence[str] = (),
    status_filter: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> ApiCall[GroupChatPage]:
    """``POST /externalcontact/groupchat/list`` (``limit`` 1–1000, ≤ 100 owners; without an
    owner filter and > 1000 visible owners WeCom answers 81017).

    Raises:
        UsageError: for a limit outside 1..1000 or more than 100 owners.
    """
    if not 1 <= limit <= 1000:
        raise UsageError(f"groupchat/list limit must be 1..1000, got {limit}")
    owner_list = strs(owners, "owners", max_items=100)
    body = {
        "status_filter": status_filter,
        "owner_filter": {"userid_list": owner_list} if owner_list else None,
        "cursor": cursor,
        "limit": limit,
    }
    return post(
        f"{EC}/groupchat/list",
        body,
        lambda d: GroupChatPage(
            items=tuple(GroupChat.from_api(g) for g in d.get("group_chat_list") or ()),
            next_cursor=d.get("next_cursor") or None,
        ),
        idempotent=True,
    )


def groupchat(chat_id: str, *, need_name: bool = False) -> ApiCall[GroupChat]:
    """``POST /externalcontact/groupchat/get``."""
    api = f"{EC}/groupchat/get"
    return post(
        api,
        {"chat_id": chat_id, "need_name": 1 if need_name else 0},
        lambda d: GroupChat.from_api(need(d, "group_chat", api)),
        idempotent=True,
    )

"""Corp customer tags (企业客户标签, reference §3.3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import EC, post, strs
from membermkt.errors import UsageError

__all__ = [
    "MAX_CORP_TAGS",
    "TAG_NAME_MAX",
    "CorpTag",
    "TagGroup",
    "add_corp_tags",
    "delete_corp_tags",
    "edit_corp_tag",
    "list_corp_tags",
    "mark_tag",
]

MAX_CORP_TAGS = 3000
"""At most 3000 corp tags per enterprise."""
TAG_NAME_MAX = 30
"""Tag (and group) names: at most 30 characters."""
_ORDER_MAX = 2**32


@attrs.frozen(slots=True, kw_only=True)
class CorpTag:
    """A corp tag (``order``: larger sorts first)."""

    id: str
    name: str
    order: int = 0
    create_time: int | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> CorpTag:
        return cls(
            id=str(d.get("id", "")),
            name=str(d.get("name", "")),
            order=int(d.get("order") or 0),
            create_time=d.get("create_time"),
        )


@attrs.frozen(slots=True, kw_only=True)
class TagGroup:
    """A tag group and its tags."""

    group_id: str
    group_name: str
    order: int = 0
    tags: tuple[CorpTag, ...] = ()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> TagGroup:
        return cls(
            group_id=str(d.get("group_id", "")),
            group_name=str(d.get("group_name", "")),
            order=int(d.get("order") or 0),
            tags=tuple(CorpTag.from_api(t) for t in d.get("tag") or ()),
        )


def _name(name: str, what: str = "tag name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{what} must be a non-empty str")
    if len(name) > TAG_NAME_MAX:
        raise UsageError(f"{what} {name!r} is over {TAG_NAME_MAX} characters")
    return name


def _order(order: int | None) -> int | None:
    if order is not None and not 0 <= order < _ORDER_MAX:
        raise UsageError(f"tag order must be in [0, 2^32), got {order}")
    return order


def list_corp_tags(
    tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()
) -> ApiCall[tuple[TagGroup, ...]]:
    """``POST /externalcontact/get_corp_tag_list`` (both empty: every tag; both given: the
    groups win)."""
    body = {"tag_id": strs(tag_ids, "tag_ids"), "group_id": strs(group_ids, "group_ids")}
    return post(
        f"{EC}/get_corp_tag_list",
        body,
        lambda d: tuple(TagGroup.from_api(g) for g in d.get("tag_group") or ()),
        idempotent=True,
    )


def add_corp_tags(
    names: Sequence[str],
    *,
    group_id: str | None = None,
    group_name: str | None = None,
    order: int | None = None,
    agentid: int | None = None,
) -> ApiCall[TagGroup]:
    """``POST /externalcontact/add_corp_tag``: tags into an existing group (``group_id``)
    or a group created by name (duplicate names in a group are created once).

    Raises:
        UsageError: without tags, with both or neither group argument, or a bad name/order.
    """
    tags = [{"name": _name(n)} for n in strs(names, "names")]
    if not tags:
        raise UsageError("add_corp_tag needs at least one tag name")
    if (group_id is None) == (group_name is None):
        raise UsageError("pass exactly one of group_id= or group_name=")
    body = {
        "group_id": group_id,
        "group_name": _name(group_name, "group name") if group_name is not None else None,
        "order": _order(order),
        "tag": tags,
        "agentid": agentid,
    }
    return post(
        f"{EC}/add_corp_tag",
        body,
        lambda d: TagGroup.from_api(d.get("tag_group") or {}),
    )


def edit_corp_tag(
    tag_id: str, *, name: str | None = None, order: int | None = None
) -> ApiCall[None]:
    """``POST /externalcontact/edit_corp_tag`` (a tag or a group id).

    Raises:
        UsageError: for a bad name or order.
    """
    body = {"id": tag_id, "name": _name(name) if name is not None else None, "order": _order(order)}
    return post(f"{EC}/edit_corp_tag", body, lambda d: None, idempotent=True)


def delete_corp_tags(tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()) -> ApiCall[None]:
    """``POST /externalcontact/del_corp_tag`` (deleting a group's last tag deletes the group).

    Raises:
        UsageError: when both lists are empty.
    """
    body = {"tag_id": strs(tag_ids, "tag_ids"), "group_id": strs(group_ids, "group_ids")}
    if not body["tag_id"] and not body["group_id"]:
        raise UsageError("del_corp_tag needs tag ids or group ids")
    return post(f"{EC}/del_corp_tag", body, lambda d: None, idempotent=True)


def mark_tag(
    userid: str,
    external_userid: str,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> ApiCall[None]:
    """``POST /externalcontact/mark_tag`` (per-call and per-customer caps are
    **unconfirmed** in the reference; none are enforced here).

    Raises:
        UsageError: when there is nothing to add or remove.
    """
    body = {
        "userid": userid,
        "external_userid": external_userid,
        "add_tag": strs(add, "add"),
        "remove_tag": strs(remove, "remove"),
    }
    if not body["add_tag"] and not body["remove_tag"]:
        raise UsageError("mark_tag needs tags to add or remove")
    return post(f"{EC}/mark_tag", body, lambda d: None, idempotent=True)

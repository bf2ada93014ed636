"""User tags (reference §1.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.channels.wechat.api.users import FollowerPage
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = [
    "MAX_TAGS_PER_ACCOUNT",
    "MAX_TAGS_PER_USER",
    "RESERVED_TAG_IDS",
    "TAG_BATCH_MAX",
    "TAG_NAME_MAX",
    "Tag",
    "create_tag",
    "delete_tag",
    "list_tags",
    "tag_users",
    "tags_of_user",
    "untag_users",
    "update_tag",
    "users_of_tag",
]

TAG_BATCH_MAX = 50
"""Most openids per batch tag/untag call."""
MAX_TAGS_PER_ACCOUNT = 100
MAX_TAGS_PER_USER = 20
TAG_NAME_MAX = 30
"""Tag name limit (the platform says chars, its errmsg says bytes: we check both ≤ 30)."""
RESERVED_TAG_IDS = frozenset({0, 1, 2})


@attrs.frozen(slots=True, kw_only=True)
class Tag:
    """A WeChat tag; ``count`` is its number of fans (``tags/get`` only)."""

    id: int
    name: str
    count: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Tag:
        return cls(id=int(data["id"]), name=str(data["name"]), count=data.get("count"))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise UsageError("tag name must be a non-empty str")
    if len(name.encode("utf-8")) > TAG_NAME_MAX:
        raise UsageError(f"tag name {name!r} is over {TAG_NAME_MAX} bytes")


def _check_editable(tag_id: int) -> None:
    if tag_id in RESERVED_TAG_IDS:
        raise UsageError(f"tag id {tag_id} is reserved by the platform and cannot be modified")


def create_tag(name: str) -> ApiCall[Tag]:
    """``POST /cgi-bin/tags/create``.

    Raises:
        UsageError: for an empty name or one over 30 bytes.
    """
    _check_name(name)
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/tags/create", {"tag": {"name": name}}),
        parse=lambda d: Tag.from_api(need(d, "tag", "/cgi-bin/tags/create")),
    )


def list_tags() -> ApiCall[tuple[Tag, ...]]:
    """``GET /cgi-bin/tags/get``."""
    return ApiCall(
        request=HttpRequest.get("/cgi-bin/tags/get"),
        parse=lambda d: tuple(Tag.from_api(t) for t in d.get("tags") or ()),
        idempotent=True,
    )


def update_tag(tag_id: int, name: str) -> ApiCall[None]:
    """``POST /cgi-bin/tags/update``.

    Raises:
        UsageError: for a reserved id or a bad name.
    """
    _check_editable(tag_id)
    _check_name(name)
    return ApiCall(
        request=HttpRequest.post_json(
            "/cgi-bin/tags/update", {"tag": {"id": tag_id, "name": name}}
        ),
        parse=lambda d: None,
        idempotent=True,
    )


def delete_tag(tag_id: int) -> ApiCall[None]:
    """``POST /cgi-bin/tags/delete`` (refused by the platform above 100,000 fans: 45057).

    Raises:
        UsageError: for a reserved id.
    """
    _check_editable(tag_id)
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/tags/delete", {"tag": {"id": tag_id}}),
        parse=lambda d: None,
        idempotent=True,
    )


def _batch(path: str, tag_id: int, openids: Sequence[str]) -> ApiCall[None]:
    if not 1 <= len(openids) <= TAG_BATCH_MAX:
        raise UsageError(f"{path} takes 1..{TAG_BATCH_MAX} openids, got {len(openids)}")
    return ApiCall(
        request=HttpRequest.post_json(path, {"openid_list": list(openids), "tagid": tag_id}),
        parse=lambda d: None,
        idempotent=True,
    )


def tag_users(tag_id: int, openids: Sequence[str]) -> ApiCall[None]:
    """``POST /cgi-bin/tags/members/batchtagging`` for 1..50 openids (the client chunks).

    Raises:
        UsageError: for an empty list or more than 50 openids.
    """
    return _batch("/cgi-bin/tags/members/batchtagging", tag_id, openids)


def untag_users(tag_id: int, openids: Sequence[str]) -> ApiCall[None]:
    """``POST /cgi-bin/tags/members/batchuntagging`` for 1..50 openids.

    Raises:
        UsageError: for an empty list or more than 50 openids.
    """
    return _batch("/cgi-bin/tags/members/batchuntagging", tag_id, openids)


def users_of_tag(tag_id: int, next_openid: str | None = None) -> ApiCall[FollowerPage]:
    """``POST /cgi-bin/user/tag/get``: one page of a tag's fans."""
    return ApiCall(
        request=HttpRequest.post_json(
            "/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": next_openid or ""}
        ),
        parse=FollowerPage.from_api,
        idempotent=True,
    )


def tags_of_user(openid: str) -> ApiCall[tuple[int, ...]]:
    """``POST /cgi-bin/tags/getidlist``."""
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/tags/getidlist", {"openid": openid}),
        parse=lambda d: tuple(int(t) for t in d.get("tagid_list") or ()),
        idempotent=True,
    )

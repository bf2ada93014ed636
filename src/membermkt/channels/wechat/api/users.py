"""Followers and user info (reference §1.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = [
    "BATCH_INFO_MAX",
    "FollowerPage",
    "UserInfo",
    "batch_user_info",
    "followers_page",
    "user_info",
]

BATCH_INFO_MAX = 100
"""Most openids per ``user/info/batchget`` call."""


@attrs.frozen(slots=True, kw_only=True)
class FollowerPage:
    """One page of openids (``user/get`` and ``user/tag/get``).

    Attributes:
        openids: this page's openids.
        next_openid: the cursor for the next page (``None`` at the end).
        total: the total number of followers (``user/get`` only).
    """

    openids: tuple[str, ...]
    next_openid: str | None
    total: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FollowerPage:
        openids = tuple((data.get("data") or {}).get("openid") or ())
        count = int(data.get("count", len(openids)))
        # wechatpy notes next_openid may be non-empty on the last page: stop when count == 0.
        nxt = data.get("next_openid") or None
        return cls(
            openids=openids,
            next_openid=nxt if count and nxt else None,
            total=data.get("total"),
        )


@attrs.frozen(slots=True, kw_only=True)
class UserInfo:
    """A user's info (nickname/avatar are no longer returned by the platform)."""

    openid: str
    subscribed: bool
    subscribe_time: int | None = None
    unionid: str | None = None
    remark: str = ""
    tagids: tuple[int, ...] = ()
    subscribe_scene: str | None = None
    qr_scene: int | None = None
    qr_scene_str: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> UserInfo:
        return cls(
            openid=str(data.get("openid", "")),
            subscribed=bool(data.get("subscribe", 0)),
            subscribe_time=data.get("subscribe_time"),
            unionid=data.get("unionid") or None,
            remark=str(data.get("remark", "")),
            tagids=tuple(int(t) for t in data.get("tagid_list") or ()),
            subscribe_scene=data.get("subscribe_scene") or None,
            qr_scene=data.get("qr_scene") or None,
            qr_scene_str=data.get("qr_scene_str") or None,
            raw=dict(data),
        )


def followers_page(next_openid: str | None = None) -> ApiCall[FollowerPage]:
    """``GET /cgi-bin/user/get``: up to 10,000 openids from ``next_openid``."""
    return ApiCall(
        request=HttpRequest.get("/cgi-bin/user/get", {"next_openid": next_openid or ""}),
        parse=FollowerPage.from_api,
        idempotent=True,
    )


def user_info(openid: str, *, lang: str = "zh_CN") -> ApiCall[UserInfo]:
    """``GET /cgi-bin/user/info``."""
    if not openid:
        raise UsageError("user_info: openid must be non-empty")
    return ApiCall(
        request=HttpRequest.get("/cgi-bin/user/info", {"openid": openid, "lang": lang}),
        parse=UserInfo.from_api,
        idempotent=True,
    )


def batch_user_info(
    openids: Sequence[str], *, lang: str = "zh_CN"
) -> ApiCall[tuple[UserInfo, ...]]:
    """``POST /cgi-bin/user/info/batchget`` for 1..100 openids (the client chunks).

    Raises:
        UsageError: for an empty list or more than 100 openids.
    """
    if not 1 <= len(openids) <= BATCH_INFO_MAX:
        raise UsageError(f"batch_user_info takes 1..{BATCH_INFO_MAX} openids, got {len(openids)}")
    body = {"user_list": [{"openid": o, "lang": lang} for o in openids]}
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/user/info/batchget", body),
        parse=lambda d: tuple(UserInfo.from_api(u) for u in d.get("user_info_list") or ()),
        idempotent=True,
    )

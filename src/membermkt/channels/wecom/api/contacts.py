"""External contacts (客户, reference §3.2) and ID conversion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import EC, get, need, post, strs
from membermkt.errors import UsageError

__all__ = [
    "BATCH_LIMIT_MAX",
    "BATCH_USERIDS_MAX",
    "ContactDetail",
    "ContactPage",
    "ExternalContact",
    "FollowInfo",
    "batch_get_by_user",
    "convert_to_openid",
    "follow_users",
    "get_contact",
    "list_contacts",
    "unionid_to_external_userid",
]

BATCH_USERIDS_MAX = 100
"""``batch/get_by_user``: most staff userids per call."""
BATCH_LIMIT_MAX = 100
"""``batch/get_by_user``: most customers per page."""


def _tag_ids(tags: Any) -> tuple[str, ...]:
    out: list[str] = []
    for t in tags or ():
        if isinstance(t, Mapping):
            tid = t.get("tag_id")
            if tid:
                out.append(str(tid))
        elif t:
            out.append(str(t))
    return tuple(out)


@attrs.frozen(slots=True, kw_only=True)
class FollowInfo:
    """One staff member's relation to a customer (``follow_user[]`` / ``follow_info``).

    Attributes:
        userid: the staff member.
        remark, description: the staff member's notes.
        createtime: when the customer was added (unix seconds).
        tag_ids: corp tag ids on this relation.
        state: the contact way's / acquisition link's ``state`` — the attribution key.
        add_way, oper_userid: how and by whom the customer was added.
        raw: the platform's object.
    """

    userid: str
    remark: str = ""
    description: str = ""
    createtime: int | None = None
    tag_ids: tuple[str, ...] = ()
    state: str | None = None
    add_way: int | None = None
    oper_userid: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> FollowInfo:
        tags = d.get("tag_id") if "tag_id" in d else d.get("tags")
        return cls(
            userid=str(d.get("userid", "")),
            remark=str(d.get("remark") or ""),
            description=str(d.get("description") or ""),
            createtime=d.get("createtime"),
            tag_ids=_tag_ids(tags),
            state=d.get("state") or None,
            add_way=d.get("add_way"),
            oper_userid=d.get("oper_userid") or None,
            raw=dict(d),
        )


@attrs.frozen(slots=True, kw_only=True)
class ExternalContact:
    """A customer (``external_contact``): ``type`` 1 = WeChat user, 2 = WeCom user."""

    external_userid: str
    name: str = ""
    type: int | None = None
    avatar: str = ""
    gender: int | None = None
    unionid: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ExternalContact:
        return cls(
            external_userid=str(d.get("external_userid", "")),
            name=str(d.get("name") or ""),
            type=d.get("type"),
            avatar=str(d.get("avatar") or ""),
            gender=d.get("gender"),
            unionid=d.get("unionid") or None,
            raw=dict(d),
        )


@attrs.frozen(slots=True, kw_only=True)
class ContactDetail:
    """``externalcontact/get``: the customer, its staff relations and a paging cursor
    (paging over very many follow users is **unconfirmed** in the reference)."""

    contact: ExternalContact
    follow_users: tuple[FollowInfo, ...]
    next_cursor: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ContactDetail:
        api = f"{EC}/get"
        return cls(
            contact=ExternalContact.from_api(need(d, "external_contact", api)),
            follow_users=tuple(FollowInfo.from_api(f) for f in d.get("follow_user") or ()),
            next_cursor=d.get("next_cursor") or None,
        )


@attrs.frozen(slots=True, kw_only=True)
class ContactPage:
    """One page of ``batch/get_by_user``: (customer, relation) pairs and the next cursor."""

    items: tuple[tuple[ExternalContact, FollowInfo], ...]
    next_cursor: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ContactPage:
        items = tuple(
            (
                ExternalContact.from_api(e.get("external_contact") or {}),
                FollowInfo.from_api(e.get("follow_info") or {}),
            )
            for e in d.get("external_contact_list") or ()
        )
        return cls(items=items, next_cursor=d.get("next_cursor") or None)


def follow_users() -> ApiCall[tuple[str, ...]]:
    """``GET /externalcontact/get_follow_user_list``: staff with customer contact enabled."""
    return get(
        f"{EC}/get_follow_user_list",
        {},
        lambda d: tuple(str(u) for u in d.get("follow_user") or ()),
    )


def list_contacts(userid: str) -> ApiCall[tuple[str, ...]]:
    """``GET /externalcontact/list?userid=``: a staff member's customers (84061, "none", is
    answered as an empty tuple)."""
    return get(
        f"{EC}/list",
        {"userid": userid},
        lambda d: tuple(str(u) for u in d.get("external_userid") or ()),
        ok_codes=(84061,),
    )


def get_contact(external_userid: str, cursor: str | None = None) -> ApiCall[ContactDetail]:
    """``GET /externalcontact/get?external_userid=``."""
    params = {"external_userid": external_userid}
    if cursor:
        params["cursor"] = cursor
    return get(f"{EC}/get", params, ContactDetail.from_api)


def batch_get_by_user(
    userids: Sequence[str], cursor: str | None = None, limit: int = 50
) -> ApiCall[ContactPage]:
    """``POST /externalcontact/batch/get_by_user``: ≤ 100 userids, ``limit`` ≤ 100.

    Raises:
        UsageError: for no userids, more than 100, or a limit outside 1..100.
    """
    ids = strs(userids, "userids", max_items=BATCH_USERIDS_MAX)
    if not ids:
        raise UsageError("batch/get_by_user needs at least one userid")
    if not 1 <= limit <= BATCH_LIMIT_MAX:
        raise UsageError(f"batch/get_by_user limit must be 1..{BATCH_LIMIT_MAX}, got {limit}")
    body = {"userid_list": ids, "cursor": cursor or "", "limit": limit}
    return post(f"{EC}/batch/get_by_user", body, ContactPage.from_api, idempotent=True)


def unionid_to_external_userid(unionid: str, openid: str) -> ApiCall[str]:
    """``POST /externalcontact/unionid_to_external_userid`` → the customer's
    external_userid in this corp.

    The reference names the path only; the body ``{unionid, openid}`` and the
    ``external_userid`` answer follow WxJava's ``unionidToExternalUserid``
    (**unconfirmed** here).
    """
    api = f"{EC}/unionid_to_external_userid"
    return post(
        api,
        {"unionid": unionid, "openid": openid},
        lambda d: str(need(d, "external_userid", api)),
        idempotent=True,
    )


def convert_to_openid(external_userid: str) -> ApiCall[str]:
    """``POST /externalcontact/convert_to_openid`` → the customer's openid (body and answer
    shape follow WxJava; **unconfirmed** in the reference)."""
    api = f"{EC}/convert_to_openid"
    return post(
        api,
        {"external_userid": external_userid},
        lambda d: str(need(d, "openid", api)),
        idempotent=True,
    )

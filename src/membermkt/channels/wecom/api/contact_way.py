"""Contact ways (「联系我」/ 渠道活码, reference §3.6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import EC, need, post, strs
from membermkt.channels.wecom.state import STATE_MAX
from membermkt.errors import UsageError

__all__ = [
    "REMARK_MAX",
    "ContactWay",
    "ContactWayPage",
    "add_contact_way",
    "del_contact_way",
    "get_contact_way",
    "list_contact_ways",
    "update_contact_way",
]

REMARK_MAX = 30
_TEMP_EXPIRES_MAX = 14 * 86400


@attrs.frozen(slots=True, kw_only=True)
class ContactWay:
    """A contact way. ``config_id`` cannot be recovered once lost: store it.

    Attributes:
        config_id: the id.
        qr_code: the QR image URL (scene 2).
        type: 1 single member, 2 several.
        scene: 1 mini-program button, 2 QR code.
        state: the channel tag returned in add events and customer details.
        users: the staff userids.
        remark: the note.
        raw: the platform's object.
    """

    config_id: str
    qr_code: str | None = None
    type: int | None = None
    scene: int | None = None
    state: str | None = None
    users: tuple[str, ...] = ()
    remark: str = ""
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ContactWay:
        return cls(
            config_id=str(d.get("config_id", "")),
            qr_code=d.get("qr_code") or None,
            type=d.get("type"),
            scene=d.get("scene"),
            state=d.get("state") or None,
            users=tuple(str(u) for u in d.get("user") or ()),
            remark=str(d.get("remark") or ""),
            raw=dict(d),
        )


@attrs.frozen(slots=True, kw_only=True)
class ContactWayPage:
    """A page of contact-way config ids."""

    config_ids: tuple[str, ...]
    next_cursor: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ContactWayPage:
        ids = tuple(str(c.get("config_id", "")) for c in d.get("contact_way") or ())
        return cls(config_ids=ids, next_cursor=d.get("next_cursor") or None)


def _spec(
    *,
    state: str | None,
    remark: str | None,
    skip_verify: bool | None,
    style: int | None,
    expires_in: int | None,
    chat_expires_in: int | None,
    is_temp: bool | None,
) -> dict[str, Any]:
    if state is not None and len(state) > STATE_MAX:
        raise UsageError(f"state {state!r} is over {STATE_MAX} characters (use encode_state)")
    if remark is not None and len(remark) > REMARK_MAX:
        raise UsageError(f"remark is over {REMARK_MAX} characters")
    for name, v in (("expires_in", expires_in), ("chat_expires_in", chat_expires_in)):
        if v is not None and not 1 <= v <= _TEMP_EXPIRES_MAX:
            raise UsageError(f"{name} must be 1..{_TEMP_EXPIRES_MAX} seconds (14 days)")
    return {
        "state": state,
        "remark": remark,
        "skip_verify": skip_verify,
        "style": style,
        "expires_in": expires_in,
        "chat_expires_in": chat_expires_in,
        "is_temp": is_temp,
    }


def add_contact_way(
    *,
    users: Sequence[str] = (),
    parties: Sequence[int] = (),
    type: int = 1,
    scene: int = 2,
    state: str | None = None,
    remark: str | None = None,
    skip_verify: bool | None = None,
    style: int | None = None,
    is_temp: bool | None = None,
    expires_in: int | None = None,
    chat_expires_in: int | None = None,
    unionid: str | None = None,
    is_exclusive: bool | None = None,
    conclusions: Mapping[str, Any] | None = None,
) -> ApiCall[ContactWay]:
    """``POST /externalcontact/add_contact_way`` → ``config_id`` (and ``qr_code`` for scene 2).

    Not idempotent: a retried call after a lost answer creates a second way.

    Raises:
        UsageError: for a type/scene outside 1..2, type 1 without exactly one user, a state
            over 30 characters, a remark over 30, or temp expiries above 14 days.
    """
    if type not in (1, 2) or scene not in (1, 2):
        raise UsageError("contact way type and scene must be 1 or 2")
    user_list = strs(users, "users")
    if type == 1 and (len(user_list) != 1 or parties):
        raise UsageError("a type-1 contact way takes exactly one user")
    if type == 2 and not (user_list or parties):
        raise UsageError("a type-2 contact way needs users or parties")
    body = {
        "type": type,
        "scene": scene,
        "user": user_list or None,
        "party": list(parties) or None,
        "unionid": unionid,
        "is_exclusive": is_exclusive,
        "conclusions": dict(conclusions) if conclusions else None,
        **_spec(
            state=state,
            remark=remark,
            skip_verify=skip_verify,
            style=style,
            expires_in=expires_in,
            chat_expires_in=chat_expires_in,
            is_temp=is_temp,
        ),
    }
    api = f"{EC}/add_contact_way"
    return post(
        api,
        body,
        lambda d: ContactWay(
            config_id=str(need(d, "config_id", api)),
            qr_code=d.get("qr_code") or None,
            type=type,
            scene=scene,
            state=state,
            users=tuple(user_list),
            remark=remark or "",
        ),
    )


def get_contact_way(config_id: str) -> ApiCall[ContactWay]:
    """``POST /externalcontact/get_contact_way``."""
    api = f"{EC}/get_contact_way"
    return post(
        api,
        {"config_id": config_id},
        lambda d: ContactWay.from_api(need(d, "contact_way", api)),
        idempotent=True,
    )


def update_contact_way(
    config_id: str,
    *,
    users: Sequence[str] | None = None,
    state: str | None = None,
    remark: str | None = None,
    skip_verify: bool | None = None,
    style: int | None = None,
    expires_in: int | None = None,
    chat_expires_in: int | None = None,
) -> ApiCall[None]:
    """``POST /externalcontact/update_contact_way`` (only the given fields change).

    Raises:
        UsageError: for a state or remark over 30 characters.
    """
    body = {
        "config_id": config_id,
        "user": strs(users, "users") if users is not None else None,
        **_spec(
            state=state,
            remark=remark,
            skip_verify=skip_verify,
            style=style,
            expires_in=expires_in,
            chat_expires_in=chat_expires_in,
            is_temp=None,
        ),
    }
    return post(f"{EC}/update_contact_way", body, lambda d: None, idempotent=True)


def del_contact_way(config_id: str) -> ApiCall[None]:
    """``POST /externalcontact/del_contact_way``."""
    return post(f"{EC}/del_contact_way", {"config_id": config_id}, lambda d: None, idempotent=True)


def list_contact_ways(
    *,
    start_time: int | None = None,
    end_time: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> ApiCall[ContactWayPage]:
    """``POST /externalcontact/list_contact_way``: a page of config ids (the reference only
    says "a list endpoint"; path and fields follow WxJava — **unconfirmed** here).

    Raises:
        UsageError: for a limit outside 1..1000.
    """
    if not 1 <= limit <= 1000:
        raise UsageError(f"list_contact_way limit must be 1..1000, got {limit}")
    body = {"start_time": start_time, "end_time": end_time, "cursor": cursor, "limit": limit}
    return post(f"{EC}/list_contact_way", body, ContactWayPage.from_api, idempotent=True)

"""Constants, the refusal exception and the state records of the WeCom emulator."""

from __future__ import annotations

from typing import Any

import attrs

FAULTS = ("busy", "throttle", "concurrency", "token_invalidate", "http5xx", "timeout", "drop")
WELCOME_WINDOW = 20.0
"""Seconds a welcome code stays usable after the add event (reference §3.5)."""
MAX_CORP_TAGS = 3000
REMINDS_PER_DAY = 3
CHATS_MAX = 2000
"""Customer groups per ``add_msg_template`` with ``chat_type=group`` (reference §3.4)."""
EC = "/cgi-bin/externalcontact"
_INVALID = 40058  # emulator choice: a generic "invalid parameter" code (not in the reference)


class _Refuse(Exception):
    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errcode, errmsg)
        self.errcode, self.errmsg, self.extra = errcode, errmsg, extra


@attrs.define
class Customer:
    """An external contact (mutable emulator state)."""

    external_userid: str
    name: str = ""
    type: int = 1
    gender: int = 0
    unionid: str | None = None
    openid: str | None = None


@attrs.define
class Relation:
    """One staff member ↔ customer relation."""

    userid: str
    external_userid: str
    createtime: int
    state: str | None = None
    remark: str = ""
    tag_ids: set[str] = attrs.field(factory=set)
    chatting: bool = False
    last_chat_at: float = 0.0


@attrs.define
class _Welcome:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@attrs.frozen(slots=True)
class WelcomeReceipt:
    """A welcome message a customer received; ``latency`` = seconds after the add event."""

    code: str
    userid: str
    external_userid: str
    text: str | None
    attachments: int
    at: float
    latency: float


@attrs.frozen(slots=True)
class MassReceipt:
    """A mass message a customer received (after the sender confirmed)."""

    msgid: str
    userid: str
    external_userid: str
    at: float


@attrs.frozen(slots=True)
class GroupMassReceipt:
    """A mass message a customer group received (after its owner confirmed)."""

    msgid: str
    userid: str
    chat_id: str
    at: float


@attrs.define
class _Way:
    config_id: str
    type: int
    scene: int
    users: list[str]
    state: str | None
    remark: str
    created_at: float
    extra: dict[str, Any] = attrs.field(factory=dict)
    next_user: int = 0


@attrs.define
class _Tag:
    id: str
    name: str
    order: int
    create_time: int


@attrs.define
class _Group:
    group_id: str
    group_name: str
    order: int
    create_time: int
    tags: dict[str, _Tag] = attrs.field(factory=dict)


@attrs.define
class _Mass:
    msgid: str
    creator: str | None
    create_time: int
    chat_type: str
    text: str | None
    attachments: list[Any]
    targets: dict[str, list[str]]
    tasks: dict[str, tuple[int, int | None]] = attrs.field(factory=dict)
    results: dict[tuple[str, str], tuple[int, int | None]] = attrs.field(factory=dict)
    cancelled: bool = False
    reminds: list[float] = attrs.field(factory=list)

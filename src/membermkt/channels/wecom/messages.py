"""Typed WeCom customer-contact callback events (sans-I/O).

:func:`parse_message` reads a decrypted WeCom callback and returns a frozen value. The
customer-contact events (reference §3.8) are typed here; everything else (app text
messages, other events) is parsed by the official-account parser, which WeCom shares
(``ToUserName``/``FromUserName``/``CreateTime``/``MsgType`` are the same fields).

* ``change_external_contact`` → :class:`ExternalContactEvent` with ``change_type`` ∈
  ``add_external_contact``, ``add_half_external_contact``, ``edit_external_contact``,
  ``del_external_contact``, ``del_follow_user``, ``transfer_fail`` and the fields
  ``UserID``, ``ExternalUserID``, ``State``, ``WelcomeCode``, ``FailReason``, ``Source``
  (``Source`` on ``del_external_contact`` is **unconfirmed** in the reference).
* ``change_external_chat`` → :class:`ExternalChatEvent` (``ChatId``, ``ChangeType``,
  ``UpdateDetail``).
* ``change_external_tag`` → :class:`ExternalTagEvent` (``Id``, ``TagType``, ``ChangeType``).
* ``customer_acquisition`` → :class:`CustomerAcquisitionEvent` (``ChangeType``).

Change types WeCom adds later keep their string in ``change_type`` — never an error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from membermkt.channels.wechat._xml import DEFAULT_MAX_XML, parse_fields
from membermkt.channels.wechat.messages import BaseEvent, BaseMessage, message_from_fields

__all__ = [
    "CHANGE_TYPES",
    "WECOM_EVENTS",
    "CustomerAcquisitionEvent",
    "ExternalChatEvent",
    "ExternalContactEvent",
    "ExternalTagEvent",
    "event_from_fields",
    "parse_message",
]

Fields = Mapping[str, str]

CHANGE_TYPES: Final = (
    "add_external_contact",
    "add_half_external_contact",
    "edit_external_contact",
    "del_external_contact",
    "del_follow_user",
    "transfer_fail",
)
"""The ``change_external_contact`` change types of reference §3.8."""


def _opt(f: Fields, name: str) -> str | None:
    v = f.get(name)
    return v if v else None


@attrs.frozen(slots=True, kw_only=True)
class ExternalContactEvent(BaseEvent):
    """A customer-contact change (``Event`` ``change_external_contact``).

    Attributes:
        change_type: ``ChangeType`` (see :data:`CHANGE_TYPES`).
        user_id: ``UserID`` — the staff member (企业成员).
        external_userid: ``ExternalUserID`` — the customer.
        state: ``State`` — the contact way's / acquisition link's channel (adds only).
        welcome_code: ``WelcomeCode`` — usable once, within 20 s (adds only; absent when the
            admin configured a console welcome or the chat already started).
        fail_reason: ``FailReason`` (``transfer_fail``: ``customer_refused`` |
            ``customer_limit_exceed``).
        source: ``Source`` (``del_external_contact``, e.g. ``DELETE_BY_TRANSFER``;
            unconfirmed field).
    """

    change_type: str
    user_id: str
    external_userid: str
    state: str | None
    welcome_code: str | None
    fail_reason: str | None
    source: str | None

    @property
    def corpid(self) -> str:
        """``ToUserName``: the corp."""
        return self.to_user

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ExternalContactEvent:
        return cls(
            change_type=f.get("ChangeType", ""),
            user_id=f.get("UserID", ""),
            external_userid=f.get("ExternalUserID", ""),
            state=_opt(f, "State"),
            welcome_code=_opt(f, "WelcomeCode"),
            fail_reason=_opt(f, "FailReason"),
            source=_opt(f, "Source"),
            **cls._event_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class ExternalChatEvent(BaseEvent):
    """A customer-group change (``change_external_chat``): ``change_type`` ∈ ``create``,
    ``update``, ``dismiss``; for ``update``, ``update_detail`` ∈ ``add_member``,
    ``del_member``, ``change_owner``, ``change_name``, ``change_notice``."""

    change_type: str
    chat_id: str
    update_detail: str | None

    @property
    def corpid(self) -> str:
        return self.to_user

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ExternalChatEvent:
        return cls(
            change_type=f.get("ChangeType", ""),
            chat_id=f.get("ChatId", ""),
            update_detail=_opt(f, "UpdateDetail"),
            **cls._event_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class ExternalTagEvent(BaseEvent):
    """A corp-tag change (``change_external_tag``): ``tag_type`` ∈ ``tag``, ``tag_group``;
    ``change_type`` ∈ ``create``, ``update``, ``delete``, ``shuffle``."""

    change_type: str
    tag_id: str
    tag_type: str

    @property
    def corpid(self) -> str:
        return self.to_user

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ExternalTagEvent:
        return cls(
            change_type=f.get("ChangeType", ""),
            tag_id=f.get("Id", ""),
            tag_type=f.get("TagType", ""),
            **cls._event_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class CustomerAcquisitionEvent(BaseEvent):
    """An acquisition-link event (``customer_acquisition``, reference §3.9): ``change_type``
    ∈ ``balance_low``, ``balance_exhausted``, ``link_unavailable``, ``customer_start_chat``,
    ``delete_link``, ``friend_request``; other fields are in :attr:`raw`."""

    change_type: str

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> CustomerAcquisitionEvent:
        return cls(change_type=f.get("ChangeType", ""), **cls._event_kwargs(f))


_Factory = Callable[[Fields, ET.Element | None], BaseMessage]

WECOM_EVENTS: Final[Mapping[str, _Factory]] = {
    "change_external_contact": ExternalContactEvent.from_xml_fields,
    "change_external_chat": ExternalChatEvent.from_xml_fields,
    "change_external_tag": ExternalTagEvent.from_xml_fields,
    "customer_acquisition": CustomerAcquisitionEvent.from_xml_fields,
}
"""``Event`` (lower-case) → factory for the WeCom customer-contact events."""


def event_from_fields(fields: Fields, root: ET.Element | None = None) -> BaseMessage:
    """The typed WeCom event for already extracted leaf ``fields`` (used by the
    official-account parser too, so :func:`membermkt.channels.wechat.parse_message`
    understands WeCom events). ``root`` is needed only for nested elements.

    Raises:
        DecryptError: when a required common field is missing or malformed.
    """
    factory = WECOM_EVENTS.get(fields.get("Event", "").lower())
    if factory is None:
        return message_from_fields(fields, root)
    return factory(fields, root)


def parse_message(xml: str | bytes, *, max_size: int = DEFAULT_MAX_XML) -> BaseMessage:
    """Parse a decrypted WeCom callback into a typed value (the shared hardened reader:
    flat documents take its fast path, anything else the guarded full parser).

    Returns:
        An :class:`ExternalContactEvent`, :class:`ExternalChatEvent`,
        :class:`ExternalTagEvent`, :class:`CustomerAcquisitionEvent`, or whatever the
        official-account parser makes of other pushes (``TextMessage``, ``UnknownEvent`` …).

    Raises:
        DecryptError: when the document is oversized, declares a DTD or entities, is not
            well-formed, or lacks ``FromUserName``/``CreateTime``.
    """
    fields, root = parse_fields(xml, max_size=max_size)
    if fields.get("MsgType", "").lower() == "event":
        return event_from_fields(fields, root)
    return message_from_fields(fields, root)

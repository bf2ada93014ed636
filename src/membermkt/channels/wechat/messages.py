"""Typed messages and events pushed by a WeChat official account (sans-I/O).

:func:`parse_message` turns the (decrypted) callback XML into a frozen value. Every value
has ``.type`` (``MsgType`` lower-cased), ``.openid`` (``FromUserName``), ``.to_user``
(``ToUserName``, the account's ``gh_`` id), ``.created_at`` (aware UTC datetime) and
``.raw`` (every leaf field as text, for anything not modelled). Events add ``.event``
(lower-cased, as wechatpy dispatches them) and ``.key`` (``EventKey``). Kinds the platform
adds later become :class:`UnknownMessage` / :class:`UnknownEvent`, never an error.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from membermkt.channels.wechat._xml import DEFAULT_MAX_XML, parse_fields
from membermkt.errors import MalformedPushError

__all__ = [
    "BaseEvent",
    "BaseMessage",
    "ClickEvent",
    "ImageMessage",
    "LinkMessage",
    "LocationEvent",
    "LocationMessage",
    "MassSendJobFinishEvent",
    "ScanEvent",
    "SubscribeEvent",
    "SubscribeMsgChangeEvent",
    "SubscribeMsgItem",
    "SubscribeMsgPopupEvent",
    "SubscribeMsgSentEvent",
    "TemplateSendJobFinishEvent",
    "TextMessage",
    "UnknownEvent",
    "UnknownMessage",
    "UnsubscribeEvent",
    "VideoMessage",
    "ViewEvent",
    "VoiceMessage",
    "parse_message",
]

_UTC = dt.UTC
QR_PREFIX = "qrscene_"

Fields = Mapping[str, str]


_DIGITS = re.compile(r"[0-9]{1,13}")
_MAX_OPENID = 128
"""Longest accepted ``FromUserName`` (openids are 28 characters; external ids ~32).
Unconfirmed: the platform documents no maximum; 128 leaves ample room."""


def _base_kwargs(f: Fields) -> dict[str, Any]:
    openid = f.get("FromUserName")
    raw_time = f.get("CreateTime")
    if openid is None:
        raise MalformedPushError("callback XML lacks the FromUserName field", field="FromUserName")
    if raw_time is None:
        raise MalformedPushError("callback XML lacks the CreateTime field", field="CreateTime")
    # isprintable() refuses control characters and every space but ' ' (refused apart).
    if not (0 < len(openid) <= _MAX_OPENID and openid.isprintable() and " " not in openid):
        raise MalformedPushError(
            f"callback FromUserName is empty, over {_MAX_OPENID} characters or has "
            f"spaces/control characters ({len(openid)} characters)",
            field="FromUserName",
        )
    # ASCII digits only: int() would also take " 12 ", "1_000" and full-width digits.
    if not (raw_time.isascii() and raw_time.isdigit() and len(raw_time) <= 13):
        raise MalformedPushError(
            f"callback CreateTime is not a plain integer: {raw_time[:20]!r}", field="CreateTime"
        )
    create_time = int(raw_time)
    if create_time >= 1 << 40:
        raise MalformedPushError(
            f"callback CreateTime out of range: {create_time}", field="CreateTime"
        )
    return {
        "type": f.get("MsgType", "").lower(),
        "openid": openid,
        "to_user": f.get("ToUserName", ""),
        "create_time": create_time,
        "raw": MappingProxyType(f if isinstance(f, dict) else dict(f)),
    }


def _int(f: Fields, name: str) -> int | None:
    v = f.get(name)
    if v is None or not _DIGITS.fullmatch(v):
        return None
    return int(v)


_DECIMAL = re.compile(r"-?[0-9]{1,4}(?:\.[0-9]{1,12})?")


def _float(f: Fields, name: str) -> float | None:
    # Plain ASCII decimals only: float() would also take " 1 ", "1_0", "nan", full-width digits.
    v = f.get(name)
    if v is None or not _DECIMAL.fullmatch(v):
        return None
    return float(v)


@attrs.frozen(slots=True, kw_only=True)
class BaseMessage:
    """Fields every push has.

    Attributes:
        type: ``MsgType`` lower-cased (``"text"``, ``"event"``, …).
        openid: ``FromUserName`` — the follower's openid.
        to_user: ``ToUserName`` — the account's original id (``gh_…``).
        create_time: ``CreateTime`` (unix seconds).
        created_at: the same as an aware UTC datetime.
        raw: every leaf field as text, keyed by its XML tag (a read-only mapping).
    """

    type: str
    openid: str
    to_user: str
    create_time: int
    raw: Mapping[str, str] = attrs.field(repr=False, eq=False)

    @property
    def created_at(self) -> dt.datetime:
        """``CreateTime`` as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.create_time, _UTC)

    @property
    def msg_id(self) -> str | None:
        """``MsgId`` (``MsgID`` for job events), when the push has one."""
        mid: str | None = self.raw.get("MsgId") or self.raw.get("MsgID")
        return mid

    @property
    def dedup_id(self) -> str:
        """The platform's re-push identity: ``MsgId`` for messages, else
        ``FromUserName:CreateTime:Event`` (reference §2.2)."""
        mid: str | None = self.raw.get("MsgId")
        if mid:
            return mid
        return f"{self.openid}:{self.create_time}:{self.raw.get('Event', '')}"


# ---------------------------------------------------------------------- messages


@attrs.frozen(slots=True, kw_only=True)
class TextMessage(BaseMessage):
    """A text message (``Content``)."""

    content: str

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> TextMessage:
        return cls(content=f.get("Content", ""), **_base_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class ImageMessage(BaseMessage):
    """An image message."""

    pic_url: str
    media_id: str

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ImageMessage:
        return cls(pic_url=f.get("PicUrl", ""), media_id=f.get("MediaId", ""), **_base_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class VoiceMessage(BaseMessage):
    """A voice message; ``recognition`` is set when speech recognition is enabled."""

    media_id: str
    format: str
    recognition: str | None

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> VoiceMessage:
        return cls(
            media_id=f.get("MediaId", ""),
            format=f.get("Format", ""),
            recognition=f.get("Recognition"),
            **_base_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class VideoMessage(BaseMessage):
    """A video or short video message (``type`` is ``"video"`` or ``"shortvideo"``)."""

    media_id: str
    thumb_media_id: str

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> VideoMessage:
        return cls(
            media_id=f.get("MediaId", ""),
            thumb_media_id=f.get("ThumbMediaId", ""),
            **_base_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class LocationMessage(BaseMessage):
    """A location the user sent (``Location_X`` is the latitude, ``Location_Y`` the
    longitude)."""

    latitude: float | None
    longitude: float | None
    scale: int | None
    label: str

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> LocationMessage:
        return cls(
            latitude=_float(f, "Location_X"),
            longitude=_float(f, "Location_Y"),
            scale=_int(f, "Scale"),
            label=f.get("Label", ""),
            **_base_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class LinkMessage(BaseMessage):
    """A link the user shared."""

    title: str
    description: str
    url: str

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> LinkMessage:
        return cls(
            title=f.get("Title", ""),
            description=f.get("Description", ""),
            url=f.get("Url", ""),
            **_base_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class UnknownMessage(BaseMessage):
    """A message kind membermkt does not model yet; read :attr:`raw`."""

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> UnknownMessage:
        return cls(**_base_kwargs(f))


# ---------------------------------------------------------------------- events


@attrs.frozen(slots=True, kw_only=True)
class BaseEvent(BaseMessage):
    """Fields every event has.

    Attributes:
        event: ``Event`` lower-cased (``"subscribe"``, ``"scan"``, ``"click"``, …).
        key: ``EventKey`` (``None`` when absent).
    """

    event: str
    key: str | None

    @classmethod
    def _event_kwargs(cls, f: Fields) -> dict[str, Any]:
        kw = _base_kwargs(f)
        kw["event"] = f.get("Event", "").lower()
        kw["key"] = f.get("EventKey")
        return kw


@attrs.frozen(slots=True, kw_only=True)
class SubscribeEvent(BaseEvent):
    """A follow. Through a parametric QR code ``key`` is ``qrscene_<scene>`` and
    :attr:`scene` the scene without the prefix; ``ticket`` is the QR ticket."""

    scene: str | None
    ticket: str | None

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> SubscribeEvent:
        kw = cls._event_kwargs(f)
        key = kw["key"]
        scene = key[len(QR_PREFIX) :] if key and key.startswith(QR_PREFIX) else None
        return cls(scene=scene or None, ticket=f.get("Ticket") or None, **kw)


@attrs.frozen(slots=True, kw_only=True)
class UnsubscribeEvent(BaseEvent):
    """An unfollow."""

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> UnsubscribeEvent:
        return cls(**cls._event_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class ScanEvent(BaseEvent):
    """A follower scanned a parametric QR code (``Event`` ``SCAN``); ``key`` is the scene
    (no prefix)."""

    scene: str | None
    ticket: str | None

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ScanEvent:
        kw = cls._event_kwargs(f)
        key = kw["key"]
        if key and key.startswith(QR_PREFIX):  # defensive: some relays keep the prefix
            key = key[len(QR_PREFIX) :]
        return cls(scene=key or None, ticket=f.get("Ticket") or None, **kw)


@attrs.frozen(slots=True, kw_only=True)
class LocationEvent(BaseEvent):
    """The follower's reported location (``Event`` ``LOCATION``)."""

    latitude: float | None
    longitude: float | None
    precision: float | None

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> LocationEvent:
        return cls(
            latitude=_float(f, "Latitude"),
            longitude=_float(f, "Longitude"),
            precision=_float(f, "Precision"),
            **cls._event_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class ClickEvent(BaseEvent):
    """A click on a menu button; ``key`` is the button key."""

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ClickEvent:
        return cls(**cls._event_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class ViewEvent(BaseEvent):
    """A click on a view (link) menu button; ``key`` and :attr:`url` are the URL.
    ``menu_id`` is the ``MenuId`` field when present (its presence is unconfirmed)."""

    url: str
    menu_id: str | None

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> ViewEvent:
        kw = cls._event_kwargs(f)
        return cls(url=kw["key"] or "", menu_id=f.get("MenuId"), **kw)


@attrs.frozen(slots=True, kw_only=True)
class MassSendJobFinishEvent(BaseEvent):
    """A mass-send job nearly finished (counts are approximate; reconcile with
    ``mass/get``). ``status`` is ``send success``, ``send fail`` or ``err(num)``."""

    job_msg_id: str
    status: str
    total_count: int | None
    filter_count: int | None
    sent_count: int | None
    error_count: int | None

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> MassSendJobFinishEvent:
        return cls(
            job_msg_id=f.get("MsgID") or f.get("MsgId") or "",
            status=f.get("Status", ""),
            total_count=_int(f, "TotalCount"),
            filter_count=_int(f, "FilterCount"),
            sent_count=_int(f, "SentCount"),
            error_count=_int(f, "ErrorCount"),
            **cls._event_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class TemplateSendJobFinishEvent(BaseEvent):
    """A template message's delivery result: ``status`` is ``success``,
    ``failed:user block`` or ``failed: system failed`` (sic)."""

    job_msg_id: str
    status: str

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> TemplateSendJobFinishEvent:
        return cls(
            job_msg_id=f.get("MsgID") or f.get("MsgId") or "",
            status=f.get("Status", ""),
            **cls._event_kwargs(f),
        )


@attrs.frozen(slots=True, kw_only=True)
class SubscribeMsgItem:
    """One template in a subscribe-message event's ``List``."""

    template_id: str
    status: str | None = None
    popup_scene: str | None = None
    msg_id: str | None = None
    error_code: str | None = None
    error_status: str | None = None


def _subscribe_items(root: ET.Element | None, container: str) -> tuple[SubscribeMsgItem, ...]:
    box = root.find(container) if root is not None else None
    if box is None:
        return ()
    return tuple(
        SubscribeMsgItem(
            template_id=node.findtext("TemplateId") or "",
            status=node.findtext("SubscribeStatusString"),
            popup_scene=node.findtext("PopupScene"),
            msg_id=node.findtext("MsgID"),
            error_code=node.findtext("ErrorCode"),
            error_status=node.findtext("ErrorStatus"),
        )
        for node in box.iter("List")
    )


@attrs.frozen(slots=True, kw_only=True)
class SubscribeMsgPopupEvent(BaseEvent):
    """The user answered a subscribe-message popup; ``items`` hold the accepted/rejected
    templates (``status`` ``accept`` | ``reject``)."""

    items: tuple[SubscribeMsgItem, ...]

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> SubscribeMsgPopupEvent:
        return cls(items=_subscribe_items(root, "SubscribeMsgPopupEvent"), **cls._event_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class SubscribeMsgChangeEvent(BaseEvent):
    """The user changed subscriptions in the settings (event name unconfirmed by the
    reference: ``subscribe_msg_change_event``)."""

    items: tuple[SubscribeMsgItem, ...]

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> SubscribeMsgChangeEvent:
        return cls(items=_subscribe_items(root, "SubscribeMsgChangeEvent"), **cls._event_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class SubscribeMsgSentEvent(BaseEvent):
    """A subscribe message's send result (event name unconfirmed by the reference:
    ``subscribe_msg_sent_event``)."""

    items: tuple[SubscribeMsgItem, ...]

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> SubscribeMsgSentEvent:
        return cls(items=_subscribe_items(root, "SubscribeMsgSentEvent"), **cls._event_kwargs(f))


@attrs.frozen(slots=True, kw_only=True)
class UnknownEvent(BaseEvent):
    """An event kind membermkt does not model yet; read :attr:`raw`."""

    @classmethod
    def from_xml_fields(cls, f: Fields, root: ET.Element | None) -> UnknownEvent:
        return cls(**cls._event_kwargs(f))


Message = BaseMessage
"""Any parsed push (alias of :class:`BaseMessage`)."""

_Factory = Callable[[Fields, ET.Element | None], BaseMessage]

_MESSAGES: dict[str, _Factory] = {
    "text": TextMessage.from_xml_fields,
    "image": ImageMessage.from_xml_fields,
    "voice": VoiceMessage.from_xml_fields,
    "video": VideoMessage.from_xml_fields,
    "shortvideo": VideoMessage.from_xml_fields,
    "location": LocationMessage.from_xml_fields,
    "link": LinkMessage.from_xml_fields,
}


def _wecom_event(f: Fields, root: ET.Element | None) -> BaseMessage:
    # WeCom customer-contact events share this envelope; typed in the WeCom package
    # (imported lazily: it builds on this module).
    from membermkt.channels.wecom.messages import event_from_fields

    if root is None:  # the fast path saw only leaf fields: rebuild the flat element
        root = ET.Element("xml")
        for tag, text in f.items():
            ET.SubElement(root, tag).text = text
    return event_from_fields(f, root)


_EVENTS: dict[str, _Factory] = {
    "subscribe": SubscribeEvent.from_xml_fields,
    "unsubscribe": UnsubscribeEvent.from_xml_fields,
    "scan": ScanEvent.from_xml_fields,
    "location": LocationEvent.from_xml_fields,
    "click": ClickEvent.from_xml_fields,
    "view": ViewEvent.from_xml_fields,
    "masssendjobfinish": MassSendJobFinishEvent.from_xml_fields,
    "templatesendjobfinish": TemplateSendJobFinishEvent.from_xml_fields,
    "subscribe_msg_popup_event": SubscribeMsgPopupEvent.from_xml_fields,
    "subscribe_msg_change_event": SubscribeMsgChangeEvent.from_xml_fields,
    "subscribe_msg_sent_event": SubscribeMsgSentEvent.from_xml_fields,
    "change_external_contact": _wecom_event,
    "change_external_chat": _wecom_event,
    "change_external_tag": _wecom_event,
    "customer_acquisition": _wecom_event,
}


def message_from_root(root: ET.Element) -> BaseMessage:
    """Build the typed value from an already parsed root element.

    Raises:
        MalformedPushError: when a required common field is missing or malformed.
    """
    fields = {child.tag: child.text or "" for child in root if len(child) == 0}
    return message_from_fields(fields, root)


def message_from_fields(fields: Fields, root: ET.Element | None = None) -> BaseMessage:
    """Build the typed value from leaf fields (and the root, for nested event data).

    Raises:
        MalformedPushError: when a required common field is missing or malformed.
    """
    msg_type = fields.get("MsgType", "").lower()
    if msg_type == "event":
        factory = _EVENTS.get(fields.get("Event", "").lower(), UnknownEvent.from_xml_fields)
    else:
        factory = _MESSAGES.get(msg_type, UnknownMessage.from_xml_fields)
    return factory(fields, root)


def parse_message(xml: str | bytes, *, max_size: int = DEFAULT_MAX_XML) -> BaseMessage:
    """Parse a (decrypted or plaintext-mode) callback XML into a typed message or event.

    Args:
        xml: the document, as str or UTF-8 bytes.
        max_size: the largest document accepted, in bytes (default 1 MiB).

    Returns:
        A :class:`BaseMessage` subclass: a message (``TextMessage`` …), an event
        (``SubscribeEvent`` …), or :class:`UnknownMessage` / :class:`UnknownEvent`.

    Raises:
        DecryptError: when the document is oversized, declares a DTD, entities or a
            non-UTF-8 encoding, or is not well-formed; its subclass
            :class:`~membermkt.errors.MalformedPushError` when ``FromUserName`` or
            ``CreateTime`` is missing or not a usable value.
    """
    fields, root = parse_fields(xml, max_size=max_size)
    return message_from_fields(fields, root)

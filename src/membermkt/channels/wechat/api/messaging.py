"""Mass send, template, subscribe and customer-service messages (reference §1.4–§1.6)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = [
    "CLIENTMSGID_MAX_BYTES",
    "MASS_MSGTYPES",
    "MASS_OPENIDS_MAX",
    "MASS_OPENIDS_MIN",
    "MassSend",
    "MassStatus",
    "clientmsgid_for",
    "delete_mass",
    "mass_status",
    "preview_mass",
    "send_custom",
    "send_mass",
    "send_mass_to_tag",
    "send_subscribe",
    "send_template",
]

MASS_OPENIDS_MIN = 2
MASS_OPENIDS_MAX = 10_000
CLIENTMSGID_MAX_BYTES = 64
MASS_MSGTYPES = frozenset({"mpnews", "text", "voice", "image", "images", "mpvideo", "wxcard"})
CUSTOM_MSGTYPES = frozenset(
    {
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "mpnews",
        "msgmenu",
        "wxcard",
        "miniprogrampage",
    }
)


@attrs.frozen(slots=True, kw_only=True)
class MassSend:
    """A mass-send job accepted by the platform (accepted, not yet delivered).

    Attributes:
        msg_id: the job id (poll :func:`mass_status`).
        msg_data_id: the article data id, when the platform returns one.
        duplicate: ``True`` when the platform answered 45065: the same ``clientmsgid``
            was already sent and ``msg_id`` is that earlier job's.
    """

    msg_id: str
    msg_data_id: str | None = None
    duplicate: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MassSend:
        return cls(
            msg_id=str(need(data, "msg_id", "/cgi-bin/message/mass/send")),
            msg_data_id=str(data["msg_data_id"]) if data.get("msg_data_id") else None,
            duplicate=data.get("errcode") == 45065,
        )


@attrs.frozen(slots=True, kw_only=True)
class MassStatus:
    """``mass/get``: ``SEND_SUCCESS``, ``SENDING``, ``SEND_FAIL`` or ``DELETE``."""

    msg_id: str
    status: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MassStatus:
        return cls(msg_id=str(data.get("msg_id", "")), status=str(data.get("msg_status", "")))


def clientmsgid_for(keys: Iterable[str], *, prefix: str = "mm") -> str:
    """A deterministic ``clientmsgid`` (≤ 64 bytes) for a set of delivery keys: the same set
    always gives the same id, in any order, so a retried batch is de-duplicated."""
    h = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:40]
    return f"{prefix}{h}"[:CLIENTMSGID_MAX_BYTES]


def _content(message: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise UsageError("message must be a mapping like {'msgtype': 'text', 'text': {...}}")
    msgtype = message.get("msgtype")
    if msgtype not in allowed:
        raise UsageError(f"msgtype must be one of {sorted(allowed)}, got {msgtype!r}")
    if msgtype not in message:
        raise UsageError(f"message lacks its {msgtype!r} content object")
    return {"msgtype": msgtype, msgtype: message[msgtype]}


def _check_clientmsgid(clientmsgid: str | None) -> None:
    if clientmsgid is not None and (
        not clientmsgid or len(clientmsgid.encode("utf-8")) > CLIENTMSGID_MAX_BYTES
    ):
        raise UsageError(f"clientmsgid must be 1..{CLIENTMSGID_MAX_BYTES} bytes")


def send_mass(
    openids: Sequence[str], message: Mapping[str, Any], *, clientmsgid: str | None = None
) -> ApiCall[MassSend]:
    """``POST /cgi-bin/message/mass/send`` to 2..10,000 openids (service accounts).

    With a ``clientmsgid`` the call is idempotent: the platform answers 45065 with the
    existing ``msg_id`` for a repeat, which is returned as ``MassSend(duplicate=True)``.

    Raises:
        UsageError: for fewer than 2 or more than 10,000 openids, duplicates, a bad
            message or a ``clientmsgid`` over 64 bytes.
    """
    n = len(openids)
    if not MASS_OPENIDS_MIN <= n <= MASS_OPENIDS_MAX:
        raise UsageError(
            f"mass/send takes {MASS_OPENIDS_MIN}..{MASS_OPENIDS_MAX} openids, got {n} "
            "(the platform refuses one openid with 40130)"
        )
    if len(set(openids)) != n:
        raise UsageError("mass/send openids must be distinct")
    _check_clientmsgid(clientmsgid)
    body: dict[str, Any] = {"touser": list(openids), **_content(message, MASS_MSGTYPES)}
    if clientmsgid is not None:
        body["clientmsgid"] = clientmsgid
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/mass/send", body),
        parse=MassSend.from_api,
        idempotent=clientmsgid is not None,
        ok_codes=frozenset({45065}),
    )


def send_mass_to_tag(
    message: Mapping[str, Any],
    *,
    tag_id: int | None = None,
    clientmsgid: str | None = None,
    send_ignore_reprint: bool = False,
) -> ApiCall[MassSend]:
    """``POST /cgi-bin/message/mass/sendall`` to a tag's fans, or to all (``tag_id=None``).

    Raises:
        UsageError: for a bad message or ``clientmsgid``.
    """
    _check_clientmsgid(clientmsgid)
    flt: dict[str, Any] = {"is_to_all": tag_id is None}
    if tag_id is not None:
        flt["tag_id"] = tag_id
    body: dict[str, Any] = {
        "filter": flt,
        **_content(message, MASS_MSGTYPES),
        "send_ignore_reprint": int(send_ignore_reprint),
    }
    if clientmsgid is not None:
        body["clientmsgid"] = clientmsgid
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/mass/sendall", body),
        parse=MassSend.from_api,
        idempotent=clientmsgid is not None,
        ok_codes=frozenset({45065}),
    )


def preview_mass(
    message: Mapping[str, Any], *, openid: str | None = None, wxname: str | None = None
) -> ApiCall[None]:
    """``POST /cgi-bin/message/mass/preview`` to one openid or WeChat ID.

    Raises:
        UsageError: when neither (or both) of ``openid``/``wxname`` is given.
    """
    if (openid is None) == (wxname is None):
        raise UsageError("preview_mass needs exactly one of openid= or wxname=")
    body: dict[str, Any] = dict(_content(message, MASS_MSGTYPES))
    if openid is not None:
        body["touser"] = openid
    else:
        body["towxname"] = wxname
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/mass/preview", body),
        parse=lambda d: None,
    )


def mass_status(msg_id: str | int) -> ApiCall[MassStatus]:
    """``POST /cgi-bin/message/mass/get``."""
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/mass/get", {"msg_id": str(msg_id)}),
        parse=MassStatus.from_api,
        idempotent=True,
    )


def delete_mass(msg_id: str | int, *, article_idx: int = 0) -> ApiCall[None]:
    """``POST /cgi-bin/message/mass/delete`` (article/video sends only; 0 = all articles)."""
    if article_idx < 0:
        raise UsageError("article_idx must be >= 0 (1-based; 0 deletes every article)")
    body = {"msg_id": str(msg_id), "article_idx": article_idx}
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/mass/delete", body),
        parse=lambda d: None,
        idempotent=True,
    )


def _data(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        out[k] = v if isinstance(v, Mapping) else {"value": v}
    return out


def send_template(
    openid: str,
    template_id: str,
    data: Mapping[str, Any],
    *,
    url: str | None = None,
    miniprogram: Mapping[str, str] | None = None,
    client_msg_id: str | None = None,
) -> ApiCall[str]:
    """``POST /cgi-bin/message/template/send``; returns the ``msgid``.

    ``data`` values may be plain values (wrapped as ``{"value": v}``) or ready objects.
    ``client_msg_id`` is passed through when given (documented only by WxJava: the
    platform's de-duplication for it is unconfirmed, so the call is not treated as
    idempotent).

    Raises:
        UsageError: for an empty openid or template id.
    """
    if not openid or not template_id:
        raise UsageError("send_template needs an openid and a template_id")
    body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _data(data)}
    if url:
        body["url"] = url
    if miniprogram:
        body["miniprogram"] = dict(miniprogram)
    if client_msg_id:
        body["client_msg_id"] = client_msg_id
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/template/send", body),
        parse=lambda d: str(d.get("msgid", "")),
    )


def send_subscribe(
    openid: str,
    template_id: str,
    data: Mapping[str, Any],
    *,
    page: str | None = None,
    miniprogram: Mapping[str, str] | None = None,
) -> ApiCall[None]:
    """``POST /cgi-bin/message/subscribe/bizsend`` (43101: the user must subscribe again).

    Raises:
        UsageError: for an empty openid or template id.
    """
    if not openid or not template_id:
        raise UsageError("send_subscribe needs an openid and a template_id")
    body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _data(data)}
    if page:
        body["page"] = page
    if miniprogram:
        body["miniprogram"] = dict(miniprogram)
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/subscribe/bizsend", body),
        parse=lambda d: None,
    )


def send_custom(
    openid: str, message: Mapping[str, Any], *, kf_account: str | None = None
) -> ApiCall[None]:
    """``POST /cgi-bin/message/custom/send`` within the user's interaction window
    (45015 outside it, 45047 when its quota is used up).

    Raises:
        UsageError: for an empty openid or a bad message.
    """
    if not openid:
        raise UsageError("send_custom needs an openid")
    body: dict[str, Any] = {"touser": openid, **_content(message, CUSTOM_MSGTYPES)}
    if kf_account:
        body["customservice"] = {"kf_account": kf_account}
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/message/custom/send", body),
        parse=lambda d: None,
    )

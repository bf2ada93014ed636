"""JS-SDK configuration: the ``jsapi_ticket`` call and the page signature (pure).

The ticket (``GET /cgi-bin/ticket/getticket?type=jsapi``, 7200 s) is fetched with the
account's access token and must be cached globally — its call budget is small — so
:class:`JsapiTicketPolicy` plugs it into the same
:class:`~membermkt.channels.wechat.token.TokenProvider` machinery (shared ``TokenCache``,
single-flight refresh) under its own cache key.

The signature is ``sha1("jsapi_ticket=…&noncestr=…&timestamp=…&url=…")`` with raw (not
URL-escaped) values, where ``url`` is the page URL without its ``#fragment`` (official
example: see the tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.channels.wechat.api.token import AccessToken
from membermkt.channels.wechat.token import TokenPolicy
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = ["GETTICKET_PATH", "JsConfig", "JsapiTicketPolicy", "get_ticket", "js_signature"]

GETTICKET_PATH = "/cgi-bin/ticket/getticket"
TICKET_TYPES = frozenset({"jsapi", "wx_card"})


def get_ticket(ticket_type: str = "jsapi") -> ApiCall[AccessToken]:
    """``GET /cgi-bin/ticket/getticket?type=jsapi`` → the ticket and its lifetime.

    The answer is returned as an :class:`AccessToken` (value + ``expires_in``) so the
    token cache can hold it.

    Raises:
        UsageError: for an unknown ticket type.
    """
    if ticket_type not in TICKET_TYPES:
        raise UsageError(f"ticket type must be one of {sorted(TICKET_TYPES)}")

    def parse(data: Mapping[str, Any]) -> AccessToken:
        return AccessToken(
            str(need(data, "ticket", GETTICKET_PATH)),
            int(need(data, "expires_in", GETTICKET_PATH)),
        )

    return ApiCall(
        request=HttpRequest.get(GETTICKET_PATH, {"type": ticket_type}),
        parse=parse,
        idempotent=True,
    )


@attrs.frozen(slots=True, kw_only=True)
class JsapiTicketPolicy(TokenPolicy):
    """The token policy of the JS-SDK ticket: same cache, its own key and fetch call."""

    ticket_type: str = "jsapi"

    @property
    def key(self) -> str:
        return f"wechat:oa:{self.appid}:ticket:{self.ticket_type}"

    def fetch_call(self) -> ApiCall[AccessToken]:
        return get_ticket(self.ticket_type)


def page_url(url: str) -> str:
    """The URL as signed: everything before ``#``.

    Raises:
        UsageError: for a URL that is not http(s).
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"JS-SDK pages must be http(s) URLs, got {url!r}")
    return url.split("#", 1)[0]


def js_signature(ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """The ``wx.config`` signature for one page (lower-case hex SHA-1).

    Raises:
        UsageError: for an empty ticket/nonce or a non-http(s) URL.
    """
    if not ticket or not noncestr:
        raise UsageError("a JS-SDK signature needs a ticket and a nonce")
    raw = (
        f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={int(timestamp)}&url={page_url(url)}"
    )
    return hashlib.sha1(raw.encode()).hexdigest()


@attrs.frozen(slots=True, kw_only=True)
class JsConfig:
    """What a page passes to ``wx.config`` (see :meth:`as_dict`)."""

    app_id: str
    timestamp: int
    nonce_str: str
    signature: str
    js_api_list: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "timestamp": self.timestamp,
            "nonceStr": self.nonce_str,
            "signature": self.signature,
            "jsApiList": list(self.js_api_list),
        }

"""Access-token endpoints (reference §1.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.wire.http import HttpRequest

__all__ = ["AccessToken", "classic_token", "stable_token"]

STABLE_PATH = "/cgi-bin/stable_token"
CLASSIC_PATH = "/cgi-bin/token"


@attrs.frozen(slots=True)
class AccessToken:
    """A token and its lifetime in seconds, as the platform answered."""

    access_token: str = attrs.field(repr=False)
    expires_in: int

    @classmethod
    def from_api(cls, data: Mapping[str, Any], api: str = STABLE_PATH) -> AccessToken:
        return cls(str(need(data, "access_token", api)), int(need(data, "expires_in", api)))


def stable_token(appid: str, secret: str, *, force_refresh: bool = False) -> ApiCall[AccessToken]:
    """``POST /cgi-bin/stable_token``: the same token while valid (normal mode)."""
    body = {
        "grant_type": "client_credential",
        "appid": appid,
        "secret": secret,
        "force_refresh": force_refresh,
    }
    return ApiCall(
        request=HttpRequest.post_json(STABLE_PATH, body),
        parse=AccessToken.from_api,
        idempotent=not force_refresh,
        needs_token=False,
    )


def classic_token(appid: str, secret: str) -> ApiCall[AccessToken]:
    """``GET /cgi-bin/token``: issues a NEW token each call (the old one dies 5 min later)."""
    return ApiCall(
        request=HttpRequest.get(
            CLASSIC_PATH, {"grant_type": "client_credential", "appid": appid, "secret": secret}
        ),
        parse=lambda d: AccessToken.from_api(d, CLASSIC_PATH),
        idempotent=True,
        needs_token=False,
    )

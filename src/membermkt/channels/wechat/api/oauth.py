"""OAuth 2.0 web authorization (网页授权, reference §1.9): request builders and parsers (pure).

The flow, for a page opened inside WeChat:

1. :func:`authorize_url` — send the browser to
   ``open.weixin.qq.com/connect/oauth2/authorize`` with a ``state`` bound to the visitor's
   session (see :mod:`membermkt.channels.wechat.oauth_state`); WeChat redirects back to
   ``redirect_uri?code=CODE&state=STATE``.
2. :func:`exchange_code` — ``GET /sns/oauth2/access_token`` turns the single-use code
   (5 minutes; 40029 invalid, 40163 already used) into a *per-user* token, the openid and,
   for ``snsapi_userinfo``, the unionid when the account is bound to an Open Platform.
3. :func:`user_info` — ``GET /sns/userinfo`` with that per-user token (``snsapi_userinfo``
   only) gives the profile and unionid.

None of these calls uses the account's global access token (``needs_token=False``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = [
    "AUTHORIZE_HOST",
    "SCOPES",
    "STATE_MAX",
    "OAuthToken",
    "SnsUserInfo",
    "authorize_url",
    "exchange_code",
    "refresh_token",
    "user_info",
]

AUTHORIZE_HOST = "https://open.weixin.qq.com"
"""Where the browser is sent for consent (not the API host)."""
AUTHORIZE_PATH = "/connect/oauth2/authorize"
ACCESS_TOKEN_PATH = "/sns/oauth2/access_token"
REFRESH_PATH = "/sns/oauth2/refresh_token"
USERINFO_PATH = "/sns/userinfo"

SCOPES = frozenset({"snsapi_base", "snsapi_userinfo"})
STATE_MAX = 128
"""``state`` is at most 128 bytes of ``[a-zA-Z0-9]`` (the authorize page's rule, confirmed by
a community thread where 235 chars were refused). ``-`` and ``_`` are accepted in practice
(unconfirmed), so :func:`authorize_url` allows ``[A-Za-z0-9_-]``."""
_STATE_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def authorize_url(
    appid: str,
    redirect_uri: str,
    *,
    state: str,
    scope: str = "snsapi_base",
    agentid: str | None = None,
    host: str = AUTHORIZE_HOST,
) -> str:
    """The consent URL to redirect a WeChat browser to.

    Args:
        appid: the official account's appid (WeCom: the corpid).
        redirect_uri: where WeChat sends the browser back (its domain must be the account's
            configured web-authorization domain); URL-encoded here.
        state: the anti-CSRF value bound to the visitor's session, 1–128 chars of
            ``[A-Za-z0-9_-]``.
        scope: ``"snsapi_base"`` (silent, openid only) or ``"snsapi_userinfo"`` (consent
            screen, profile and unionid).
        agentid: WeCom only: the app's agentid.
        host: the authorize host (the emulator's URL in tests).

    Raises:
        UsageError: for an unknown scope, an invalid state or a non-http(s) redirect URI.
    """
    if scope not in SCOPES:
        raise UsageError(f"OAuth scope must be one of {sorted(SCOPES)}, got {scope!r}")
    if not isinstance(state, str) or not _STATE_RE.fullmatch(state):
        raise UsageError(f"OAuth state must be 1..{STATE_MAX} chars of [A-Za-z0-9_-]")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        raise UsageError(f"redirect_uri must be an http(s) URL, got {redirect_uri!r}")
    if not appid:
        raise UsageError("authorize_url needs an appid")
    # The parameter order matters to the platform (documented order; reordered params
    # are reported to fail with 10003 on some clients: unconfirmed).
    url = (
        f"{host.rstrip('/')}{AUTHORIZE_PATH}?appid={quote(appid, safe='')}"
        f"&redirect_uri={quote(redirect_uri, safe='')}&response_type=code"
        f"&scope={scope}&state={state}"
    )
    if agentid is not None:
        url += f"&agentid={quote(str(agentid), safe='')}"
    return url + "#wechat_redirect"


@attrs.frozen(slots=True, kw_only=True)
class OAuthToken:
    """The answer of the code exchange: a per-user token (not the account's token).

    Attributes:
        access_token: the per-user web token (7200 s).
        expires_in: its lifetime in seconds.
        refresh_token: valid 30 days (:func:`refresh_token`).
        openid: the visitor's openid under the account.
        scope: the granted scope(s), comma separated as the platform sends them.
        unionid: present for ``snsapi_userinfo`` when the account is bound to an Open
            Platform account.
        is_snapshotuser: ``True`` for the virtual user of snapshot-page mode (a page
            opened from a Moments snapshot): not a real member, never link it.
    """

    access_token: str = attrs.field(repr=False)
    expires_in: int
    refresh_token: str = attrs.field(repr=False)
    openid: str
    scope: str
    unionid: str | None = None
    is_snapshotuser: bool = False

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(s for s in self.scope.split(",") if s)

    @classmethod
    def from_api(cls, data: Mapping[str, Any], api: str = ACCESS_TOKEN_PATH) -> OAuthToken:
        unionid = data.get("unionid")
        return cls(
            access_token=str(need(data, "access_token", api)),
            expires_in=int(need(data, "expires_in", api)),
            refresh_token=str(data.get("refresh_token", "")),
            openid=str(need(data, "openid", api)),
            scope=str(data.get("scope", "")),
            unionid=str(unionid) if unionid else None,
            is_snapshotuser=data.get("is_snapshotuser") == 1,
        )


@attrs.frozen(slots=True, kw_only=True)
class SnsUserInfo:
    """``/sns/userinfo``: the visitor's profile (``snsapi_userinfo`` only).

    ``sex``, ``province``, ``city`` and ``country`` are no longer filled by the platform for
    new authorisations (reported since 2021; unconfirmed in the reference): expect 0 / "".
    """

    openid: str
    nickname: str = ""
    sex: int = 0
    province: str = ""
    city: str = ""
    country: str = ""
    headimgurl: str = ""
    unionid: str | None = None
    privilege: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SnsUserInfo:
        unionid = data.get("unionid")
        return cls(
            openid=str(need(data, "openid", USERINFO_PATH)),
            nickname=str(data.get("nickname", "")),
            sex=int(data.get("sex", 0) or 0),
            province=str(data.get("province", "")),
            city=str(data.get("city", "")),
            country=str(data.get("country", "")),
            headimgurl=str(data.get("headimgurl", "")),
            unionid=str(unionid) if unionid else None,
            privilege=tuple(str(p) for p in data.get("privilege") or ()),
        )


def exchange_code(appid: str, secret: str, code: str) -> ApiCall[OAuthToken]:
    """``GET /sns/oauth2/access_token``: the single-use code → per-user token and openid.

    Not idempotent: a replay after a lost answer gets 40163 (code already used).

    Raises:
        UsageError: for an empty code.
    """
    if not isinstance(code, str) or not code:
        raise UsageError("the OAuth code is empty: the visitor refused or the URL was forged")
    params = {"appid": appid, "secret": secret, "code": code, "grant_type": "authorization_code"}
    return ApiCall(
        request=HttpRequest.get(ACCESS_TOKEN_PATH, params),
        parse=OAuthToken.from_api,
        needs_token=False,
    )


def refresh_token(appid: str, refresh: str) -> ApiCall[OAuthToken]:
    """``GET /sns/oauth2/refresh_token`` (the refresh token lives 30 days)."""
    params = {"appid": appid, "grant_type": "refresh_token", "refresh_token": refresh}
    return ApiCall(
        request=HttpRequest.get(REFRESH_PATH, params),
        parse=lambda d: OAuthToken.from_api(d, REFRESH_PATH),
        idempotent=True,
        needs_token=False,
    )


def user_info(token: OAuthToken, *, lang: str = "zh_CN") -> ApiCall[SnsUserInfo]:
    """``GET /sns/userinfo`` with the per-user token (scope ``snsapi_userinfo`` only).

    Raises:
        UsageError: when the token was granted for ``snsapi_base`` only (the platform
            answers 48001 "api unauthorized"; unconfirmed code).
    """
    if "snsapi_userinfo" not in token.scopes:
        raise UsageError("sns/userinfo needs a token granted with scope snsapi_userinfo")
    params = {"access_token": token.access_token, "openid": token.openid, "lang": lang}
    return ApiCall(
        request=HttpRequest.get(USERINFO_PATH, params),
        parse=SnsUserInfo.from_api,
        idempotent=True,
        needs_token=False,
    )

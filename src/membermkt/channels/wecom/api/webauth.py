"""WeCom web authorization: who opened a page inside WeCom (``auth/getuserinfo``).

The browser goes to the same ``open.weixin.qq.com/connect/oauth2/authorize`` page as for an
official account, with the corpid as ``appid`` and the app's ``agentid``
(:func:`authorize_url`); WeCom sends it back with a ``code`` that
``GET /cgi-bin/auth/getuserinfo?access_token&code`` (:func:`getuserinfo`) turns into:

* a member of the corp (staff): ``userid`` (plus ``user_ticket`` for ``snsapi_privateinfo``);
* anyone else: ``openid`` (unique per corp) and, when the visitor is a customer of the corp
  whose follower is in the app's visible range, ``external_userid``.

The code is single-use and expires after 5 minutes (errcode 40029; the redirect domain must
match the app's trusted domain, else 50001 — WeCom doc path/98176). The corp access token
is the app's own (secret of the self-built app).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.channels.wechat.api import oauth
from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api._call import get
from membermkt.core.identity import Identity
from membermkt.errors import UsageError

__all__ = ["GETUSERINFO_PATH", "WebVisitor", "authorize_url", "getuserinfo"]

GETUSERINFO_PATH = "/cgi-bin/auth/getuserinfo"
CODE_MAX = 512
"""The code is at most 512 bytes (WeCom doc)."""


def authorize_url(
    corpid: str,
    redirect_uri: str,
    *,
    state: str,
    agentid: str,
    host: str = oauth.AUTHORIZE_HOST,
) -> str:
    """The silent (``snsapi_base``) authorize URL for a page opened inside WeCom.

    Raises:
        UsageError: as :func:`membermkt.channels.wechat.api.oauth.authorize_url`, or for an
            empty agentid.
    """
    if not agentid:
        raise UsageError("WeCom web authorization needs the app's agentid")
    return oauth.authorize_url(
        corpid, redirect_uri, state=state, scope="snsapi_base", agentid=agentid, host=host
    )


@attrs.frozen(slots=True, kw_only=True)
class WebVisitor:
    """Who opened the page: a staff ``userid``, or an outsider's ``openid`` (and
    ``external_userid`` when they are the corp's customer)."""

    userid: str | None = None
    openid: str | None = None
    external_userid: str | None = None
    user_ticket: str | None = attrs.field(default=None, repr=False)

    @property
    def is_staff(self) -> bool:
        return self.userid is not None

    def identity(self, corpid: str) -> Identity | None:
        """The customer's identity in the store (``external_userid`` under the corp), or
        ``None`` for staff and for visitors who are not customers."""
        if self.external_userid:
            return Identity.external_userid(corpid, self.external_userid)
        return None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> WebVisitor:
        # Older answers used UserId / OpenId (PascalCase); accept both spellings.
        def pick(*keys: str) -> str | None:
            for k in keys:
                v = d.get(k)
                if v:
                    return str(v)
            return None

        return cls(
            userid=pick("userid", "UserId"),
            openid=pick("openid", "OpenId"),
            external_userid=pick("external_userid"),
            user_ticket=pick("user_ticket"),
        )


def getuserinfo(code: str) -> ApiCall[WebVisitor]:
    """``GET /cgi-bin/auth/getuserinfo?code=…``.

    Raises:
        UsageError: for an empty code or one longer than 512 bytes.
    """
    if not isinstance(code, str) or not code or len(code.encode()) > CODE_MAX:
        raise UsageError(f"a WeCom OAuth code is 1..{CODE_MAX} bytes")
    call = get(GETUSERINFO_PATH, {"code": code}, WebVisitor.from_api)
    # single-use: a replay after a lost answer is refused, so never retried blindly
    return attrs.evolve(call, idempotent=False)

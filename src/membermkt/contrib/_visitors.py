"""Who opened the phone page: web authorization by an official account or a WeCom app.

:class:`~membermkt.contrib.phoneform.PhoneFormApp` asks one of these for the authorize URL
and, on the way back, turns the single-use ``code`` into a :class:`Visitor`:

* :class:`OfficialAccountAuth` — ``sns/oauth2/access_token`` (openid; unionid with
  ``snsapi_userinfo`` or when the platform gives it); codes expire after 5 minutes and are
  single-use (40029 invalid or expired, 40163 already used).
* :class:`WeComWebAuth` — ``auth/getuserinfo`` (WeCom doc path/96442): staff get a
  ``userid``; anyone else an ``openid`` unique to the corp, plus ``external_userid`` only
  when they are a customer of the corp whose follow-up staff is in the app's visible
  range. The page serves customers only: staff and non-customers get a page saying so.
  Codes are single-use and die after 5 minutes (40029); the redirect domain must be the
  app's trusted domain (else 50001).
"""

from __future__ import annotations

import attrs

from membermkt.channels.wechat.api import oauth
from membermkt.channels.wechat.client import OfficialAccount
from membermkt.channels.wecom.api import webauth
from membermkt.channels.wecom.client import WeCom
from membermkt.core.identity import Identity, IdentityKind
from membermkt.core.members import Member
from membermkt.errors import ConfigError

__all__ = ["OfficialAccountAuth", "Refusal", "Visitor", "VisitorAuth", "WeComWebAuth"]

EXPIRED_CODES = frozenset({40029, 40163})
"""Errcodes of a code that is invalid, expired or already used (OA: 40029/40163; WeCom:
40029): the visitor should reopen the link."""


@attrs.frozen(slots=True, kw_only=True)
class Visitor:
    """The visitor's identities: ``identity`` keys the member; ``extra`` are attached too
    (a unionid the platform reported)."""

    identity: Identity
    extra: tuple[Identity, ...] = ()


@attrs.frozen(slots=True)
class Refusal:
    """A visitor the page does not serve: the status, title and text of the page."""

    status: int
    title: str
    text: str


class VisitorAuth:
    """Base of the two web authorizations (see the module docstring)."""

    by = "phoneform"
    host: str
    """The authorize page's host."""

    def authorize_url(self, redirect_uri: str, *, state: str) -> str:
        """Where the browser goes to authorize."""
        raise TypeError(f"{type(self).__name__} must implement authorize_url")

    def visitor(self, code: str) -> Visitor | Refusal:
        """The visitor behind ``code``.

        Raises:
            PlatformError: for a refused code (see :data:`EXPIRED_CODES`) or another
                platform failure.
        """
        raise TypeError(f"{type(self).__name__} must implement visitor")

    def payout_address(self, member: Member | None, visitor: Identity) -> str | None:
        """The openid a red packet for this member is paid to (``None``: none known)."""
        raise TypeError(f"{type(self).__name__} must implement payout_address")


class OfficialAccountAuth(VisitorAuth):
    """Web authorization of an official account's followers.

    Args:
        account: the official account (sync client).
        scope: ``"snsapi_base"`` (silent) or ``"snsapi_userinfo"`` (asks; gives unionid).
        host: the authorize host (the emulator's URL in tests).
    """

    by = "phoneform.wechat"

    def __init__(
        self, account: OfficialAccount, *, scope: str = "snsapi_base", host: str = ""
    ) -> None:
        if scope not in oauth.SCOPES:
            raise ConfigError(f"scope must be one of {sorted(oauth.SCOPES)}, got {scope!r}")
        self.account = account
        self.scope = scope
        self.host = host or oauth.AUTHORIZE_HOST

    def __repr__(self) -> str:
        return f"OfficialAccountAuth({self.account.appid!r}, scope={self.scope!r})"

    def authorize_url(self, redirect_uri: str, *, state: str) -> str:
        return self.account.oauth_url(redirect_uri, state=state, scope=self.scope, host=self.host)

    def visitor(self, code: str) -> Visitor | Refusal:
        token = self.account.exchange_code(code)
        if token.is_snapshotuser:
            return Refusal(403, "请在微信中打开", "快照页无法领取，请打开完整页面。")
        unionid = token.unionid
        if unionid is None and "snsapi_userinfo" in token.scopes:
            unionid = self.account.oauth_user_info(token).unionid
        extra = (Identity.unionid(unionid),) if unionid else ()
        return Visitor(identity=Identity.openid(self.account.appid, token.openid), extra=extra)

    def payout_address(self, member: Member | None, visitor: Identity) -> str | None:
        return visitor.value


class WeComWebAuth(VisitorAuth):
    """Web authorization inside WeCom (``auth/getuserinfo``) for the corp's customers.

    Args:
        client: the WeCom client of the self-built app whose trusted domain serves the
            page (its secret's access token calls ``auth/getuserinfo``).
        agentid: that app's agentid.
        payout_appid: the official account red packets are paid from: a customer whose
            member also holds an openid of it (e.g. linked through the unionid, or merged
            with a follower by the verified phone) is paid there; others are only linked.
        host: the authorize host (the emulator's URL in tests).
    """

    by = "phoneform.wecom"

    def __init__(
        self, client: WeCom, *, agentid: str, payout_appid: str = "", host: str = ""
    ) -> None:
        if not agentid:
            raise ConfigError("WeComWebAuth needs the app's agentid")
        self.client = client
        self.corpid = client.corpid
        self.agentid = agentid
        self.payout_appid = payout_appid
        self.host = host or oauth.AUTHORIZE_HOST

    def __repr__(self) -> str:
        return f"WeComWebAuth({self.corpid!r}, agentid={self.agentid!r})"

    def authorize_url(self, redirect_uri: str, *, state: str) -> str:
        return webauth.authorize_url(
            self.corpid, redirect_uri, state=state, agentid=self.agentid, host=self.host
        )

    def visitor(self, code: str) -> Visitor | Refusal:
        who = self.client.call(webauth.getuserinfo(code))
        if who.is_staff:
            return Refusal(403, "仅限客户", "员工账号无法参加本活动。")
        ident = who.identity(self.corpid)
        if ident is None:
            return Refusal(403, "请先添加客服", "请先添加我们的客服为好友，再打开此页面。")
        return Visitor(identity=ident)

    def payout_address(self, member: Member | None, visitor: Identity) -> str | None:
        if member is None or not self.payout_appid:
            return None
        for i in member.identities:
            if i.kind is IdentityKind.OPENID and i.namespace == self.payout_appid:
                return i.value
        return None

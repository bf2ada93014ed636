"""Web pages and mini programs: OAuth 2.0 web authorization (``/connect/oauth2/authorize``,
``/sns/*``), the JS-SDK ticket (``/cgi-bin/ticket/getticket``), ``/sns/jscode2session`` and
``/wxa/business/getuserphonenumber`` (single-use 5-minute codes, 40029/40163).

The emulated "WeChat browser" is logged in as the user set with
:meth:`_OAuthMixin.browse_as`; the authorize page answers with a 302 to
``redirect_uri?code=…&state=…`` as WeChat does after consent. Codes are single-use and die
after 5 minutes (40029 invalid/expired, 40163 already used — reference §1.9); per-user
tokens live 7200 s; ``/sns/userinfo`` needs scope ``snsapi_userinfo``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from membermkt.core.accounts import AccountType
from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, _Refuse

AUTHORIZE_PATH = "/connect/oauth2/authorize"
CODE_TTL = 300.0
USER_TOKEN_TTL = 7200.0
REFRESH_TTL = 30 * 86400.0
TICKET_TTL = 7200.0
_STATE_RE = re.compile(r"[A-Za-z0-9_-]{0,128}")


@attrs.define
class OAuthGrant:
    """One issued code (emulator state)."""

    appid: str
    openid: str
    scope: str
    issued_at: float
    used: bool = False


@attrs.define
class UserToken:
    """One per-user web token (emulator state)."""

    appid: str
    openid: str
    scope: str
    expires_at: float
    refresh_token: str


class _OAuthMixin(_Base):
    """Authorize page, code exchange, sns/userinfo, jsapi tickets."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._browser: dict[str, tuple[str, str | None]] = {}
        self._oauth_domains: dict[str, set[str]] = {}
        self.oauth_codes: dict[str, OAuthGrant] = {}
        self._user_tokens: dict[str, UserToken] = {}
        self._refresh: dict[str, tuple[str, float]] = {}
        self._tickets: dict[str, tuple[str, float]] = {}
        self.ticket_fetches = 0
        self._js_codes: dict[str, tuple[str, str, str | None, float, bool]] = {}
        self._phone_codes: dict[str, tuple[str, str, float, bool]] = {}

    # ----------------------------------------------------------- set-up

    def browse_as(self, appid: str, openid: str, *, unionid: str | None = None) -> None:
        """Make the emulated WeChat browser authorize as ``openid`` for ``appid`` (the
        unionid defaults to the follower's, if any)."""
        with self.lock:
            self._browser[appid] = (openid, unionid)

    def allow_oauth_domain(self, appid: str, host: str) -> None:
        """Restrict ``redirect_uri`` to these hosts (the console's web-authorization
        domain); without any, every host is accepted."""
        with self.lock:
            self._oauth_domains.setdefault(appid, set()).add(host)

    def issue_code(self, appid: str, openid: str, *, scope: str = "snsapi_base") -> str:
        """Issue a code directly (what the authorize page does after consent)."""
        with self.lock:
            code = hashlib.sha1(f"{appid}{openid}{next(self._ids)}".encode()).hexdigest()[:32]
            self.oauth_codes[code] = OAuthGrant(appid, openid, scope, self.now())
            return code

    # ----------------------------------------------------------- the page

    def _authorize_page(
        self, params: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        def page(errcode: int, errmsg: str) -> tuple[int, list[tuple[str, str]], bytes]:
            self.errcodes[errcode] += 1
            body = f'{{"errcode":{errcode},"errmsg":"{errmsg}"}}'.encode()
            return 400, [("Content-Type", "application/json")], body

        appid = params.get("appid", "")
        if appid not in self.accounts:
            return page(40013, "invalid appid")
        if self.accounts[appid].account_type is AccountType.SUBSCRIPTION:
            # rule: oa.account_type -- no web authorization on a subscription account (the
            # page's code is unconfirmed: the scope-permission page code, as below)
            return page(10005, "scope has no permission")
        redirect = params.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return page(10003, "redirect_uri domain mismatch")  # page code, unconfirmed
        domains = self._oauth_domains.get(appid)
        if domains and parts.hostname not in domains:
            return page(10003, "redirect_uri domain mismatch")  # page code, unconfirmed
        if params.get("response_type") != "code":
            return page(10004, "invalid response_type")  # emulator choice (unconfirmed)
        scope = params.get("scope", "")
        if scope not in ("snsapi_base", "snsapi_userinfo"):
            return page(10005, "scope has no permission")  # page code, unconfirmed
        state = params.get("state", "")
        if not _STATE_RE.fullmatch(state):
            return page(10009, "invalid state")  # emulator choice: > 128 bytes is refused
        who = self._browser.get(appid)
        if who is None:
            return page(10010, "no user in the emulated browser")  # emulator set-up error
        code = self.issue_code(appid, who[0], scope=scope)
        sep = "&" if parts.query else "?"
        location = redirect + sep + urlencode({"code": code, "state": state})
        return 302, [("Location", location), ("Content-Length", "0")], b""

    # ----------------------------------------------------------- sns APIs

    def _account_secret(self, params: Mapping[str, str]) -> Account:
        acct = self.accounts.get(params.get("appid", ""))
        if acct is None:
            raise _Refuse(40013, "invalid appid")
        if params.get("secret") != acct.secret:
            raise _Refuse(40125, "invalid appsecret")  # global list; unconfirmed for sns
        return acct

    def _issue_user_token(self, acct: Account, openid: str, scope: str) -> dict[str, Any]:
        now = self.now()
        token = "UT" + hashlib.sha1(f"{acct.appid}{openid}{next(self._ids)}".encode()).hexdigest()
        refresh = "RT" + hashlib.sha1(f"r{token}".encode()).hexdigest()
        self._user_tokens[token] = UserToken(
            acct.appid, openid, scope, now + USER_TOKEN_TTL, refresh
        )
        self._refresh[refresh] = (token, now + REFRESH_TTL)
        out: dict[str, Any] = {
            "access_token": token,
            "expires_in": int(USER_TOKEN_TTL),
            "refresh_token": refresh,
            "openid": openid,
            "scope": scope,
        }
        unionid = self._unionid(acct, openid)
        if scope == "snsapi_userinfo" and unionid:
            out["unionid"] = unionid
        return out

    def _unionid(self, acct: Account, openid: str) -> str | None:
        who = self._browser.get(acct.appid)
        if who is not None and who[0] == openid and who[1]:
            return who[1]
        follower = acct.followers.get(openid)
        return follower.unionid if follower else None

    def _sns_access_token(self, params: Mapping[str, str]) -> dict[str, Any]:
        acct = self._account_secret(params)
        if acct.account_type is AccountType.SUBSCRIPTION:
            raise _Refuse(48001, "api unauthorized")  # emulator choice (code unconfirmed)
        if params.get("grant_type") != "authorization_code":
            raise _Refuse(40002, "invalid grant_type")
        grant = self.oauth_codes.get(params.get("code", ""))
        if grant is None or grant.appid != acct.appid:
            raise _Refuse(40029, "invalid code")
        if grant.used:
            raise _Refuse(40163, "code been used")
        if self.now() - grant.issued_at > CODE_TTL:
            raise _Refuse(40029, "invalid code")  # expired codes read as invalid (§1.9)
        grant.used = True
        return self._issue_user_token(acct, grant.openid, grant.scope)

    def _sns_refresh(self, params: Mapping[str, str]) -> dict[str, Any]:
        acct = self.accounts.get(params.get("appid", ""))
        if acct is None:
            raise _Refuse(40013, "invalid appid")
        if params.get("grant_type") != "refresh_token":
            raise _Refuse(40002, "invalid grant_type")
        entry = self._refresh.get(params.get("refresh_token", ""))
        if entry is None or self.now() >= entry[1]:
            raise _Refuse(40030, "invalid refresh_token")  # global list; unconfirmed
        old = self._user_tokens[entry[0]]
        if old.appid != acct.appid:
            raise _Refuse(40030, "invalid refresh_token")
        return self._issue_user_token(acct, old.openid, old.scope)

    def _sns_userinfo(self, params: Mapping[str, str]) -> dict[str, Any]:
        tok = self._user_tokens.get(params.get("access_token", ""))
        if tok is None:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        if self.now() >= tok.expires_at:
            raise _Refuse(42001, "access_token expired")
        if params.get("openid") != tok.openid:
            raise _Refuse(40003, "invalid openid")
        if tok.scope != "snsapi_userinfo":
            raise _Refuse(48001, "api unauthorized")  # unconfirmed code for snsapi_base
        acct = self.accounts[tok.appid]
        out: dict[str, Any] = {
            "openid": tok.openid,
            "nickname": f"user-{tok.openid[-4:]}",
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": "",
            "privilege": [],
        }
        unionid = self._unionid(acct, tok.openid)
        if unionid:
            out["unionid"] = unionid
        return out

    def _sns(self, api: str, params: Mapping[str, str]) -> dict[str, Any] | None:
        """The sns APIs (no account access token); ``None`` for any other API."""
        route = _SNS.get(api)
        if route is None:
            return None
        return route(self, params)

    # ----------------------------------------------------------- mini programs

    def issue_js_code(self, appid: str, openid: str, *, unionid: str | None = None) -> str:
        """What ``wx.login()`` returns in the mini program ``appid`` for ``openid``."""
        with self.lock:
            code = "JS" + hashlib.sha1(f"{appid}{openid}{next(self._ids)}".encode()).hexdigest()
            self._js_codes[code] = (appid, openid, unionid, self.now(), False)
            return code

    def issue_phone_code(self, appid: str, phone: str, *, country_code: str = "86") -> str:
        """What the ``getPhoneNumber`` button returns for a user whose verified number is
        ``phone`` (digits without the country code)."""
        with self.lock:
            code = "PH" + hashlib.sha1(f"{appid}{phone}{next(self._ids)}".encode()).hexdigest()
            self._phone_codes[code] = (appid, f"{country_code}:{phone}", self.now(), False)
            return code

    def _jscode2session(self, params: Mapping[str, str]) -> dict[str, Any]:
        acct = self._account_secret(params)
        if params.get("grant_type") != "authorization_code":
            raise _Refuse(40002, "invalid grant_type")
        entry = self._js_codes.get(params.get("js_code", ""))
        if entry is None or entry[0] != acct.appid or self.now() - entry[3] > CODE_TTL:
            raise _Refuse(40029, "invalid code")
        if entry[4]:
            raise _Refuse(40163, "code been used")
        appid, openid, unionid, issued, _ = entry
        self._js_codes[params["js_code"]] = (appid, openid, unionid, issued, True)
        out: dict[str, Any] = {
            "openid": openid,
            "session_key": hashlib.sha1(f"sk{openid}{issued}".encode()).hexdigest()[:24],
        }
        if unionid:
            out["unionid"] = unionid
        return out

    def _getuserphonenumber(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        entry = self._phone_codes.get(str(body.get("code", "")))
        if entry is None or entry[0] != acct.appid or self.now() - entry[2] > CODE_TTL:
            raise _Refuse(40029, "invalid code")
        if entry[3]:
            raise _Refuse(40029, "invalid code")  # a used phone code reads as invalid (unconfirmed)
        self._phone_codes[str(body["code"])] = (entry[0], entry[1], entry[2], True)
        cc, pure = entry[1].split(":", 1)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": f"+{cc}{pure}" if cc != "86" else pure,
                "purePhoneNumber": pure,
                "countryCode": cc,
                "watermark": {"timestamp": int(self.now()), "appid": acct.appid},
            },
        }

    # ----------------------------------------------------------- JS-SDK ticket

    def _getticket(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        kind = params.get("type")
        if kind not in ("jsapi", "wx_card"):
            raise _Refuse(40097, "invalid args")  # emulator choice (unconfirmed code)
        now = self.now()
        key = f"{acct.appid}:{kind}"
        cur = self._tickets.get(key)
        if cur is None or now >= cur[1]:
            ticket = "TK" + hashlib.sha1(f"{key}{next(self._ids)}".encode()).hexdigest()
            cur = (ticket, now + TICKET_TTL)
            self._tickets[key] = cur
        self.ticket_fetches += 1
        return {"errcode": 0, "errmsg": "ok", "ticket": cur[0], "expires_in": int(cur[1] - now)}

    def jsapi_ticket(self, appid: str) -> str | None:
        """The current jsapi ticket of an account (to check signatures in tests)."""
        with self.lock:
            cur = self._tickets.get(f"{appid}:jsapi")
            return cur[0] if cur else None


_SNS: dict[str, Callable[[_OAuthMixin, Mapping[str, str]], dict[str, Any]]] = {
    "/sns/oauth2/access_token": _OAuthMixin._sns_access_token,
    "/sns/oauth2/refresh_token": _OAuthMixin._sns_refresh,
    "/sns/userinfo": _OAuthMixin._sns_userinfo,
    "/sns/jscode2session": _OAuthMixin._jscode2session,
}

ROUTES: dict[str, Callable[[_OAuthMixin, Account, Any, Any], dict[str, Any]]] = {
    "/cgi-bin/ticket/getticket": _OAuthMixin._getticket,
    "/wxa/business/getuserphonenumber": _OAuthMixin._getuserphonenumber,
}

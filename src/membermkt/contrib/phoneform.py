"""A ready phone/consent page inside WeChat: OAuth → form → link the phone → red packet.

Mount :class:`PhoneFormApp` (an ASGI app) under the public URL your official account's
web-authorization domain allows, e.g. ``https://shop.example/redpacket/``:

1. ``GET /redpacket/`` without a session: a signed session cookie is set and the browser
   goes to WeChat's consent page with a ``state`` bound to that session
   (:class:`~membermkt.channels.wechat.oauth_state.StateSigner`).
2. ``GET /redpacket/callback?code&state``: the state must verify for this session and be
   unused (CSRF and replay are refused with 403); the code is exchanged for the openid
   (40029 expired / 40163 replayed codes give a "reopen the link" page); the follower's
   member is resolved (or created) through the store's identity index, with the unionid
   when the scope gives one.
3. ``GET /redpacket/``: the form (phone number, consent checkbox, a CSRF token tied to the
   session) plus the page-view beacon.
4. ``POST /redpacket/``: the phone is linked to the member (a phone already linked to
   *another* member is refused: a typed number is not proof of ownership), consent is
   recorded, and the red packet is claimed once through
   :class:`~membermkt.engine.redpackets.RedPacketService` (a second submit resumes or is
   denied by the rule's per-member/per-phone limits — never a second payment).
5. ``GET beacon.js`` / ``POST beacon``: dwell-time beacons → ``view`` events
   (:mod:`membermkt.contrib.beacons`).

The phone number is digested at once (``phone_key``) and never stored or logged raw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from urllib.parse import urlsplit

import attrs

from membermkt.channels.wechat.client import OfficialAccount
from membermkt.channels.wechat.oauth_state import StateSigner, UsedStates
from membermkt.contrib._web import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    SessionCodec,
    asgi_adapter,
)
from membermkt.contrib._web import escape as _e
from membermkt.contrib.beacons import BeaconIngest, beacon_script
from membermkt.core.events import Event
from membermkt.core.identity import Identity, member_id_for, normalize_phone
from membermkt.core.members import Consent, Member
from membermkt.core.membership.joining import JoinOffer
from membermkt.core.membership.qualification import INVITED, check_invited
from membermkt.core.ports import Clock
from membermkt.core.redpackets import Claim, RedPacketRule
from membermkt.engine.redpackets import ClaimOutcome, RedPacketService, RedPacketStore
from membermkt.errors import (
    ConfigError,
    MembermktError,
    PlatformError,
    SignatureError,
    UsageError,
)

__all__ = ["PhoneFormApp", "PhoneLinkConflict", "link_phone"]

log = logging.getLogger(__name__)

COOKIE = "mm_pf"


class PhoneLinkConflict(UsageError):
    """The phone number is already linked to another member."""


def link_phone(store: RedPacketStore, member_id: str, phone: Identity) -> bool:
    """Add the ``phone`` identity to ``member_id`` through the store's identity index.

    Returns ``True`` when it was newly linked, ``False`` when the member already had it.

    Raises:
        PhoneLinkConflict: when the phone resolves to another member (no silent merge: a
            typed number proves nothing).
        UsageError: when the member does not exist.
    """
    owner = store.resolve(phone)
    if owner == member_id:
        return False
    if owner is not None:
        raise PhoneLinkConflict("this phone number is already linked to another member")
    member = store.get_member(member_id)
    if member is None:
        raise UsageError(f"member {member_id!r} does not exist")
    store.upsert_members([attrs.evolve(member, identities=(*member.identities, phone))])
    return True


@attrs.frozen(slots=True, kw_only=True)
class _Session:
    sid: str
    openid: str = ""
    member_id: str = ""


class PhoneFormApp:
    """The phone/consent/red-packet page as an ASGI app (see the module docstring).

    Args:
        account: the official account (sync client) whose followers open the page.
        store: members, identities, events, budgets and payout intents.
        redpackets: the red-packet service paying ``rule``.
        rule: the red-packet rule of this page.
        public_url: the page's absolute URL (ending in ``/``), inside the account's
            web-authorization domain.
        secret: the signing key for sessions, states and the form token (≥ 16 bytes).
        clock: where ``now`` comes from.
        phone_key: the key of phone digests (as for ``Identity.phone``).
        scope: ``"snsapi_base"`` (silent) or ``"snsapi_userinfo"`` (asks; gives unionid).
        authorize_host: WeChat's authorize host (the emulator's URL in tests).
        secure_cookies: mark cookies ``Secure`` (keep ``True`` in production: https).
        title: the page title.
        join: a :class:`~membermkt.core.membership.JoinOffer`: a successful submission
            also records ``member_joined`` (the page becomes the programme's joining form;
            with ``invite_only``, members without an invitation are refused).

    Raises:
        ConfigError: for a ``public_url`` that is not an absolute http(s) URL ending in
            ``/`` or a short secret.
    """

    def __init__(
        self,
        *,
        account: OfficialAccount,
        store: RedPacketStore,
        redpackets: RedPacketService,
        rule: RedPacketRule,
        public_url: str,
        secret: bytes,
        clock: Clock,
        phone_key: str = "",
        scope: str = "snsapi_base",
        authorize_host: str = "https://open.weixin.qq.com",
        secure_cookies: bool = True,
        title: str = "领取红包",
        join: JoinOffer | None = None,
    ) -> None:
        parts = urlsplit(public_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not public_url.endswith("/")
        ):
            raise ConfigError("public_url must be an absolute http(s) URL ending in '/'")
        self.account = account
        self.store = store
        self.redpackets = redpackets
        self.rule = rule
        self.public_url = public_url
        self.clock = clock
        self.phone_key = phone_key
        self.scope = scope
        self.authorize_host = authorize_host
        self.secure_cookies = secure_cookies
        self.title = title
        self.join = join
        self._sessions = SessionCodec(secret)
        self._states = StateSigner(secret)
        self._used = UsedStates(self._states.ttl)
        self._form_key = hmac.new(secret, b"form-token", hashlib.sha256).digest()
        self._cookie_path = parts.path
        self.beacons = BeaconIngest(store, source="phone_form")
        self._asgi = asgi_adapter(self.handle)

    def __repr__(self) -> str:
        return f"PhoneFormApp({self.public_url!r}, rule={self.rule.id!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, so servers detect an ASGI 3 app (uvicorn checks this).
        await self._asgi(scope, receive, send)

    # ----------------------------------------------------------- routing

    def handle(self, request: Request) -> Response:
        """Answer one request (sync; the ASGI adapter runs it in a worker thread)."""
        prefix = self._cookie_path
        if request.path + "/" == prefix:
            return Response.redirect(prefix)
        if not request.path.startswith(prefix):
            return Response(404, (("Content-Type", "text/plain"),), b"not found")
        route = request.path[len(prefix) :]
        try:
            if route == "callback" and request.method == "GET":
                return self._callback(request)
            if route == "beacon.js" and request.method == "GET":
                return Response(
                    200,
                    (
                        ("Content-Type", "application/javascript; charset=utf-8"),
                        ("Cache-Control", "max-age=3600"),
                    ),
                    beacon_script().encode(),
                )
            if route == "beacon" and request.method == "POST":
                return self._beacon(request)
            if route == "":
                if request.method == "GET":
                    return self._form(request)
                if request.method == "POST":
                    return self._submit(request)
                return Response(405, (("Allow", "GET, POST"),))
            if route in ("callback", "beacon", "beacon.js"):
                return Response(405)
            return Response(404, (("Content-Type", "text/plain"),), b"not found")
        except MembermktError as exc:  # a platform or store failure: a page, never a trace
            log.warning("phone form: %s: %s", type(exc).__name__, exc)
            return self._page(503, "服务暂时不可用", "请稍后再试。")

    # ----------------------------------------------------------- sessions

    def _session(self, request: Request) -> _Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._sessions.decode(raw)
        except SignatureError:
            return None
        if not data.get("sid"):
            return None
        return _Session(
            sid=data["sid"], openid=data.get("openid", ""), member_id=data.get("member_id", "")
        )

    def _set_cookie(self, s: _Session) -> tuple[str, str]:
        data = {"sid": s.sid, "openid": s.openid, "member_id": s.member_id}
        return (
            "Set-Cookie",
            self._sessions.cookie(COOKIE, data, path=self._cookie_path, secure=self.secure_cookies),
        )

    def _form_token(self, s: _Session) -> str:
        return hmac.new(self._form_key, s.sid.encode(), hashlib.sha256).hexdigest()

    def _now(self) -> dt.datetime:
        return self.clock.now()

    # ----------------------------------------------------------- steps

    def _start_oauth(self, session: _Session | None) -> Response:
        s = session if session is not None else _Session(sid=secrets.token_hex(16))
        state = self._states.issue(s.sid, now=self._now().timestamp(), nonce=secrets.token_hex(8))
        url = self.account.oauth_url(
            self.public_url + "callback", state=state, scope=self.scope, host=self.authorize_host
        )
        return Response.redirect(url, self._set_cookie(s))

    def _callback(self, request: Request) -> Response:
        s = self._session(request)
        if s is None:
            return self._page(400, "无法验证", "会话已失效，请在微信中重新打开链接。")
        state = request.query.get("state", "")
        now = self._now().timestamp()
        try:
            self._states.verify(state, s.sid, now=now)
            self._used.consume(state, now=now)
        except SignatureError as exc:
            log.warning("phone form: refused OAuth callback: %s", exc)
            return self._page(403, "无法验证", "链接已失效或被重复使用，请重新打开。")
        code = request.query.get("code", "")
        if not code:
            return self._page(403, "未授权", "需要授权才能继续。")
        try:
            token = self.account.exchange_code(code)
        except PlatformError as exc:
            if exc.errcode in (40029, 40163):
                return self._page(400, "链接已过期", "请返回微信重新打开此页面。")
            raise
        if token.is_snapshotuser:
            return self._page(403, "请在微信中打开", "快照页无法领取，请打开完整页面。")
        unionid = token.unionid
        if unionid is None and "snsapi_userinfo" in token.scopes:
            unionid = self.account.oauth_user_info(token).unionid
        member_id = self._member_for(token.openid, unionid)
        s = _Session(sid=s.sid, openid=token.openid, member_id=member_id)
        return Response.redirect(self.public_url, self._set_cookie(s))

    def _member_for(self, openid: str, unionid: str | None) -> str:
        ident = Identity.openid(self.account.appid, openid)
        mid = self.store.resolve(ident)
        union = Identity.unionid(unionid) if unionid else None
        if mid is None and union is not None:
            mid = self.store.resolve(union)
        if mid is None:
            mid = member_id_for(ident)
            self.store.upsert_members(
                [Member(mid, identities=(ident, *([union] if union else [])))]
            )
            return mid
        member = self.store.get_member(mid)
        missing = [
            i for i in (ident, union) if i is not None and member and i not in member.identities
        ]
        if member is not None and missing:
            self.store.upsert_members(
                [attrs.evolve(member, identities=(*member.identities, *missing))]
            )
        return mid

    def _form(self, request: Request, *, error: str = "", status: int = 200) -> Response:
        s = self._session(request)
        if s is None or not s.member_id:
            return self._start_oauth(s)
        err = f'<p class="error" id="error">{_e(error)}</p>' if error else ""
        body = f"""<form method="post" action="" id="phone-form">
{err}<input type="hidden" name="csrf" value="{self._form_token(s)}">
<label>手机号 <input type="tel" name="phone" id="phone" inputmode="numeric" maxlength="20"
 autocomplete="tel" required></label>
<label><input type="checkbox" name="consent" id="consent" value="yes" required>
 我同意商家保存手机号并向我发送会员优惠信息</label>
<button type="submit" id="submit">拆红包</button>
</form>"""
        return self._page(status, self.title, body, raw=True)

    def _submit(self, request: Request) -> Response:
        s = self._session(request)
        if s is None or not s.member_id:
            return self._page(403, "无法验证", "会话已失效，请在微信中重新打开链接。")
        form = request.form()
        if not hmac.compare_digest(form.get("csrf", ""), self._form_token(s)):
            return self._page(403, "无法验证", "页面已过期，请刷新后重试。")
        if form.get("consent") != "yes":
            return self._form(request, error="请先勾选同意。", status=400)
        try:
            number = normalize_phone(form.get("phone", ""))
        except UsageError:
            return self._form(request, error="请输入正确的手机号。", status=400)
        phone = Identity.phone(number, key=self.phone_key)
        if self.join is not None and self.join.invite_only:
            try:
                check_invited(
                    self.store.events_for(s.member_id, types=[INVITED]),
                    form=self.join.form,
                    at=self._now(),
                )
            except UsageError:
                return self._page(403, "仅限受邀", "本活动仅限受邀会员参加。")
        try:
            link_phone(self.store, s.member_id, phone)
        except PhoneLinkConflict:
            return self._form(request, error="该手机号已被其他账号使用。", status=409)
        now = self._now()
        self._record_consent(s.member_id, now)
        if self.join is not None:
            self.store.append_events([self.join.event(s.member_id, now)])
        claim = Claim.with_phone(
            member_id=s.member_id,
            address=s.openid,
            phone=number,
            phone_key=self.phone_key,
            source="phone_form",
        )
        outcome = self.redpackets.claim(self.rule, claim)
        return self._result(outcome)

    def _record_consent(self, member_id: str, now: dt.datetime) -> None:
        member = self.store.get_member(member_id)
        if member is not None and not member.consent.marketing:
            self.store.upsert_members([attrs.evolve(member, consent=Consent(marketing=True))])
        self.store.append_events(
            [
                Event(
                    member_id,
                    "consent",
                    now,
                    {"purpose": "marketing", "source": "phone_form"},
                    key=f"consent:phone_form:{self.rule.id}:{member_id}",
                )
            ]
        )

    def _result(self, outcome: ClaimOutcome) -> Response:
        amount = f"{outcome.amount_fen / 100:.2f}" if outcome.amount_fen else ""
        if outcome.status == "paid":
            return self._page(
                200,
                "红包已发放",
                f'<p id="result" data-status="paid">红包 {amount} 元已发放，请在微信中查收。</p>',
                raw=True,
            )
        if outcome.status in ("pending", "unknown"):
            return self._page(
                202,
                "处理中",
                '<p id="result" data-status="pending">红包正在发放，请稍后在微信中查收。</p>',
                raw=True,
            )
        reason = _e(str(outcome.reason or outcome.status))
        return self._page(
            200,
            "无法领取",
            f'<p id="result" data-status="{_e(outcome.status)}" data-reason="{reason}">'
            "本次无法领取红包。</p>",
            raw=True,
        )

    def _beacon(self, request: Request) -> Response:
        s = self._session(request)
        if s is None or not s.member_id:
            return Response(204)  # anonymous views are not recorded
        try:
            self.beacons.ingest(s.member_id, s.sid, request.body, now=self._now())
        except UsageError as exc:
            return Response(400, (("Content-Type", "text/plain"),), str(exc).encode())
        return Response(204)

    def _page(self, status: int, title: str, body: str, *, raw: bool = False) -> Response:
        content = body if raw else f"<p>{_e(body)}</p>"
        page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title></head>
<body><h1>{_e(title)}</h1>
{content}
<script src="beacon.js" data-endpoint="beacon" defer></script>
</body></html>"""
        return Response.html(status, page)

"""A ready phone/consent page inside WeChat or WeCom: OAuth → form → link the phone → red
packet.

Mount :class:`PhoneFormApp` (an ASGI app) under the public URL your official account's
web-authorization domain (or your WeCom app's trusted domain) allows, e.g.
``https://shop.example/redpacket/``:

1. ``GET /redpacket/`` without a session: a signed session cookie is set and the browser
   goes to the consent page with a ``state`` bound to that session
   (:class:`~membermkt.channels.wechat.oauth_state.StateSigner`).
2. ``GET /redpacket/callback?code&state``: the state must verify for this session and be
   unused (CSRF and replay are refused with 403); the code is exchanged for the visitor
   (expired or replayed codes — 40029/40163 — give a "reopen the link" page): an official
   account's follower (openid, and the unionid when the scope gives one, linked with
   ``Evidence.UNIONID``) or, with ``wecom=WeComWebAuth(...)``, a WeCom customer
   (``auth/getuserinfo`` → external_userid; staff and non-customers are refused). The
   visitor's member is resolved or created.
3. ``GET /redpacket/``: the form (phone number, consent checkbox, a CSRF token tied to the
   session) plus the page-view beacon.
4. ``POST /redpacket/``: the phone is linked to the member through the store's
   ``link(visitor, phone, evidence, at)``:

   * with a ``verifier`` (:class:`~membermkt.contrib.phoneverify.PhoneVerifier`), a code is
     texted to the number and the next ``POST`` (the code) links it with
     ``Evidence.VERIFIED_PHONE`` — so an imported buyer known by that phone and the
     follower become **one member** (merged per the identity rules, with an audit record);
   * without one, the typed number is linked with ``Evidence.CLAIMED``: attached when
     nobody holds it, refused (409) when another member does — a typed number proves
     nothing.

   The number is kept as the phone identity (a keyed blind index from ``phones``, by
   default the store's ``phones`` ring) and, with a ring, encrypted in the member's
   ``phone_enc`` attribute (for SMS); consent is recorded, and the red packet is claimed
   once through :class:`~membermkt.engine.redpackets.RedPacketService` (a second submit
   resumes or is denied by the rule's per-member/per-phone limits — never a second
   payment).
5. ``GET beacon.js`` / ``POST beacon``: dwell-time beacons → ``view`` events
   (:mod:`membermkt.contrib.beacons`).

The phone number is never stored, put in a cookie or logged raw.
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
from membermkt.contrib._phonelink import PhoneFormStore, PhoneLinkConflict, link_phone
from membermkt.contrib._visitors import (
    EXPIRED_CODES,
    OfficialAccountAuth,
    Refusal,
    Visitor,
    VisitorAuth,
    WeComWebAuth,
)
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
from membermkt.contrib.phoneverify import Challenge, PhoneVerifier
from membermkt.core.events import Event
from membermkt.core.identity import (
    Evidence,
    Identity,
    member_id_for,
    normalize_phone,
)
from membermkt.core.members import Consent, Member
from membermkt.core.membership.joining import JoinOffer
from membermkt.core.membership.qualification import INVITED, check_invited
from membermkt.core.ports import Clock
from membermkt.core.redpackets import Claim, RedPacketRule
from membermkt.engine.redpackets import ClaimOutcome, RedPacketService
from membermkt.errors import (
    ConfigError,
    MembermktError,
    PlatformError,
    QuotaExceeded,
    SignatureError,
    UsageError,
)
from membermkt.security.phones import PHONE_ATTRIBUTE, PhoneProtector

__all__ = [
    "OfficialAccountAuth",
    "PhoneFormApp",
    "PhoneFormStore",
    "PhoneLinkConflict",
    "WeComWebAuth",
    "link_phone",
]

log = logging.getLogger(__name__)

COOKIE = "mm_pf"


@attrs.frozen(slots=True, kw_only=True)
class _Session:
    sid: str
    ident: str = ""  # the visitor's identity token
    member_id: str = ""
    pending: str = ""  # an encoded Challenge while a code is awaited
    penc: str = ""  # the typed number, encrypted, while a code is awaited


class PhoneFormApp:
    """The phone/consent/red-packet page as an ASGI app (see the module docstring).

    Args:
        store: members, identities (``link``), events, budgets and payout intents.
        public_url: the page's absolute URL (ending in ``/``), inside the account's
            web-authorization domain (or the WeCom app's trusted domain).
        secret: the signing key for sessions, states and the form token (≥ 16 bytes).
        clock: where ``now`` comes from.
        account: the official account (sync client) whose followers open the page.
        wecom: instead of ``account``, a :class:`WeComWebAuth` for the corp's customers
            opening the page inside WeCom.
        redpackets: the red-packet service paying ``rule`` (``None`` with ``rule=None``:
            the page only links the phone and records consent).
        rule: the red-packet rule of this page.
        phones: the phone key ring (default: the store's ``phones``); phone identities
            are its blind index and the number is encrypted in ``phone_enc``.
        phone_key: without any ring, the key of plain phone digests (as for
            ``Identity.phone``; only stores without the phone-key rule, such as
            ``InMemoryStore``, keep those).
        verifier: a :class:`~membermkt.contrib.phoneverify.PhoneVerifier`: the number is
            verified by a texted code and then linked as ``verified_phone`` (merging with
            a member already known by it); without one it is linked as ``claimed``.
        scope: ``"snsapi_base"`` (silent) or ``"snsapi_userinfo"`` (asks; gives unionid);
            official accounts only.
        authorize_host: WeChat's authorize host (the emulator's URL in tests).
        secure_cookies: mark cookies ``Secure`` (keep ``True`` in production: https).
        title: the page title.
        join: a :class:`~membermkt.core.membership.JoinOffer`: a successful submission
            also records ``member_joined`` (the page becomes the programme's joining form;
            with ``invite_only``, members without an invitation are refused).

    Raises:
        ConfigError: for a ``public_url`` that is not an absolute http(s) URL ending in
            ``/``, a short secret, not exactly one of ``account``/``wecom``, only one of
            ``redpackets``/``rule``, or a store that refuses phone identities without a
            key while no ``phones`` ring is given.
    """

    def __init__(
        self,
        *,
        store: PhoneFormStore,
        public_url: str,
        secret: bytes,
        clock: Clock,
        account: OfficialAccount | None = None,
        wecom: WeComWebAuth | None = None,
        redpackets: RedPacketService | None = None,
        rule: RedPacketRule | None = None,
        phones: PhoneProtector | None = None,
        phone_key: str = "",
        verifier: PhoneVerifier | None = None,
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
        if (account is None) == (wecom is None):
            raise ConfigError("PhoneFormApp needs exactly one of account= or wecom=")
        if (redpackets is None) != (rule is None):
            raise ConfigError("PhoneFormApp needs both redpackets= and rule=, or neither")
        self.auth: VisitorAuth = (
            OfficialAccountAuth(account, scope=scope, host=authorize_host)
            if account is not None
            else wecom  # type: ignore[assignment]
        )
        self.account = account
        self.store = store
        self.redpackets = redpackets
        self.rule = rule
        self.public_url = public_url
        self.clock = clock
        self.phones = phones if phones is not None else getattr(store, "phones", None)
        if self.phones is None and getattr(store, "insecure_demo", None) is False:
            raise ConfigError(
                "this store keeps phone identities only under a phone key: configure its "
                "ring (MEMBERMKT_PHONE_KEYS or SqlStore(..., phones=...)) or pass phones="
            )
        self.phone_key = phone_key
        self.verifier = verifier
        self.scope = scope
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
        rule = self.rule.id if self.rule is not None else None
        return f"PhoneFormApp({self.public_url!r}, auth={self.auth!r}, rule={rule!r})"

    @property
    def authorize_host(self) -> str:
        """The host of the authorize page (settable: tests point it at an emulator)."""
        return self.auth.host

    @authorize_host.setter
    def authorize_host(self, host: str) -> None:
        self.auth.host = host

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
            sid=data["sid"],
            ident=data.get("ident", ""),
            member_id=data.get("member_id", ""),
            pending=data.get("pending", ""),
            penc=data.get("penc", ""),
        )

    def _set_cookie(self, s: _Session) -> tuple[str, str]:
        data = {k: v for k, v in attrs.asdict(s).items() if v}
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
        url = self.auth.authorize_url(self.public_url + "callback", state=state)
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
            visitor = self.auth.visitor(code)
        except PlatformError as exc:
            if exc.errcode in EXPIRED_CODES:
                return self._page(400, "链接已过期", "请返回微信重新打开此页面。")
            raise
        if isinstance(visitor, Refusal):
            return self._page(visitor.status, visitor.title, visitor.text)
        member_id = self._member_for(visitor)
        s = _Session(sid=s.sid, ident=visitor.identity.token, member_id=member_id)
        return Response.redirect(self.public_url, self._set_cookie(s))

    def _member_for(self, visitor: Visitor) -> str:
        ident = visitor.identity
        now = self._now()
        mid = None
        for extra in visitor.extra:  # a platform-reported unionid links (and may merge)
            mid = self.store.link(ident, extra, Evidence.UNIONID, now, by=self.auth.by).member_id
        if mid is None:
            mid = self.store.resolve(ident)
        if mid is None:
            mid = member_id_for(ident)
            self.store.upsert_members([Member(mid, identities=(ident,))])
        return mid

    def _live(self, s: _Session) -> _Session | None:
        """The session with the member that holds its identity *now* (a merge elsewhere
        may have moved it); ``None`` when nobody does (the member is gone)."""
        try:
            mid = self.store.resolve(Identity.from_token(s.ident))
        except UsageError:
            return None
        if mid is None:
            return None
        return s if mid == s.member_id else attrs.evolve(s, member_id=mid)

    def _form(self, request: Request, *, error: str = "", status: int = 200) -> Response:
        s = self._session(request)
        if s is None or not s.member_id or not s.ident:
            return self._start_oauth(s)
        live = self._live(s)
        if live is None:  # a session whose member is gone: authorize again
            return self._start_oauth(_Session(sid=s.sid))
        moved = live.member_id != s.member_id
        if live.pending:
            return self._code_form(live, error=error, status=status, cookie=moved)
        headers = (self._set_cookie(live),) if moved else ()
        return self._phone_form(live, error, status, *headers)

    def _code_form(
        self, s: _Session, *, error: str = "", status: int = 200, cookie: bool = False
    ) -> Response:
        err = f'<p class="error" id="error">{_e(error)}</p>' if error else ""
        body = f"""<form method="post" action="" id="code-form">
{err}<input type="hidden" name="csrf" value="{self._form_token(s)}">
<label>短信验证码 <input type="text" name="code" id="code" inputmode="numeric" maxlength="10"
 autocomplete="one-time-code" required></label>
<button type="submit" id="submit">验证并领取</button>
</form>"""
        headers = (self._set_cookie(s),) if cookie else ()
        return self._page(status, self.title, body, *headers, raw=True)

    def _phone_identity(self, number: str) -> Identity:
        if self.phones is not None:
            return self.phones.identity(number)
        return Identity.phone(number, key=self.phone_key)

    def _submit(self, request: Request) -> Response:
        s = self._session(request)
        s = self._live(s) if s is not None and s.member_id and s.ident else None
        if s is None:
            return self._page(403, "无法验证", "会话已失效，请在微信中重新打开链接。")
        form = request.form()
        if not hmac.compare_digest(form.get("csrf", ""), self._form_token(s)):
            return self._page(403, "无法验证", "页面已过期，请刷新后重试。")
        if s.pending:
            return self._submit_code(s, form.get("code", ""))
        if form.get("consent") != "yes":
            return self._form(request, error="请先勾选同意。", status=400)
        try:
            number = normalize_phone(form.get("phone", ""))
        except UsageError:
            return self._form(request, error="请输入正确的手机号。", status=400)
        phone = self._phone_identity(number)
        if self.join is not None and self.join.invite_only:
            try:
                check_invited(
                    self.store.events_for(s.member_id, types=[INVITED]),
                    form=self.join.form,
                    at=self._now(),
                )
            except UsageError:
                return self._page(403, "仅限受邀", "本活动仅限受邀会员参加。")
        penc = self.phones.encrypt(number) if self.phones is not None else ""
        if self.verifier is None:
            return self._link_and_claim(s, phone, penc, Evidence.CLAIMED)
        try:
            challenge = self.verifier.start(self.store, number, phone, sid=s.sid, now=self._now())
        except QuotaExceeded:
            return self._form(request, error="验证码发送过于频繁，请明天再试。", status=429)
        s = attrs.evolve(s, pending=challenge.encode(), penc=penc)
        return self._code_form(s, cookie=True)

    def _submit_code(self, s: _Session, code: str) -> Response:
        assert self.verifier is not None or not s.pending
        try:
            challenge = Challenge.decode(s.pending)
        except UsageError:
            challenge = None
        if self.verifier is None or challenge is None:
            s = attrs.evolve(s, pending="", penc="")
            return self._page(400, "请重试", "请重新填写手机号。", self._set_cookie(s))
        result = self.verifier.check(self.store, challenge, code, sid=s.sid, now=self._now())
        if result == "wrong":
            return self._code_form(s, error="验证码不正确。", status=400)
        if result != "ok":
            cleared = attrs.evolve(s, pending="", penc="")
            text = "验证码已过期" if result == "expired" else "错误次数过多"
            return self._page(400, "请重试", f"{text}，请重新获取。", self._set_cookie(cleared))
        cleared = attrs.evolve(s, pending="", penc="")
        return self._link_and_claim(cleared, challenge.phone, s.penc, Evidence.VERIFIED_PHONE)

    def _link_and_claim(
        self, s: _Session, phone: Identity, penc: str, evidence: Evidence
    ) -> Response:
        now = self._now()
        visitor = Identity.from_token(s.ident)
        try:
            out = link_phone(self.store, visitor, phone, evidence=evidence, at=now, by=self.auth.by)
        except PhoneLinkConflict:
            s = attrs.evolve(s, pending="", penc="")
            return self._phone_form(s, "该手机号已被其他账号使用。", 409, self._set_cookie(s))
        mid = out.member_id
        s = attrs.evolve(s, member_id=mid)
        cookie = self._set_cookie(s)
        member = self._record_consent(mid, now, penc)
        if self.join is not None:
            self.store.append_events([self.join.event(mid, now)])
        address = self.auth.payout_address(member, visitor)
        if self.redpackets is None or self.rule is None or not address:
            return self._page(
                200,
                "已登记",
                '<p id="result" data-status="linked">手机号已登记。</p>',
                cookie,
                raw=True,
            )
        claim = Claim.for_phone(member_id=mid, address=address, phone=phone, source="phone_form")
        return self._result(self.redpackets.claim(self.rule, claim), cookie)

    def _phone_form(
        self, s: _Session, error: str, status: int, *headers: tuple[str, str]
    ) -> Response:
        err = f'<p class="error" id="error">{_e(error)}</p>' if error else ""
        body = f"""<form method="post" action="" id="phone-form">
{err}<input type="hidden" name="csrf" value="{self._form_token(s)}">
<label>手机号 <input type="tel" name="phone" id="phone" inputmode="numeric" maxlength="20"
 autocomplete="tel" required></label>
<label><input type="checkbox" name="consent" id="consent" value="yes" required>
 我同意商家保存手机号并向我发送会员优惠信息</label>
<button type="submit" id="submit">拆红包</button>
</form>"""
        return self._page(status, self.title, body, *headers, raw=True)

    def _record_consent(self, member_id: str, now: dt.datetime, penc: str) -> Member | None:
        member = self.store.get_member(member_id)
        if member is not None:
            changed = member
            if not member.consent.marketing:
                changed = attrs.evolve(changed, consent=Consent(marketing=True))
            if penc and member.attributes.get(PHONE_ATTRIBUTE) != penc:
                attributes = {**dict(member.attributes), PHONE_ATTRIBUTE: penc}
                changed = attrs.evolve(changed, attributes=attributes)
            if changed is not member:
                self.store.upsert_members([changed])
                member = changed
        rule_id = self.rule.id if self.rule is not None else "phone"
        self.store.append_events(
            [
                Event(
                    member_id,
                    "consent",
                    now,
                    {"purpose": "marketing", "source": "phone_form"},
                    key=f"consent:phone_form:{rule_id}:{member_id}",
                )
            ]
        )
        return member

    def _result(self, outcome: ClaimOutcome, *headers: tuple[str, str]) -> Response:
        amount = f"{outcome.amount_fen / 100:.2f}" if outcome.amount_fen else ""
        if outcome.status == "paid":
            return self._page(
                200,
                "红包已发放",
                f'<p id="result" data-status="paid">红包 {amount} 元已发放，请在微信中查收。</p>',
                *headers,
                raw=True,
            )
        if outcome.status in ("pending", "unknown"):
            return self._page(
                202,
                "处理中",
                '<p id="result" data-status="pending">红包正在发放，请稍后在微信中查收。</p>',
                *headers,
                raw=True,
            )
        reason = _e(str(outcome.reason or outcome.status))
        return self._page(
            200,
            "无法领取",
            f'<p id="result" data-status="{_e(outcome.status)}" data-reason="{reason}">'
            "本次无法领取红包。</p>",
            *headers,
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

    def _page(
        self, status: int, title: str, body: str, *headers: tuple[str, str], raw: bool = False
    ) -> Response:
        content = body if raw else f"<p>{_e(body)}</p>"
        page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title></head>
<body><h1>{_e(title)}</h1>
{content}
<script src="beacon.js" data-endpoint="beacon" defer></script>
</body></html>"""
        return Response.html(status, page, *headers)

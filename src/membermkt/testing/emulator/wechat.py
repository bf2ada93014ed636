"""An in-process emulator of the WeChat official-account API, with state.

Use it as an httpx transport (:meth:`WeChatEmulator.transport`) for the clients, or serve it
on a loopback port (:meth:`WeChatEmulator.serve`) for multi-process tests and benchmarks::

    emu = WeChatEmulator(seed=1)
    acct = emu.add_account("wx123", "secret")
    acct.add_followers(["o1", "o2"])
    client = OfficialAccount("wx123", "secret", transport=emu.transport())

It refuses what WeChat refuses, with WeChat's errcodes (reference §1): tokens expire and
rotate (stable: same token while valid, rotation ``token_overlap`` seconds before expiry;
classic: each fetch kills the previous token ``token_overlap`` seconds later); follower
lists page by 10,000; tags keep their limits (100 per account, 20 per user, 50 per batch,
reserved ids 0–2); mass sends need 2..10,000 openids, respect 4 mass messages per user per
calendar month (Beijing time) and de-duplicate ``clientmsgid`` for 24 hours (45065 with the
first ``msg_id``); template sends need a registered template and a follower; customer-service
messages need the 48-hour window opened by the follower's last message (5 messages) or the
1-minute window of a click/follow/scan (3 messages); API call limits answer 45009.

Faults (:attr:`WeChatEmulator.faults`, seeded, switchable at runtime): ``busy`` (-1),
``throttle`` (45009), ``token_invalidate`` (the presented token dies: 40001), ``http5xx``
(502), ``timeout`` (the call takes effect, the answer is lost), ``drop`` (the connection
drops before the call arrives).

What each follower received is recorded in :attr:`WeChatEmulator.receipts` (and counted per
(appid, openid, kind, content) so duplicates are found in O(1) per receipt).

Where the reference does not give an errcode, the emulator's choice is marked in comments.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import attrs
import httpx

from membermkt.channels.wechat.api.menu import (
    BUTTON_TYPES,
    KEY_MAX,
    NAME_MAX,
    SUB_NAME_MAX,
    URL_MAX,
)
from membermkt.channels.wechat.api.messaging import CUSTOM_MSGTYPES, MASS_MSGTYPES
from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.replies import cdata
from membermkt.errors import UsageError
from membermkt.testing.emulator._base import (
    CallCounter,
    DroppedConnection,
    EmulatorTransport,
    FaultPlan,
    LoopbackServer,
    LostResponse,
    serve,
)
from membermkt.wire.budget import BudgetWindowExceeded, CallBudget, CallBudgets

__all__ = [
    "EMULATOR_LIMITS",
    "FAULTS",
    "Account",
    "Follower",
    "Push",
    "Receipt",
    "WeChatEmulator",
]

FAULTS = ("busy", "throttle", "token_invalidate", "http5xx", "timeout", "drop")

EMULATOR_LIMITS: tuple[CallBudget, ...] = (
    CallBudget("/cgi-bin/token", per_day=2000),
    CallBudget("/cgi-bin/stable_token", per_day=500_000, per_minute=10_000),
    CallBudget("/cgi-bin/user/get", per_day=500),
    CallBudget("/cgi-bin/user/info", per_day=5_000_000),
    CallBudget(
        "mass",
        per_day=100,
        per_minute=60,
        apis=("/cgi-bin/message/mass/send", "/cgi-bin/message/mass/sendall"),
    ),
    CallBudget("/cgi-bin/message/custom/send", per_day=500_000),
    CallBudget("/cgi-bin/qrcode/create", per_day=100_000),
    CallBudget("/cgi-bin/menu/create", per_day=1000),
)
"""The platform limits the emulator enforces per account (reference §5)."""

BEIJING = dt.timezone(dt.timedelta(hours=8))
_TOKEN_APIS = frozenset({"/cgi-bin/token", "/cgi-bin/stable_token"})
MASS_PER_USER_PER_MONTH = 4
CLIENTMSGID_WINDOW = 24 * 3600
MSG_WINDOW, MSG_WINDOW_QUOTA = 48 * 3600, 5
EVENT_WINDOW, EVENT_WINDOW_QUOTA = 60, 3


class _Refuse(Exception):
    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errcode, errmsg)
        self.errcode, self.errmsg, self.extra = errcode, errmsg, extra


@attrs.define
class Follower:
    """One user of an account (mutable emulator state)."""

    openid: str
    subscribed: bool = True
    subscribe_time: int = 0
    unionid: str | None = None
    scene: str | None = None
    tagids: set[int] = attrs.field(factory=set)
    blocked: bool = False
    window_kind: str | None = None
    window_at: float = 0.0
    window_used: int = 0
    mass_month: dict[str, int] = attrs.field(factory=dict)
    subscribe_grants: collections.Counter[str] = attrs.field(factory=collections.Counter)


@attrs.frozen(slots=True)
class Receipt:
    """Something a follower received."""

    appid: str
    openid: str
    kind: str
    content: str
    msg_id: str
    at: float


@attrs.frozen(slots=True)
class Push:
    """A callback request as WeChat would send it: feed it to your handler."""

    method: str
    query: Mapping[str, str]
    body: bytes

    @property
    def query_string(self) -> str:
        return urlencode(dict(self.query))


@attrs.define
class _Tag:
    id: int
    name: str
    fans: dict[str, None] = attrs.field(factory=dict)


@attrs.define
class _MassJob:
    msg_id: str
    msgtype: str
    status: str
    total: int
    sent: int


class Account:
    """The emulated state of one official account. Create with
    :meth:`WeChatEmulator.add_account`."""

    def __init__(
        self,
        emulator: WeChatEmulator,
        appid: str,
        secret: str,
        *,
        token: str,
        encoding_aes_key: str,
        original_id: str,
        limits: Iterable[CallBudget],
    ) -> None:
        self.emulator = emulator
        self.appid = appid
        self.secret = secret
        self.token = token
        self.encoding_aes_key = encoding_aes_key
        self.original_id = original_id
        self.crypto = MessageCrypto(token, encoding_aes_key, appid)
        self.followers: dict[str, Follower] = {}
        self._order: list[str] = []
        self._position: dict[str, int] = {}
        self.tags: dict[int, _Tag] = {}
        self._next_tag = 100
        self.templates: set[str] = set()
        self.mass_jobs: dict[str, _MassJob] = {}
        self._clientmsgids: dict[str, tuple[str, float]] = {}
        self._to_all: list[float] = []
        self.menu: list[Any] | None = None
        self.qrcodes: dict[str, tuple[str, bool]] = {}
        self.limits = CallBudgets(limits)
        self.stable: tuple[str, float] | None = None
        self.valid_tokens: dict[str, float] = {}
        self.token_fetches = 0
        self.token_repeats = 0
        """Stable-token fetches answered with the still-current token (redundant fetches)."""

    def __repr__(self) -> str:
        return f"Account({self.appid!r}, {len(self.followers)} followers, {len(self.tags)} tags)"

    # ----------------------------------------------------------- test set-up helpers

    def add_followers(
        self,
        openids: Iterable[str],
        *,
        at: float | None = None,
        unionid: Callable[[str], str] | None = None,
    ) -> None:
        """Add following users (their follow does not open a messaging window)."""
        now = self.emulator.now() if at is None else at
        with self.emulator.lock:
            for o in openids:
                if o not in self.followers:
                    self._position[o] = len(self._order)
                    self._order.append(o)
                self.followers[o] = Follower(o, True, int(now), unionid(o) if unionid else None)

    def follow(self, openid: str, *, scene: str | None = None, at: float | None = None) -> Push:
        """A user follows (through a QR ``scene`` if given); returns the ``subscribe`` push."""
        now = self.emulator.now() if at is None else at
        with self.emulator.lock:
            if openid not in self.followers:
                self._position[openid] = len(self._order)
                self._order.append(openid)
                self.followers[openid] = Follower(openid)
            f = self.followers[openid]
            f.subscribed, f.subscribe_time, f.scene = True, int(now), scene
            self._interact(f, "follow", now)
        if scene:
            return self.event_push(
                openid, "subscribe", at=now, EventKey=f"qrscene_{scene}", Ticket=f"T{scene}"
            )
        return self.event_push(openid, "subscribe", at=now)

    def unfollow(self, openid: str, *, at: float | None = None) -> Push:
        """A user unfollows; returns the ``unsubscribe`` push."""
        now = self.emulator.now() if at is None else at
        with self.emulator.lock:
            f = self._follower(openid)
            f.subscribed = False
            f.window_kind = None
        return self.event_push(openid, "unsubscribe", at=now)

    def interact(self, openid: str, kind: str = "message", *, at: float | None = None) -> None:
        """Record a user action that opens the customer-service window: ``"message"``
        (48 h, 5 messages) or ``"click"``/``"follow"``/``"scan"`` (1 min, 3 messages)."""
        if kind not in ("message", "click", "follow", "scan"):
            raise UsageError(f"unknown interaction {kind!r}")
        with self.emulator.lock:
            self._interact(self._follower(openid), kind, self.emulator.now() if at is None else at)

    def block(self, openid: str) -> None:
        """The user turns off messages from the account (template sends get 48002)."""
        with self.emulator.lock:
            self._follower(openid).blocked = True

    def add_template(self, *template_ids: str) -> None:
        """Register template ids (others get 40037)."""
        with self.emulator.lock:
            self.templates.update(template_ids)

    def grant_subscribe(self, openid: str, template_id: str, times: int = 1) -> None:
        """The user accepts a subscribe-message popup ``times`` times for ``template_id``."""
        with self.emulator.lock:
            self._follower(openid).subscribe_grants[template_id] += times

    def tag_names(self, openid: str) -> set[str]:
        """The names of the tags a follower carries."""
        with self.emulator.lock:
            return {self.tags[t].name for t in self._follower(openid).tagids}

    # ----------------------------------------------------------- pushes

    def event_push(
        self,
        openid: str,
        event: str,
        *,
        at: float | None = None,
        encrypted: bool = True,
        **fields: str,
    ) -> Push:
        """A callback push of an event (``subscribe``, ``CLICK``, …) from ``openid``."""
        body = "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in fields.items())
        return self.push_xml(
            openid, "event", f"<Event>{cdata(event)}</Event>{body}", at=at, encrypted=encrypted
        )

    def text_push(
        self,
        openid: str,
        content: str,
        *,
        msg_id: int | None = None,
        at: float | None = None,
        encrypted: bool = True,
    ) -> Push:
        """A callback push of a text message (opens the 48-hour window)."""
        now = self.emulator.now() if at is None else at
        with self.emulator.lock:
            if openid in self.followers:
                self._interact(self.followers[openid], "message", now)
            mid = msg_id if msg_id is not None else next(self.emulator._ids)
        body = f"<Content>{cdata(content)}</Content><MsgId>{mid}</MsgId>"
        return self.push_xml(openid, "text", body, at=now, encrypted=encrypted)

    def push_xml(
        self,
        openid: str,
        msg_type: str,
        inner: str,
        *,
        at: float | None = None,
        encrypted: bool = True,
    ) -> Push:
        """A push with the common fields and ``inner`` XML, signed (and encrypted)."""
        now = int(self.emulator.now() if at is None else at)
        xml = (
            f"<xml><ToUserName>{cdata(self.original_id)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName><CreateTime>{now}</CreateTime>"
            f"<MsgType>{cdata(msg_type)}</MsgType>{inner}</xml>"
        )
        ts, nonce = str(now), str(next(self.emulator._ids))
        query = {
            "signature": self.crypto.signature(ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": openid,
        }
        if not encrypted:
            return Push("POST", query, xml.encode())
        enc = self.crypto.encrypt_message(xml)
        query.update(encrypt_type="aes", msg_signature=self.crypto.signature(ts, nonce, enc))
        body = (
            f"<xml><ToUserName>{cdata(self.original_id)}</ToUserName>"
            f"<Encrypt>{cdata(enc)}</Encrypt></xml>"
        )
        return Push("POST", query, body.encode())

    def verification_push(self, echostr: str = "echo-123") -> Push:
        """The GET WeChat sends to verify the callback URL."""
        ts, nonce = str(int(self.emulator.now())), str(next(self.emulator._ids))
        q = {
            "signature": self.crypto.signature(ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }
        return Push("GET", q, b"")

    # ----------------------------------------------------------- internals

    def _follower(self, openid: str) -> Follower:
        f = self.followers.get(openid)
        if f is None:
            raise _Refuse(40003, f"invalid openid hint: [{openid}]")
        return f

    def _subscribed(self, openid: str, code: int = 43004) -> Follower:
        f = self.followers.get(openid)
        if f is None:
            raise _Refuse(40003, "invalid openid")
        if not f.subscribed:
            raise _Refuse(code, "require subscribe")
        return f

    @staticmethod
    def _interact(f: Follower, kind: str, now: float) -> None:
        f.window_kind, f.window_at, f.window_used = kind, now, 0


class WeChatEmulator:
    """The official-account API emulator (several accounts side by side).

    Args:
        seed: seeds the fault plan and generated ids.
        clock: unix-seconds clock (default :func:`time.time`); inject one to move time.
        token_ttl: lifetime of issued access tokens, in seconds (7200 on the platform).
        token_overlap: how long an old token stays valid after rotation (300 on the
            platform; stable tokens rotate this long before expiry).
        limits: the per-account API limits (default :data:`EMULATOR_LIMITS`; ``()``: none).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        token_ttl: float = 7200,
        token_overlap: float = 300,
        limits: Iterable[CallBudget] | None = None,
    ) -> None:
        if token_overlap >= token_ttl:
            raise UsageError("token_overlap must be shorter than token_ttl")
        self.now = clock
        self.token_ttl = token_ttl
        self.token_overlap = token_overlap
        self._limits = tuple(EMULATOR_LIMITS if limits is None else limits)
        self.faults = FaultPlan(FAULTS, seed=seed)
        self.calls = CallCounter()
        self.accounts: dict[str, Account] = {}
        self.lock = threading.RLock()
        self._ids = itertools.count(1_000_000 + seed * 1000)
        self._token_owner: dict[str, str] = {}
        self.receipts: list[Receipt] = []
        self._receipt_counts: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
        self._by_openid: dict[tuple[str, str], list[Receipt]] = {}
        self.duplicates = 0
        """Receipts that repeated an earlier (appid, openid, kind, content)."""
        self.errcodes: collections.Counter[int] = collections.Counter()
        """How often each non-zero errcode was answered."""
        self._fail_next: collections.deque[tuple[int, str | None]] = collections.deque()

    def __repr__(self) -> str:
        return f"WeChatEmulator({len(self.accounts)} accounts, {len(self.receipts)} receipts)"

    # ----------------------------------------------------------- set-up

    def add_account(
        self,
        appid: str,
        secret: str,
        *,
        token: str = "membermkt",
        encoding_aes_key: str | None = None,
        original_id: str | None = None,
    ) -> Account:
        """Create an account; its callback credentials default to deterministic values."""
        key = encoding_aes_key or hashlib.sha256(appid.encode()).hexdigest()[:43]
        acct = Account(
            self,
            appid,
            secret,
            token=token,
            encoding_aes_key=key,
            original_id=original_id or f"gh_{appid[-12:]}",
            limits=self._limits,
        )
        with self.lock:
            self.accounts[appid] = acct
        return acct

    def fail_next(self, *errcodes: int, api: str | None = None) -> None:
        """Answer the next business calls (to ``api`` only, if given; token endpoints are
        never affected) with these errcodes, in order, without doing anything."""
        with self.lock:
            self._fail_next.extend((code, api) for code in errcodes)

    def _scripted_errcode(self, api: str) -> int | None:
        if not self._fail_next or api in _TOKEN_APIS:
            return None
        for i, (code, target) in enumerate(self._fail_next):
            if target is None or target == api:
                del self._fail_next[i]
                return code
        return None

    def transport(self) -> EmulatorTransport:
        """An httpx transport (sync and async) running this emulator in-process."""
        return EmulatorTransport(self.handle)

    def serve(self, *, port: int = 0, lost_hold: float = 0.5) -> LoopbackServer:
        """Serve on ``127.0.0.1`` in a background thread (close the returned server)."""
        return serve(self.handle, port=port, lost_hold=lost_hold, raw=self.handle_raw)

    # ----------------------------------------------------------- records

    def received(self, appid: str, openid: str) -> list[Receipt]:
        """What one follower received."""
        with self.lock:
            return list(self._by_openid.get((appid, openid), ()))

    def duplicate_receipts(self) -> dict[tuple[str, str, str, str], int]:
        """(appid, openid, kind, content digest) → count, for everything received twice+."""
        with self.lock:
            return {k: n for k, n in self._receipt_counts.items() if n > 1}

    def _receive(self, acct: Account, openid: str, kind: str, content: str, msg_id: str) -> None:
        key = (acct.appid, openid, kind, content)
        self._receipt_counts[key] += 1
        if self._receipt_counts[key] > 1:
            self.duplicates += 1
        receipt = Receipt(acct.appid, openid, kind, content, msg_id, self.now())
        self.receipts.append(receipt)
        self._by_openid.setdefault((acct.appid, openid), []).append(receipt)

    # ----------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one httpx request (the transport's entry point)."""
        status, headers, content = self.handle_raw(
            request.method, request.url.path, dict(request.url.params), request.content
        )
        return httpx.Response(status, headers=headers, content=content)

    def handle_raw(
        self, method: str, api: str, params: Mapping[str, str], content: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request given as plain values (the loopback server's entry point).

        Raises:
            LostResponse: a ``timeout`` fault (the call took effect, the answer is lost).
            DroppedConnection: a ``drop`` fault (the call never arrived).
        """
        self.calls.add(api)
        fault = self.faults.draw(api)
        if fault == "drop":
            raise DroppedConnection(api)
        if fault == "http5xx":
            return 502, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>"
        if fault in ("busy", "throttle"):
            code = -1 if fault == "busy" else 45009
            with self.lock:
                self.errcodes[code] += 1
            msg = "system error" if code == -1 else "reach max api daily quota limit"
            return _json({"errcode": code, "errmsg": msg})
        try:
            body = json.loads(content) if content else {}
        except ValueError:
            return _json({"errcode": 47001, "errmsg": "data format error"})
        with self.lock:
            scripted = self._scripted_errcode(api)
            if scripted is not None:
                self.errcodes[scripted] += 1
                return _json({"errcode": scripted, "errmsg": f"emulated errcode {scripted}"})
            try:
                result = self._dispatch(api, params, body, fault)
            except _Refuse as r:
                result = {"errcode": r.errcode, "errmsg": r.errmsg, **r.extra}
                self.errcodes[r.errcode] += 1
        if fault == "timeout":
            raise LostResponse(api)
        return _json(result)

    def _dispatch(
        self, api: str, params: Mapping[str, str], body: Any, fault: str | None
    ) -> dict[str, Any]:
        if api == "/cgi-bin/stable_token":
            return self._stable_token(api, body)
        if api == "/cgi-bin/token":
            return self._classic_token(api, params)
        acct = self._authorize(params.get("access_token", ""), fault)
        self._limit(acct, api)
        handler = _ROUTES.get(api)
        if handler is None:
            raise _Refuse(48001, f"api unauthorized: {api}")  # emulator choice for unknown APIs
        if not isinstance(body, dict):
            raise _Refuse(47001, "data format error")
        return handler(self, acct, params, body)

    def _limit(self, acct: Account, api: str) -> None:
        try:
            acct.limits.take(api, self.now())
        except BudgetWindowExceeded:
            raise _Refuse(45009, "reach max api daily quota limit") from None

    # ----------------------------------------------------------- tokens

    def _account_for(self, appid: Any, secret: Any) -> Account:
        acct = self.accounts.get(appid) if isinstance(appid, str) else None
        if acct is None:
            raise _Refuse(40013, "invalid appid")
        if secret != acct.secret:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        return acct

    def _issue(self, acct: Account, now: float) -> str:
        token = (
            f"ET{acct.appid[-6:]}{next(self._ids)}"
            + hashlib.sha1(f"{acct.appid}{now}{next(self._ids)}".encode()).hexdigest()
        )
        acct.valid_tokens[token] = now + self.token_ttl
        self._token_owner[token] = acct.appid
        acct.token_fetches += 1
        return token

    def _stable_token(self, api: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            raise _Refuse(40002, "invalid grant_type")
        acct = self._account_for(body.get("appid"), body.get("secret"))
        self._limit(acct, api)
        now = self.now()
        cur = acct.stable
        if body.get("force_refresh"):
            if cur is not None:
                acct.valid_tokens.pop(cur[0], None)
            cur = None
        if cur is not None and cur[0] in acct.valid_tokens and cur[1] - now > self.token_overlap:
            acct.token_repeats += 1
            return {"access_token": cur[0], "expires_in": int(cur[1] - now)}
        token = self._issue(acct, now)
        acct.stable = (token, now + self.token_ttl)
        return {"access_token": token, "expires_in": int(self.token_ttl)}

    def _classic_token(self, api: str, params: Mapping[str, str]) -> dict[str, Any]:
        if params.get("grant_type") != "client_credential":
            raise _Refuse(40002, "invalid grant_type")
        acct = self._account_for(params.get("appid"), params.get("secret"))
        self._limit(acct, api)
        now = self.now()
        stable = acct.stable[0] if acct.stable else None
        for tok, dies in list(acct.valid_tokens.items()):
            if tok != stable:  # the two endpoints' tokens are independent
                acct.valid_tokens[tok] = min(dies, now + self.token_overlap)
        token = self._issue(acct, now)
        return {"access_token": token, "expires_in": int(self.token_ttl)}

    def _authorize(self, token: str, fault: str | None) -> Account:
        if not token:
            raise _Refuse(41001, "access_token missing")
        appid = self._token_owner.get(token)
        acct = self.accounts.get(appid) if appid else None
        if acct is None:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        dies = acct.valid_tokens.get(token)
        if fault == "token_invalidate":
            acct.valid_tokens.pop(token, None)
            if acct.stable and acct.stable[0] == token:
                acct.stable = None
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        if dies is None:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        if self.now() >= dies:
            raise _Refuse(42001, "access_token expired")
        return acct

    # ----------------------------------------------------------- users

    def _user_get(self, acct: Account, params: Mapping[str, str], body: Any) -> dict[str, Any]:
        cursor = params.get("next_openid") or ""
        start = acct._position[cursor] + 1 if cursor in acct._position else 0
        if cursor and cursor not in acct._position:
            raise _Refuse(40003, "invalid next_openid")
        page: list[str] = []
        i = start
        while i < len(acct._order) and len(page) < 10_000:
            o = acct._order[i]
            if acct.followers[o].subscribed:
                page.append(o)
            i += 1
        total = sum(1 for f in acct.followers.values() if f.subscribed)
        nxt = page[-1] if page else ""
        return {"total": total, "count": len(page), "data": {"openid": page}, "next_openid": nxt}

    @staticmethod
    def _info(f: Follower) -> dict[str, Any]:
        if not f.subscribed:
            return {"subscribe": 0, "openid": f.openid}
        out: dict[str, Any] = {
            "subscribe": 1,
            "openid": f.openid,
            "subscribe_time": f.subscribe_time,
            "remark": "",
            "groupid": 0,
            "tagid_list": sorted(f.tagids),
            "subscribe_scene": "ADD_SCENE_QR_CODE" if f.scene else "ADD_SCENE_OTHERS",
            "qr_scene": 0,
            "qr_scene_str": f.scene or "",
        }
        if f.unionid:
            out["unionid"] = f.unionid
        return out

    def _user_info(self, acct: Account, params: Mapping[str, str], body: Any) -> dict[str, Any]:
        return self._info(acct._follower(params.get("openid", "")))

    def _batchget(
        self, acct: Account, params: Mapping[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        users = body.get("user_list")
        if not isinstance(users, list) or not 1 <= len(users) <= 100:
            raise _Refuse(40032, "invalid openid list size")  # emulator choice (unconfirmed)
        return {"user_info_list": [self._info(acct._follower(u.get("openid", ""))) for u in users]}

    # ----------------------------------------------------------- tags

    def _check_tag_name(self, acct: Account, name: Any, except_id: int | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise _Refuse(45157, "invalid tag name")
        if len(name.encode("utf-8")) > 30:
            raise _Refuse(45158, "tag name too long")
        if any(t.name == name and t.id != except_id for t in acct.tags.values()):
            raise _Refuse(45157, "invalid tag name")
        return name

    def _tags_create(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        name = self._check_tag_name(acct, (body.get("tag") or {}).get("name"))
        if len(acct.tags) >= 100:
            raise _Refuse(45056, "too many tag now, no need to add new")
        tag = _Tag(acct._next_tag, name)
        acct._next_tag += 1
        acct.tags[tag.id] = tag
        return {"tag": {"id": tag.id, "name": name}}

    def _tags_get(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        return {
            "tags": [{"id": t.id, "name": t.name, "count": len(t.fans)} for t in acct.tags.values()]
        }

    def _tag(self, acct: Account, tag_id: Any, *, edit: bool = False) -> _Tag:
        if edit and tag_id in (0, 1, 2):
            raise _Refuse(45058, "can't modify sys tag")
        tag = acct.tags.get(tag_id) if isinstance(tag_id, int) else None
        if tag is None:
            raise _Refuse(45159, "invalid tag id")
        return tag

    def _tags_update(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("tag") or {}
        tag = self._tag(acct, spec.get("id"), edit=True)
        tag.name = self._check_tag_name(acct, spec.get("name"), except_id=tag.id)
        return {"errcode": 0, "errmsg": "ok"}

    def _tags_delete(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, (body.get("tag") or {}).get("id"), edit=True)
        if len(tag.fans) > 100_000:
            raise _Refuse(45057, "can't delete the tag that has too much fans")
        for o in tag.fans:
            acct.followers[o].tagids.discard(tag.id)
        del acct.tags[tag.id]
        return {"errcode": 0, "errmsg": "ok"}

    def _batch_openids(self, acct: Account, body: dict[str, Any], limit: int) -> list[Follower]:
        openids = body.get("openid_list")
        if not isinstance(openids, list) or not 1 <= len(openids) <= limit:
            raise _Refuse(40032, "invalid openid list size")
        return [acct._subscribed(o, 40003) for o in openids]

    def _batchtagging(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, body.get("tagid"), edit=True)
        users = self._batch_openids(acct, body, 50)
        for f in users:
            if tag.id not in f.tagids and len(f.tagids) >= 20:
                raise _Refuse(45059, "can not tagging one user too much")
        for f in users:
            f.tagids.add(tag.id)
            tag.fans[f.openid] = None
        return {"errcode": 0, "errmsg": "ok"}

    def _batchuntagging(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, body.get("tagid"), edit=True)
        for f in self._batch_openids(acct, body, 50):
            f.tagids.discard(tag.id)
            tag.fans.pop(f.openid, None)
        return {"errcode": 0, "errmsg": "ok"}

    def _tag_fans(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tag = self._tag(acct, body.get("tagid"))
        fans = list(tag.fans)
        cursor = body.get("next_openid") or ""
        start = fans.index(cursor) + 1 if cursor in tag.fans else 0
        page = fans[start : start + 10_000]
        return {
            "count": len(page),
            "data": {"openid": page},
            "next_openid": page[-1] if page else "",
        }

    def _getidlist(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {"tagid_list": sorted(acct._follower(body.get("openid", "")).tagids)}

    # ----------------------------------------------------------- messages

    @staticmethod
    def _content(body: dict[str, Any], allowed: frozenset[str]) -> tuple[str, str]:
        msgtype = body.get("msgtype")
        if msgtype not in allowed or not isinstance(body.get(msgtype), dict):
            raise _Refuse(40008, "invalid message type")  # global errcode list
        digest = hashlib.sha1(
            json.dumps({msgtype: body[msgtype]}, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        return msgtype, digest

    def _mass_deliver(
        self, acct: Account, openids: Iterable[str], msgtype: str, digest: str
    ) -> _MassJob:
        now = self.now()
        month = dt.datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m")
        msg_id = str(next(self._ids))
        total = sent = 0
        for o in openids:
            total += 1
            f = acct.followers.get(o)
            # Unknown or unfollowed openids are filtered out of the job (emulator choice).
            if f is None or not f.subscribed:
                continue
            if f.mass_month.get(month, 0) >= MASS_PER_USER_PER_MONTH:
                continue
            f.mass_month[month] = f.mass_month.get(month, 0) + 1
            self._receive(acct, o, "mass", digest, msg_id)
            sent += 1
        job = _MassJob(msg_id, msgtype, "SEND_SUCCESS", total, sent)
        acct.mass_jobs[msg_id] = job
        return job

    def _check_clientmsgid(self, acct: Account, body: dict[str, Any]) -> str | None:
        cid = body.get("clientmsgid")
        if cid is None:
            return None
        if not isinstance(cid, str) or len(cid.encode("utf-8")) > 64:
            raise _Refuse(45067, "clientmsgid size out of limit")
        seen = acct._clientmsgids.get(cid)
        if seen is not None and self.now() - seen[1] < CLIENTMSGID_WINDOW:
            raise _Refuse(45065, "clientmsgid exist", msg_id=int(seen[0]))
        return cid

    def _mass_send(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        touser = body.get("touser")
        if not isinstance(touser, list) or len(touser) < 2:
            raise _Refuse(40130, "invalid openid list size, at least two openid")
        if len(touser) > 10_000:
            raise _Refuse(40032, "invalid openid list size")
        msgtype, digest = self._content(body, MASS_MSGTYPES)
        cid = self._check_clientmsgid(acct, body)
        job = self._mass_deliver(acct, dict.fromkeys(touser), msgtype, digest)
        if cid is not None:
            acct._clientmsgids[cid] = (job.msg_id, self.now())
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": int(job.msg_id),
            "msg_data_id": int(job.msg_id) + 1,
        }

    def _mass_sendall(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        flt = body.get("filter") or {}
        msgtype, digest = self._content(body, MASS_MSGTYPES)
        cid = self._check_clientmsgid(acct, body)
        if flt.get("is_to_all"):
            now = self.now()
            day = dt.datetime.fromtimestamp(now, BEIJING)
            same_day = [
                t
                for t in acct._to_all
                if dt.datetime.fromtimestamp(t, BEIJING).date() == day.date()
            ]
            same_month = [
                t
                for t in acct._to_all
                if dt.datetime.fromtimestamp(t, BEIJING).strftime("%Y-%m") == day.strftime("%Y-%m")
            ]
            if same_day or len(same_month) >= 4:
                raise _Refuse(45028, "has no masssend quota")
            acct._to_all.append(now)
            audience: Iterable[str] = list(acct._order)
        else:
            audience = list(self._tag(acct, flt.get("tag_id")).fans)
        job = self._mass_deliver(acct, audience, msgtype, digest)
        if cid is not None:
            acct._clientmsgids[cid] = (job.msg_id, self.now())
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": int(job.msg_id),
            "msg_data_id": int(job.msg_id) + 1,
        }

    def _mass_preview(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        _, digest = self._content(body, MASS_MSGTYPES)
        openid = body.get("touser")
        if body.get("towxname"):
            return {"errcode": 0, "errmsg": "preview success"}
        f = acct._subscribed(str(openid))
        self._receive(acct, f.openid, "preview", digest, str(next(self._ids)))
        return {"errcode": 0, "errmsg": "preview success", "msg_id": next(self._ids)}

    def _mass_get(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        job = acct.mass_jobs.get(str(body.get("msg_id")))
        if job is None:
            raise _Refuse(40059, "invalid msg id")
        return {"msg_id": int(job.msg_id), "msg_status": job.status}

    def _mass_delete(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        job = acct.mass_jobs.get(str(body.get("msg_id")))
        if job is None:
            raise _Refuse(40059, "invalid msg id")
        job.status = "DELETE"
        return {"errcode": 0, "errmsg": "ok"}

    def _template(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        f = acct._subscribed(str(body.get("touser", "")))
        tid = body.get("template_id")
        if tid not in acct.templates:
            raise _Refuse(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and "value" in v for v in data.values()
        ):
            raise _Refuse(47003, "argument invalid! data.value invalid")
        if f.blocked:
            raise _Refuse(48002, "api forbid for user")
        digest = hashlib.sha1(
            json.dumps([tid, data, body.get("url")], sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        msgid = str(next(self._ids))
        self._receive(acct, f.openid, "template", digest, msgid)
        return {"errcode": 0, "errmsg": "ok", "msgid": int(msgid)}

    def _subscribe_send(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        f = acct._subscribed(str(body.get("touser", "")))
        tid = str(body.get("template_id", ""))
        if f.subscribe_grants[tid] <= 0:
            raise _Refuse(43101, "user refuse to accept the msg")
        f.subscribe_grants[tid] -= 1
        digest = hashlib.sha1(
            json.dumps([tid, body.get("data")], sort_keys=True).encode()
        ).hexdigest()
        self._receive(acct, f.openid, "subscribe", digest, str(next(self._ids)))
        return {"errcode": 0, "errmsg": "ok"}

    def _custom(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        f = acct.followers.get(str(body.get("touser", "")))
        if f is None:
            raise _Refuse(40003, "invalid openid")
        _, digest = self._content(body, CUSTOM_MSGTYPES)
        now = self.now()
        if not f.subscribed or f.window_kind is None:
            raise _Refuse(45015, "response out of time limit or subscription is canceled")
        span, quota = (
            (MSG_WINDOW, MSG_WINDOW_QUOTA)
            if f.window_kind == "message"
            else (EVENT_WINDOW, EVENT_WINDOW_QUOTA)
        )
        if now - f.window_at > span:
            raise _Refuse(45015, "response out of time limit or subscription is canceled")
        if f.window_used >= quota:
            raise _Refuse(45047, "out of response count limit")
        f.window_used += 1
        self._receive(acct, f.openid, "custom", digest, str(next(self._ids)))
        return {"errcode": 0, "errmsg": "ok"}

    # ----------------------------------------------------------- qr & menu

    def _qrcode(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action_name")
        scene = (body.get("action_info") or {}).get("scene") or {}
        if action in ("QR_SCENE", "QR_LIMIT_SCENE"):
            sid = scene.get("scene_id", 0)
            ok = isinstance(sid, int) and (
                1 <= sid <= 100_000 if action == "QR_LIMIT_SCENE" else sid != 0
            )
            value = str(sid)
        elif action in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
            s = scene.get("scene_str")
            ok = isinstance(s, str) and 1 <= len(s) <= 64
            value = str(s)
        else:
            raise _Refuse(40053, "invalid action_name")  # emulator choice (global list)
        if not ok:
            raise _Refuse(40054, "invalid scene")  # emulator choice (unconfirmed code)
        permanent = action.startswith("QR_LIMIT")
        expire = body.get("expire_seconds", 30)
        if not permanent and not (isinstance(expire, int) and 1 <= expire <= 2_592_000):
            raise _Refuse(40009, "invalid expire_seconds")  # emulator choice (unconfirmed code)
        ticket = f"gQ{next(self._ids)}{acct.appid[-4:]}"
        acct.qrcodes[ticket] = (value, permanent)
        out: dict[str, Any] = {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket}"}
        if not permanent:
            out["expire_seconds"] = expire
        return out

    def _menu_create(self, acct: Account, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        # Errcodes 40016-40027 per the official global list as recalled; the reference gives
        # only the range (mapping unconfirmed).
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise _Refuse(40016, "invalid button size")
        for b in buttons:
            subs = b.get("sub_button") if isinstance(b, dict) else None
            if subs:
                if len(subs) > 5:
                    raise _Refuse(40023, "invalid sub button size")
                if len(str(b.get("name", "")).encode()) > NAME_MAX:
                    raise _Refuse(40018, "invalid button name size")
                for s in subs:
                    _check_button(s, sub=True)
            else:
                _check_button(b, sub=False)
        acct.menu = buttons
        return {"errcode": 0, "errmsg": "ok"}

    def _menu_get(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        if acct.menu is None:
            raise _Refuse(46003, "menu no exist")  # global errcode list
        return {"menu": {"button": acct.menu}}

    def _menu_delete(self, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        acct.menu = None
        return {"errcode": 0, "errmsg": "ok"}


def _check_button(b: Any, *, sub: bool) -> None:
    codes = (40024, 40025, 40026, 40027) if sub else (40017, 40018, 40019, 40020)
    if not isinstance(b, dict) or b.get("type") not in BUTTON_TYPES:
        raise _Refuse(codes[0], "invalid button type")
    if not b.get("name") or len(str(b["name"]).encode()) > (SUB_NAME_MAX if sub else NAME_MAX):
        raise _Refuse(codes[1], "invalid button name size")
    if b.get("key") is not None and len(str(b["key"]).encode()) > KEY_MAX:
        raise _Refuse(codes[2], "invalid button key size")
    if b.get("url") is not None and len(str(b["url"]).encode()) > URL_MAX:
        raise _Refuse(codes[3], "invalid button url size")


_JSON_HEADERS = [("Content-Type", "application/json; encoding=utf-8")]


def _json(data: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, _JSON_HEADERS, json.dumps(data, ensure_ascii=False).encode()


_Route = Callable[[WeChatEmulator, Account, Any, Any], dict[str, Any]]
_ROUTES: dict[str, _Route] = {
    "/cgi-bin/user/get": WeChatEmulator._user_get,
    "/cgi-bin/user/info": WeChatEmulator._user_info,
    "/cgi-bin/user/info/batchget": WeChatEmulator._batchget,
    "/cgi-bin/tags/create": WeChatEmulator._tags_create,
    "/cgi-bin/tags/get": WeChatEmulator._tags_get,
    "/cgi-bin/tags/update": WeChatEmulator._tags_update,
    "/cgi-bin/tags/delete": WeChatEmulator._tags_delete,
    "/cgi-bin/tags/members/batchtagging": WeChatEmulator._batchtagging,
    "/cgi-bin/tags/members/batchuntagging": WeChatEmulator._batchuntagging,
    "/cgi-bin/user/tag/get": WeChatEmulator._tag_fans,
    "/cgi-bin/tags/getidlist": WeChatEmulator._getidlist,
    "/cgi-bin/message/mass/send": WeChatEmulator._mass_send,
    "/cgi-bin/message/mass/sendall": WeChatEmulator._mass_sendall,
    "/cgi-bin/message/mass/preview": WeChatEmulator._mass_preview,
    "/cgi-bin/message/mass/get": WeChatEmulator._mass_get,
    "/cgi-bin/message/mass/delete": WeChatEmulator._mass_delete,
    "/cgi-bin/message/template/send": WeChatEmulator._template,
    "/cgi-bin/message/subscribe/bizsend": WeChatEmulator._subscribe_send,
    "/cgi-bin/message/custom/send": WeChatEmulator._custom,
    "/cgi-bin/qrcode/create": WeChatEmulator._qrcode,
    "/cgi-bin/menu/create": WeChatEmulator._menu_create,
    "/cgi-bin/menu/get": WeChatEmulator._menu_get,
    "/cgi-bin/menu/delete": WeChatEmulator._menu_delete,
}

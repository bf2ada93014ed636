"""The emulator's state: fault names and default limits, the records it keeps (followers,
receipts, pushes, tags, mass jobs) and :class:`Account`, one official account's state with
the test set-up helpers and callback pushes."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import attrs

from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.replies import cdata
from membermkt.core.accounts import AccountType
from membermkt.errors import UsageError
from membermkt.wire.budget import CallBudget, CallBudgets

if TYPE_CHECKING:
    from membermkt.testing.emulator.wechat._emulator import WeChatEmulator

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
    CallBudget("/cgi-bin/menu/addconditional", per_day=2000),
    CallBudget("/cgi-bin/menu/delconditional", per_day=2000),
    CallBudget("/cgi-bin/menu/trymatch", per_day=20_000),
)
"""The platform limits the emulator enforces per account (reference §5)."""


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
    # rule: oa.cs_window -- one window per kind of action, side by side: a message opens
    # 48 h / 5 sends, a click / follow / scan opens 1 min / 3 sends; a later click does not
    # close an open message window (reference §1.6). kind group -> [opened at, sends used]
    windows: dict[str, list[float]] = attrs.field(factory=dict)
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
        self.force_refreshes: list[float] = []  # stable_token force_refresh times
        self.replaced: set[str] = set()  # classic tokens superseded by a newer one
        self.token_repeats = 0
        """Stable-token fetches answered with the still-current token (redundant fetches)."""
        self.account_type = AccountType.SERVICE
        """Service or subscription account (:mod:`membermkt.core.accounts`)."""
        self.sendall_ok: list[float] = []  # successful sendall times (subscription accounts)

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
            f.windows.clear()
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
        f.windows["message" if kind == "message" else "event"] = [now, 0]

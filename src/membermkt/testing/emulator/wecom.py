"""An in-process emulator of WeCom customer contact (企业微信 客户联系), with state.

Same style as :mod:`membermkt.testing.emulator.wechat`: an httpx transport
(:meth:`WeComEmulator.transport`) or a loopback server (:meth:`WeComEmulator.serve`), seeded
fault injection (:attr:`WeComEmulator.faults`), call and errcode counters::

    emu = WeComEmulator(seed=1)
    corp = emu.add_corp("ww123", "contact-secret")
    corp.add_staff("clerk1")
    way = corp.add_way(users=["clerk1"], state="store-12")   # or via the API
    push = corp.scan(way.config_id, "wmCustomer1")          # the add_external_contact push
    client = WeCom("ww123", "contact-secret", transport=emu.transport())

It refuses what WeCom refuses (reference §3): tokens per (corpid, secret) expire
(``token_ttl``); ≤ 3000 corp tags; contact-way ``state`` ≤ 30 characters and type 1 takes one
user; ``add_msg_template`` ≤ 10,000 customers, ≤ 9 attachments, text ≤ 4000 bytes; a mass
message sends nothing until each sender confirms (:meth:`Corp.confirm_mass`), and then each
customer's **receive cap** decides (status 3 when used up; the cap is configurable because
the reference lists a conflict — default the current doc's days-in-month per month); the
welcome code is **single-use and valid for 20 s** (41051 afterwards, after the customer
started chatting, or on a second call); ``remind_groupmsg_send`` ≤ 3 per message per 24 h.

Faults: ``busy`` (-1), ``throttle`` (45009), ``concurrency`` (45033), ``token_invalidate``
(the presented token dies: 40014), ``http5xx`` (502), ``timeout`` (takes effect, answer
lost), ``drop`` (never arrives).

Where the reference gives no errcode, the emulator's choice is marked "emulator choice".
Callback pushes (:class:`~membermkt.testing.emulator.wechat.Push`) are encrypted with the
corp's callback credentials, receive id = corpid (reference §2.5).
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

import attrs
import httpx

from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.replies import cdata
from membermkt.core.quotas import WECOM_MASS_DAYS_IN_MONTH, Cap
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
from membermkt.testing.emulator.wechat import Push

__all__ = [
    "FAULTS",
    "WELCOME_WINDOW",
    "Corp",
    "Customer",
    "MassReceipt",
    "Relation",
    "WeComEmulator",
    "WelcomeReceipt",
]

FAULTS = ("busy", "throttle", "concurrency", "token_invalidate", "http5xx", "timeout", "drop")
WELCOME_WINDOW = 20.0
"""Seconds a welcome code stays usable after the add event (reference §3.5)."""
MAX_CORP_TAGS = 3000
REMINDS_PER_DAY = 3
EC = "/cgi-bin/externalcontact"
_INVALID = 40058  # emulator choice: a generic "invalid parameter" code (not in the reference)


class _Refuse(Exception):
    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errcode, errmsg)
        self.errcode, self.errmsg, self.extra = errcode, errmsg, extra


@attrs.define
class Customer:
    """An external contact (mutable emulator state)."""

    external_userid: str
    name: str = ""
    type: int = 1
    gender: int = 0
    unionid: str | None = None
    openid: str | None = None


@attrs.define
class Relation:
    """One staff member ↔ customer relation."""

    userid: str
    external_userid: str
    createtime: int
    state: str | None = None
    remark: str = ""
    tag_ids: set[str] = attrs.field(factory=set)
    chatting: bool = False
    last_chat_at: float = 0.0


@attrs.define
class _Welcome:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@attrs.frozen(slots=True)
class WelcomeReceipt:
    """A welcome message a customer received; ``latency`` = seconds after the add event."""

    code: str
    userid: str
    external_userid: str
    text: str | None
    attachments: int
    at: float
    latency: float


@attrs.frozen(slots=True)
class MassReceipt:
    """A mass message a customer received (after the sender confirmed)."""

    msgid: str
    userid: str
    external_userid: str
    at: float


@attrs.define
class _Way:
    config_id: str
    type: int
    scene: int
    users: list[str]
    state: str | None
    remark: str
    created_at: float
    extra: dict[str, Any] = attrs.field(factory=dict)
    next_user: int = 0


@attrs.define
class _Tag:
    id: str
    name: str
    order: int
    create_time: int


@attrs.define
class _Group:
    group_id: str
    group_name: str
    order: int
    create_time: int
    tags: dict[str, _Tag] = attrs.field(factory=dict)


@attrs.define
class _Mass:
    msgid: str
    creator: str | None
    create_time: int
    chat_type: str
    text: str | None
    attachments: list[Any]
    targets: dict[str, list[str]]
    tasks: dict[str, tuple[int, int | None]] = attrs.field(factory=dict)
    results: dict[tuple[str, str], tuple[int, int | None]] = attrs.field(factory=dict)
    cancelled: bool = False
    reminds: list[float] = attrs.field(factory=list)


class Corp:
    """The emulated state of one corp. Create with :meth:`WeComEmulator.add_corp`."""

    def __init__(
        self,
        emulator: WeComEmulator,
        corpid: str,
        secrets: Iterable[str],
        *,
        token: str,
        encoding_aes_key: str,
        agent_id: str,
    ) -> None:
        self.emulator = emulator
        self.corpid = corpid
        self.secrets = set(secrets)
        self.token = token
        self.encoding_aes_key = encoding_aes_key
        self.agent_id = agent_id
        self.crypto = MessageCrypto(token, encoding_aes_key, corpid)
        self.staff: set[str] = set()
        self.customers: dict[str, Customer] = {}
        self.relations: dict[tuple[str, str], Relation] = {}
        self.groups: dict[str, _Group] = {}
        self.ways: dict[str, _Way] = {}
        self.welcome_codes: dict[str, _Welcome] = {}
        self.welcomes: list[WelcomeReceipt] = []
        self.welcome_counts: collections.Counter[str] = collections.Counter()
        """Welcomes received per external_userid (a value > 1 is a double welcome)."""
        self.welcome_refusals: collections.Counter[str] = collections.Counter()
        self.masses: dict[str, _Mass] = {}
        self.mass_receipts: list[MassReceipt] = []
        self._received: dict[str, list[dt.datetime]] = {}
        self.chats: dict[str, dict[str, Any]] = {}
        self.console_welcome = False
        """When ``True`` no WelcomeCode is pushed (an admin-configured console welcome)."""
        self.valid_tokens: dict[str, tuple[str, float]] = {}  # token -> (secret, dies)
        self.current: dict[str, tuple[str, float]] = {}  # secret -> (token, dies)
        self.token_fetches = 0

    def __repr__(self) -> str:
        return (
            f"Corp({self.corpid!r}, {len(self.staff)} staff, {len(self.customers)} customers, "
            f"{len(self.relations)} relations)"
        )

    # ----------------------------------------------------------- set-up helpers

    def _now(self, at: float | None) -> float:
        return self.emulator.now() if at is None else at

    def add_staff(self, *userids: str) -> None:
        """Staff members with customer contact enabled."""
        with self.emulator.lock:
            self.staff.update(userids)

    def add_customer(
        self,
        userid: str,
        external_userid: str,
        *,
        name: str = "",
        unionid: str | None = None,
        openid: str | None = None,
        state: str | None = None,
        at: float | None = None,
        half: bool = False,
    ) -> Push:
        """``userid`` adds the customer (optionally through a ``state``); returns the
        ``add_external_contact`` push (``add_half_external_contact`` with ``half``), with a
        fresh WelcomeCode unless :attr:`console_welcome` is set."""
        now = self._now(at)
        with self.emulator.lock:
            if userid not in self.staff:
                raise UsageError(f"unknown staff {userid!r}: add_staff() first")
            cust = self.customers.get(external_userid)
            if cust is None:
                cust = Customer(external_userid, name or external_userid, unionid=unionid)
                cust.openid = openid
                self.customers[external_userid] = cust
            self.relations[(userid, external_userid)] = Relation(
                userid, external_userid, int(now), state
            )
            fields: dict[str, str] = {}
            if state:
                fields["State"] = state
            if not self.console_welcome:
                code = (
                    "WC"
                    + hashlib.sha1(
                        f"{self.corpid}{userid}{external_userid}{next(self.emulator._ids)}".encode()
                    ).hexdigest()
                )
                self.welcome_codes[code] = _Welcome(code, userid, external_userid, now)
                fields["WelcomeCode"] = code
        change = "add_half_external_contact" if half else "add_external_contact"
        return self.contact_push(change, userid, external_userid, at=now, **fields)

    def add_customers(self, userid: str, external_userids: Iterable[str]) -> None:
        """Bulk set-up: ``userid`` already has these customers (no pushes, no welcome codes)."""
        now = int(self.emulator.now())
        with self.emulator.lock:
            if userid not in self.staff:
                raise UsageError(f"unknown staff {userid!r}: add_staff() first")
            for ext in external_userids:
                self.customers.setdefault(ext, Customer(ext, ext))
                self.relations[(userid, ext)] = Relation(userid, ext, now)

    def mass_count(self, external_userid: str) -> int:
        """Mass messages created that target the customer (sent or not): more than one for a
        single delivery means it was submitted twice."""
        with self.emulator.lock:
            return sum(
                1
                for m in self.masses.values()
                for es in m.targets.values()
                if external_userid in es
            )

    def scan(self, config_id: str, external_userid: str, **kwargs: Any) -> Push:
        """A customer adds staff through a contact way (its ``state`` comes back); the way's
        users take turns."""
        with self.emulator.lock:
            way = self.ways.get(config_id)
            if way is None:
                raise UsageError(f"unknown contact way {config_id!r}")
            userid = way.users[way.next_user % len(way.users)]
            way.next_user += 1
            state = way.state
        return self.add_customer(userid, external_userid, state=state, **kwargs)

    def add_way(self, *, users: list[str], state: str | None = None, **extra: Any) -> _Way:
        """Create a contact way directly (as the admin console would)."""
        with self.emulator.lock:
            return self._new_way(1 if len(users) == 1 else 2, 2, users, state, "", extra)

    def start_chat(self, userid: str, external_userid: str, *, at: float | None = None) -> None:
        """Staff and customer start chatting: the relation's welcome code becomes unusable."""
        with self.emulator.lock:
            rel = self._relation(userid, external_userid)
            rel.chatting, rel.last_chat_at = True, self._now(at)

    def customer_deletes_staff(self, userid: str, external_userid: str, **kw: Any) -> Push:
        """The customer deletes the staff member (``del_follow_user``)."""
        with self.emulator.lock:
            self.relations.pop((userid, external_userid), None)
        return self.contact_push("del_follow_user", userid, external_userid, **kw)

    def staff_deletes_customer(self, userid: str, external_userid: str, **kw: Any) -> Push:
        """The staff member deletes the customer (``del_external_contact``)."""
        with self.emulator.lock:
            self.relations.pop((userid, external_userid), None)
        return self.contact_push("del_external_contact", userid, external_userid, **kw)

    def confirm_mass(self, msgid: str, userid: str, *, at: float | None = None) -> dict[str, int]:
        """The sender confirms a mass message in the client: each target customer gets it
        unless the relation is gone (status 2) or the receive cap is used up (status 3).
        Returns external_userid → status."""
        now = self._now(at)
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        out: dict[str, int] = {}
        with self.emulator.lock:
            m = self.masses.get(msgid)
            if m is None or userid not in m.targets:
                raise UsageError(f"no mass task {msgid!r} for {userid!r}")
            if m.cancelled or m.tasks[userid][0] != 0:
                return out
            cap = self.emulator.mass_cap
            for ext in m.targets[userid]:
                if (userid, ext) not in self.relations:
                    status = 2
                else:
                    got = self._received.setdefault(ext, [])
                    start, end = cap.window(when)
                    used = sum(1 for t in got if start <= t < end)
                    if used >= cap.limit_at(when):
                        status = 3
                    else:
                        status = 1
                        got.append(when)
                        self.mass_receipts.append(MassReceipt(msgid, userid, ext, now))
                m.results[(userid, ext)] = (status, int(now) if status == 1 else None)
                out[ext] = status
            m.tasks[userid] = (2, int(now))
        return out

    # ----------------------------------------------------------- pushes

    def contact_push(
        self, change_type: str, userid: str, external_userid: str, **kwargs: Any
    ) -> Push:
        """A ``change_external_contact`` push (extra fields as keyword arguments)."""
        at = kwargs.pop("at", None)
        fields = {"ChangeType": change_type, "UserID": userid, "ExternalUserID": external_userid}
        fields.update({k: str(v) for k, v in kwargs.items()})
        return self.event_push("change_external_contact", at=at, **fields)

    def event_push(self, event: str, *, at: float | None = None, **fields: str) -> Push:
        """An encrypted event push from ``sys`` (``ToUserName`` = corpid)."""
        now = int(self._now(at))
        inner = "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in fields.items())
        xml = (
            f"<xml><ToUserName>{cdata(self.corpid)}</ToUserName>"
            f"<FromUserName>{cdata('sys')}</FromUserName><CreateTime>{now}</CreateTime>"
            f"<MsgType>{cdata('event')}</MsgType><Event>{cdata(event)}</Event>{inner}</xml>"
        )
        return self.push_xml(xml, at=now)

    def push_xml(self, xml: str, *, at: float | None = None) -> Push:
        """Encrypt and sign a plaintext callback document."""
        ts, nonce = str(int(self._now(at))), str(next(self.emulator._ids))
        enc = self.crypto.encrypt_message(xml)
        query = {
            "msg_signature": self.crypto.signature(ts, nonce, enc),
            "timestamp": ts,
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName>{cdata(self.corpid)}</ToUserName>"
            f"<Encrypt>{cdata(enc)}</Encrypt><AgentID>{cdata(self.agent_id)}</AgentID></xml>"
        )
        return Push("POST", query, body.encode())

    def verification_push(self, echo: str = "1616140317555161061") -> Push:
        """The GET WeCom sends to verify the callback URL (encrypted ``echostr``)."""
        ts, nonce = str(int(self.emulator.now())), str(next(self.emulator._ids))
        echostr = self.crypto.encrypt_message(echo)
        q = {
            "msg_signature": self.crypto.signature(ts, nonce, echostr),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }
        return Push("GET", q, b"")

    # ----------------------------------------------------------- internals

    def _relation(self, userid: str, external_userid: str) -> Relation:
        rel = self.relations.get((userid, external_userid))
        if rel is None:
            raise _Refuse(84061, "not external contact")
        return rel

    def _new_way(
        self,
        type_: int,
        scene: int,
        users: list[str],
        state: str | None,
        remark: str,
        extra: dict[str, Any],
    ) -> _Way:
        cid = hashlib.md5(f"{self.corpid}{next(self.emulator._ids)}".encode()).hexdigest()
        way = _Way(cid, type_, scene, users, state, remark, self.emulator.now(), extra)
        self.ways[cid] = way
        return way

    def _tag(self, tag_id: str) -> tuple[_Group, _Tag]:
        for g in self.groups.values():
            if tag_id in g.tags:
                return g, g.tags[tag_id]
        raise _Refuse(40068, "invalid tagid")

    def tag_count(self) -> int:
        """Corp tags in use."""
        return sum(len(g.tags) for g in self.groups.values())

    def tag_names(self, userid: str, external_userid: str) -> set[str]:
        """The corp tag names on one relation."""
        with self.emulator.lock:
            rel = self.relations[(userid, external_userid)]
            return {self._tag(t)[1].name for t in rel.tag_ids}


class WeComEmulator:
    """The WeCom customer-contact emulator (several corps side by side).

    Args:
        seed: seeds the fault plan and generated ids.
        clock: unix-seconds clock (default :func:`time.time`); inject one to move time —
            the 20-second welcome window is measured on it.
        token_ttl: lifetime of corp tokens (7200 on the platform).
        mass_cap: the per-customer receive cap applied when senders confirm (default the
            current doc's days-in-month per month; ``WECOM_MASS_LEGACY_MONTHLY`` (4/month),
            ``WECOM_MASS_DAILY`` (1/day) or ``WECOM_MASS_WEEKLY`` (7/week) from
            :mod:`membermkt.core.quotas` for the other rules — the reference lists a
            conflict).
        welcome_window: seconds a welcome code is usable.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        token_ttl: float = 7200,
        mass_cap: Cap = WECOM_MASS_DAYS_IN_MONTH,
        welcome_window: float = WELCOME_WINDOW,
    ) -> None:
        self.now = clock
        self.token_ttl = token_ttl
        self.mass_cap = mass_cap
        self.welcome_window = welcome_window
        self.faults = FaultPlan(FAULTS, seed=seed)
        self.calls = CallCounter()
        self.corps: dict[str, Corp] = {}
        self.lock = threading.RLock()
        self._ids = itertools.count(5_000_000 + seed * 1000)
        self._token_owner: dict[str, str] = {}
        self.errcodes: collections.Counter[int] = collections.Counter()
        """How often each non-zero errcode was answered."""
        self._fail: collections.deque[tuple[int, str | None]] = collections.deque()

    def __repr__(self) -> str:
        return f"WeComEmulator({len(self.corps)} corps)"

    def fail_next(self, errcode: int, *, api: str | None = None) -> None:
        """Answer the next business call (to ``api`` only, if given; never ``gettoken``
        unless named) with ``errcode``, without doing anything."""
        with self.lock:
            self._fail.append((errcode, api))

    def _scripted(self, api: str) -> int | None:
        for i, (code, target) in enumerate(self._fail):
            if target == api or (target is None and api != "/cgi-bin/gettoken"):
                del self._fail[i]
                return code
        return None

    def add_corp(
        self,
        corpid: str,
        *secrets: str,
        token: str = "membermkt",
        encoding_aes_key: str | None = None,
        agent_id: str = "1000001",
    ) -> Corp:
        """Create a corp with one or more app secrets (each gets its own tokens)."""
        if not secrets:
            raise UsageError("a corp needs at least one secret")
        key = encoding_aes_key or hashlib.sha256(corpid.encode()).hexdigest()[:43]
        corp = Corp(self, corpid, secrets, token=token, encoding_aes_key=key, agent_id=agent_id)
        with self.lock:
            self.corps[corpid] = corp
        return corp

    def transport(self) -> EmulatorTransport:
        """An httpx transport (sync and async) running this emulator in-process."""
        return EmulatorTransport(self.handle)

    def serve(self, *, port: int = 0, lost_hold: float = 0.5) -> LoopbackServer:
        """Serve on ``127.0.0.1`` in a background thread (close the returned server)."""
        return serve(self.handle, port=port, lost_hold=lost_hold)

    # ----------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (the emulator's whole HTTP surface)."""
        api = request.url.path
        self.calls.add(api)
        fault = self.faults.draw(api)
        if fault == "drop":
            raise DroppedConnection(api)
        if fault == "http5xx":
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        if fault in ("busy", "throttle", "concurrency"):
            code = {"busy": -1, "throttle": 45009, "concurrency": 45033}[fault]
            with self.lock:
                self.errcodes[code] += 1
            return _json({"errcode": code, "errmsg": f"emulated {fault}"})
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            return _json({"errcode": 47001, "errmsg": "data format error"})
        with self.lock:
            scripted = self._scripted(api)
            if scripted is not None:
                self.errcodes[scripted] += 1
                return _json({"errcode": scripted, "errmsg": "emulated error"})
            try:
                result = self._dispatch(api, request, body, fault)
                result.setdefault("errcode", 0)
                result.setdefault("errmsg", "ok")
            except _Refuse as r:
                result = {"errcode": r.errcode, "errmsg": r.errmsg, **r.extra}
                self.errcodes[r.errcode] += 1
        if fault == "timeout":
            raise LostResponse(api)
        return _json(result)

    def _dispatch(
        self, api: str, request: httpx.Request, body: Any, fault: str | None
    ) -> dict[str, Any]:
        params = request.url.params
        if api == "/cgi-bin/gettoken":
            return self._gettoken(params)
        corp = self._authorize(params.get("access_token", ""), fault)
        handler = _ROUTES.get(api)
        if handler is None:
            raise _Refuse(48002, f"api forbidden: {api}")  # emulator choice for unknown APIs
        if not isinstance(body, dict):
            raise _Refuse(47001, "data format error")
        return handler(self, corp, params, body)

    # ----------------------------------------------------------- tokens

    def _gettoken(self, params: httpx.QueryParams) -> dict[str, Any]:
        corp = self.corps.get(params.get("corpid", ""))
        if corp is None:
            raise _Refuse(40013, "invalid corpid")
        secret = params.get("corpsecret", "")
        if secret not in corp.secrets:
            raise _Refuse(40001, "invalid secret")
        now = self.now()
        cur = corp.current.get(secret)
        if cur is not None and cur[0] in corp.valid_tokens and cur[1] > now:
            # Older docs: repeat fetches within validity return the same token.
            return {"access_token": cur[0], "expires_in": int(cur[1] - now)}
        token = "CT" + hashlib.sha1(f"{corp.corpid}{secret}{next(self._ids)}".encode()).hexdigest()
        dies = now + self.token_ttl
        corp.valid_tokens[token] = (secret, dies)
        corp.current[secret] = (token, dies)
        corp.token_fetches += 1
        self._token_owner[token] = corp.corpid
        return {"access_token": token, "expires_in": int(self.token_ttl)}

    def _authorize(self, token: str, fault: str | None) -> Corp:
        corpid = self._token_owner.get(token)
        corp = self.corps.get(corpid) if corpid else None
        if corp is None or token not in corp.valid_tokens:
            raise _Refuse(40014, "invalid access_token")
        if fault == "token_invalidate":
            secret = corp.valid_tokens.pop(token)[0]
            corp.current.pop(secret, None)
            raise _Refuse(40014, "invalid access_token")
        if self.now() >= corp.valid_tokens[token][1]:
            raise _Refuse(42001, "access_token expired")
        return corp

    # ----------------------------------------------------------- contacts

    def _follow_users(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        return {"follow_user": sorted(corp.staff)}

    def _list(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        userid = params.get("userid", "")
        ids = sorted(e for (u, e) in corp.relations if u == userid)
        if not ids:
            raise _Refuse(84061, "not external contact")
        return {"external_userid": ids}

    def _contact(self, corp: Corp, ext: str) -> dict[str, Any]:
        c = corp.customers.get(ext)
        if c is None:
            raise _Refuse(40096, "invalid external userid")
        out: dict[str, Any] = {
            "external_userid": c.external_userid,
            "name": c.name,
            "type": c.type,
            "avatar": "",
            "gender": c.gender,
        }
        if c.unionid:
            out["unionid"] = c.unionid
        return out

    def _follow(self, corp: Corp, rel: Relation, *, detailed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "userid": rel.userid,
            "remark": rel.remark,
            "description": "",
            "createtime": rel.createtime,
            "add_way": 1,
        }
        if rel.state:
            out["state"] = rel.state
        if detailed:
            tags = []
            for tid in sorted(rel.tag_ids):
                g, t = corp._tag(tid)
                tags.append(
                    {"group_name": g.group_name, "tag_name": t.name, "type": 1, "tag_id": t.id}
                )
            out["tags"] = tags
        else:
            out["tag_id"] = sorted(rel.tag_ids)
        return out

    def _get(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        ext = params.get("external_userid", "")
        contact = self._contact(corp, ext)
        rels = [r for (u, e), r in sorted(corp.relations.items()) if e == ext]
        return {
            "external_contact": contact,
            "follow_user": [self._follow(corp, r, detailed=True) for r in rels],
        }

    def _batch_get_by_user(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        users = body.get("userid_list")
        limit = body.get("limit", 50)
        if not isinstance(users, list) or not 1 <= len(users) <= 100:
            raise _Refuse(_INVALID, "invalid userid_list size")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise _Refuse(_INVALID, "invalid limit")
        wanted = set(users)
        rels = [r for (u, e), r in sorted(corp.relations.items()) if u in wanted]
        start = _offset(body)
        page = rels[start : start + limit]
        out: dict[str, Any] = {
            "external_contact_list": [
                {
                    "external_contact": self._contact(corp, r.external_userid),
                    "follow_info": self._follow(corp, r, detailed=False),
                }
                for r in page
            ]
        }
        out["next_cursor"] = str(start + limit) if start + limit < len(rels) else ""
        return out

    def _unionid_to_external(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        for c in corp.customers.values():
            if c.unionid and c.unionid == body.get("unionid"):
                return {"external_userid": c.external_userid}
        raise _Refuse(40096, "invalid external userid")  # emulator choice: unknown unionid

    def _convert_to_openid(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        c = corp.customers.get(str(body.get("external_userid", "")))
        if c is None or not c.openid:
            raise _Refuse(40096, "invalid external userid")
        return {"openid": c.openid}

    # ----------------------------------------------------------- corp tags

    @staticmethod
    def _name(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 30:
            raise _Refuse(_INVALID, "invalid tag name")
        return value

    def _tag_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        gids = set(body.get("group_id") or ())
        tids = set(body.get("tag_id") or ())
        out = []
        for g in corp.groups.values():
            if gids and g.group_id not in gids:
                continue
            tags = [t for t in g.tags.values() if gids or not tids or t.id in tids]
            if not tags:
                continue
            out.append(self._group_json(g, tags))
        return {"tag_group": out}

    @staticmethod
    def _group_json(g: _Group, tags: Iterable[_Tag]) -> dict[str, Any]:
        return {
            "group_id": g.group_id,
            "group_name": g.group_name,
            "create_time": g.create_time,
            "order": g.order,
            "tag": [
                {"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order}
                for t in tags
            ],
        }

    def _tag_add(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        specs = body.get("tag")
        if not isinstance(specs, list) or not specs:
            raise _Refuse(_INVALID, "tag list empty")
        names = [self._name(s.get("name") if isinstance(s, dict) else None) for s in specs]
        now = int(self.now())
        gid = body.get("group_id")
        if gid:
            group = corp.groups.get(gid)
            if group is None:
                raise _Refuse(40068, "invalid tagid")
        else:
            gname = self._name(body.get("group_name"))
            group = next((g for g in corp.groups.values() if g.group_name == gname), None)
            if group is None:
                group = _Group(f"et{next(self._ids)}", gname, int(body.get("order") or 0), now)
                corp.groups[group.group_id] = group
        existing = {t.name: t for t in group.tags.values()}
        new = [n for n in dict.fromkeys(names) if n not in existing]
        if corp.tag_count() + len(new) > MAX_CORP_TAGS:
            # emulator choice: the reference gives the 3000 limit but no WeCom errcode
            raise _Refuse(45056, "too many corp tags")
        for n in new:
            t = _Tag(f"et{next(self._ids)}", n, 0, now)
            group.tags[t.id] = t
            existing[n] = t
        created = [existing[n] for n in dict.fromkeys(names)]
        return {"tag_group": self._group_json(group, created)}

    def _tag_edit(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        tid = str(body.get("id", ""))
        if tid in corp.groups:
            g = corp.groups[tid]
            if body.get("name") is not None:
                g.group_name = self._name(body["name"])
            return {}
        _, t = corp._tag(tid)
        if body.get("name") is not None:
            t.name = self._name(body["name"])
        if body.get("order") is not None:
            t.order = int(body["order"])
        return {}

    def _tag_del(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        gids = list(body.get("group_id") or ())
        tids = list(body.get("tag_id") or ())
        if not gids and not tids:
            raise _Refuse(_INVALID, "tag_id and group_id are empty")
        for gid in gids:
            g = corp.groups.pop(gid, None)
            if g is None:
                raise _Refuse(40068, "invalid tagid")
            tids.extend(g.tags)
        for tid in tids:
            for g in list(corp.groups.values()):
                if tid in g.tags:
                    del g.tags[tid]
                    if not g.tags:  # deleting a group's last tag deletes the group
                        del corp.groups[g.group_id]
            for rel in corp.relations.values():
                rel.tag_ids.discard(tid)
        return {}

    def _mark_tag(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        rel = corp._relation(str(body.get("userid", "")), str(body.get("external_userid", "")))
        add = list(body.get("add_tag") or ())
        remove = list(body.get("remove_tag") or ())
        if not add and not remove:
            raise _Refuse(_INVALID, "add_tag and remove_tag are empty")
        for tid in (*add, *remove):
            corp._tag(str(tid))
        rel.tag_ids.update(str(t) for t in add)
        rel.tag_ids.difference_update(str(t) for t in remove)
        return {}

    # ----------------------------------------------------------- contact ways

    def _way_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 30):
            raise _Refuse(_INVALID, "invalid state: longer than 30 characters")
        remark = body.get("remark")
        if remark is not None and (not isinstance(remark, str) or len(remark) > 30):
            raise _Refuse(_INVALID, "invalid remark")
        return {"state": state, "remark": remark}

    def _way_add(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        type_, scene = body.get("type"), body.get("scene")
        if type_ not in (1, 2) or scene not in (1, 2):
            raise _Refuse(_INVALID, "invalid type or scene")
        users = list(body.get("user") or ())
        if type_ == 1 and len(users) != 1:
            raise _Refuse(_INVALID, "type 1 contact way needs exactly one user")
        if not users or any(u not in corp.staff for u in users):
            raise _Refuse(84074, "no external contact permission")  # emulator choice
        f = self._way_fields(body)
        extra = {k: v for k, v in body.items() if k not in ("type", "scene", "user", *f)}
        way = corp._new_way(type_, scene, users, f["state"], f["remark"] or "", extra)
        out: dict[str, Any] = {"config_id": way.config_id}
        if scene == 2:
            out["qr_code"] = f"https://wework.qq.com/emulated/qr/{way.config_id}"
        return out

    def _way(self, corp: Corp, body: Mapping[str, Any]) -> _Way:
        way = corp.ways.get(str(body.get("config_id", "")))
        if way is None:
            raise _Refuse(_INVALID, "invalid config_id")
        return way

    def _way_get(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        w = self._way(corp, body)
        out: dict[str, Any] = {
            "config_id": w.config_id,
            "type": w.type,
            "scene": w.scene,
            "remark": w.remark,
            "user": w.users,
            **w.extra,
        }
        if w.state:
            out["state"] = w.state
        if w.scene == 2:
            out["qr_code"] = f"https://wework.qq.com/emulated/qr/{w.config_id}"
        return {"contact_way": out}

    def _way_update(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        w = self._way(corp, body)
        f = self._way_fields(body)
        if f["state"] is not None:
            w.state = f["state"]
        if f["remark"] is not None:
            w.remark = f["remark"]
        if body.get("user") is not None:
            users = list(body["user"])
            if w.type == 1 and len(users) != 1:
                raise _Refuse(_INVALID, "type 1 contact way needs exactly one user")
            w.users = users
        return {}

    def _way_del(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        w = self._way(corp, body)
        del corp.ways[w.config_id]
        return {}

    def _way_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        ways = sorted(corp.ways.values(), key=lambda w: (w.created_at, w.config_id))
        start = _offset(body)
        limit = int(body.get("limit") or 100)
        page = ways[start : start + limit]
        nxt = str(start + limit) if start + limit < len(ways) else ""
        return {"contact_way": [{"config_id": w.config_id} for w in page], "next_cursor": nxt}

    # ----------------------------------------------------------- mass & welcome

    @staticmethod
    def _content(body: Mapping[str, Any]) -> tuple[str | None, list[Any]]:
        text = (body.get("text") or {}).get("content")
        attachments = list(body.get("attachments") or ())
        if text is not None and len(str(text).encode("utf-8")) > 4000:
            raise _Refuse(_INVALID, "text content over 4000 bytes")
        if len(attachments) > 9:
            raise _Refuse(_INVALID, "too many attachments")
        if not text and not attachments:
            raise _Refuse(_INVALID, "empty message")
        return text, attachments

    def _msg_template(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        chat_type = body.get("chat_type", "single")
        text, attachments = self._content(body)
        users = list(body.get("external_userid") or ())
        sender = body.get("sender")
        if len(users) > 10_000:
            raise _Refuse(_INVALID, "external_userid over 10000")
        if chat_type != "single":
            raise _Refuse(_INVALID, "group mass send is not emulated")  # emulator scope
        if not users and not sender:
            raise _Refuse(_INVALID, "external_userid and sender are both empty")
        if sender is not None and sender not in corp.staff:
            raise _Refuse(_INVALID, "invalid sender")
        targets: dict[str, list[str]] = {}
        fail: list[str] = []
        if not users:
            users = sorted(e for (u, e) in corp.relations if u == sender)
        for ext in dict.fromkeys(users):
            if sender is not None:
                owner = sender if (sender, ext) in corp.relations else None
            else:  # the member who last chatted with the customer (emulator: latest chat)
                rels = [r for (u, e), r in corp.relations.items() if e == ext]
                owner = max(rels, key=lambda r: (r.last_chat_at, r.userid)).userid if rels else None
            if owner is None:
                fail.append(ext)
            else:
                targets.setdefault(owner, []).append(ext)
        msgid = f"msg{next(self._ids)}"
        m = _Mass(
            msgid,
            sender,
            int(self.now()),
            chat_type,
            text,
            attachments,
            targets,
            tasks=dict.fromkeys(targets, (0, None)),
            results={(u, e): (0, None) for u, es in targets.items() for e in es},
        )
        corp.masses[msgid] = m
        return {"fail_list": fail, "msgid": msgid}

    def _mass(self, corp: Corp, body: Mapping[str, Any]) -> _Mass:
        m = corp.masses.get(str(body.get("msgid", "")))
        if m is None:
            raise _Refuse(_INVALID, "invalid msgid")
        return m

    @staticmethod
    def _page(
        items: list[Any], body: Mapping[str, Any], default: int, top: int
    ) -> tuple[list[Any], str]:
        limit = body.get("limit") or default
        if not isinstance(limit, int) or not 1 <= limit <= top:
            raise _Refuse(_INVALID, "invalid limit")
        start = _offset(body)
        nxt = str(start + limit) if start + limit < len(items) else ""
        return items[start : start + limit], nxt

    def _msg_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        start, end = int(body.get("start_time", 0)), int(body.get("end_time", 0))
        if not 0 <= end - start <= 31 * 86400:
            raise _Refuse(_INVALID, "time span over one month")
        creator = body.get("creator")
        msgs = [
            m
            for m in corp.masses.values()
            if start <= m.create_time <= end and (creator is None or m.creator == creator)
        ]
        page, nxt = self._page(msgs, body, 50, 100)
        return {
            "group_msg_list": [
                {
                    "msgid": m.msgid,
                    "creator": m.creator or "",
                    "create_time": str(m.create_time),
                    "create_type": 0,
                    "text": {"content": m.text or ""},
                    "attachments": m.attachments,
                }
                for m in page
            ],
            "next_cursor": nxt,
        }

    def _msg_tasks(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        m = self._mass(corp, body)
        rows = [
            {"userid": u, "status": s, **({"send_time": t} if t else {})}
            for u, (s, t) in sorted(m.tasks.items())
        ]
        page, nxt = self._page(rows, body, 500, 1000)
        return {"task_list": page, "next_cursor": nxt}

    def _msg_results(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        m = self._mass(corp, body)
        userid = body.get("userid")
        rows = [
            {"external_userid": e, "userid": u, "status": s, **({"send_time": t} if t else {})}
            for (u, e), (s, t) in sorted(m.results.items())
            if u == userid
        ]
        page, nxt = self._page(rows, body, 500, 1000)
        return {"send_list": page, "next_cursor": nxt}

    def _msg_remind(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        m = self._mass(corp, body)
        now = self.now()
        m.reminds = [t for t in m.reminds if now - t < 86400]
        if len(m.reminds) >= REMINDS_PER_DAY:
            raise _Refuse(45009, "remind limit reached")  # emulator choice (code not given)
        m.reminds.append(now)
        return {}

    def _msg_cancel(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        self._mass(corp, body).cancelled = True
        return {}

    def _welcome(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        code = str(body.get("welcome_code", ""))
        text, attachments = self._content(body)
        w = corp.welcome_codes.get(code)
        now = self.now()
        reason = None
        if w is None:
            reason = "unknown"  # emulator choice: 41051 for an unknown code as well
        elif w.used:
            reason = "used"
        elif now - w.issued_at > self.welcome_window:
            reason = "expired"  # emulator choice: the reference names no expiry code
        else:
            rel = corp.relations.get((w.userid, w.external_userid))
            if rel is None or rel.chatting:
                reason = "chatting"
        if reason is not None:
            corp.welcome_refusals[reason] += 1
            raise _Refuse(41051, f"externaluser has started chatting ({reason})")
        assert w is not None
        w.used = True
        corp.welcome_counts[w.external_userid] += 1
        corp.welcomes.append(
            WelcomeReceipt(
                code, w.userid, w.external_userid, text, len(attachments), now, now - w.issued_at
            )
        )
        return {}

    # ----------------------------------------------------------- group chats

    def _chat_list(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        owners = set((body.get("owner_filter") or {}).get("userid_list") or ())
        if not owners and len(corp.staff) > 1000:
            raise _Refuse(81017, "too many owners, add owner_filter")
        chats = [
            {"chat_id": cid, "status": c.get("status", 0)}
            for cid, c in sorted(corp.chats.items())
            if not owners or c.get("owner") in owners
        ]
        page, nxt = self._page(chats, body, 100, 1000)
        return {"group_chat_list": page, "next_cursor": nxt}

    def _chat_get(self, corp: Corp, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        cid = str(body.get("chat_id", ""))
        c = corp.chats.get(cid)
        if c is None:
            raise _Refuse(_INVALID, "invalid chat_id")
        return {"group_chat": {"chat_id": cid, **{k: v for k, v in c.items() if k != "status"}}}


def _offset(body: Mapping[str, Any]) -> int:
    cursor = body.get("cursor") or "0"
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise _Refuse(_INVALID, "invalid cursor")
    return int(cursor)


def _json(data: Mapping[str, Any]) -> httpx.Response:
    return httpx.Response(
        200,
        content=json.dumps(data, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


_Route = Callable[[WeComEmulator, Corp, Any, Any], dict[str, Any]]
_ROUTES: dict[str, _Route] = {
    f"{EC}/get_follow_user_list": WeComEmulator._follow_users,
    f"{EC}/list": WeComEmulator._list,
    f"{EC}/get": WeComEmulator._get,
    f"{EC}/batch/get_by_user": WeComEmulator._batch_get_by_user,
    f"{EC}/unionid_to_external_userid": WeComEmulator._unionid_to_external,
    f"{EC}/convert_to_openid": WeComEmulator._convert_to_openid,
    f"{EC}/get_corp_tag_list": WeComEmulator._tag_list,
    f"{EC}/add_corp_tag": WeComEmulator._tag_add,
    f"{EC}/edit_corp_tag": WeComEmulator._tag_edit,
    f"{EC}/del_corp_tag": WeComEmulator._tag_del,
    f"{EC}/mark_tag": WeComEmulator._mark_tag,
    f"{EC}/add_contact_way": WeComEmulator._way_add,
    f"{EC}/get_contact_way": WeComEmulator._way_get,
    f"{EC}/update_contact_way": WeComEmulator._way_update,
    f"{EC}/del_contact_way": WeComEmulator._way_del,
    f"{EC}/list_contact_way": WeComEmulator._way_list,
    f"{EC}/add_msg_template": WeComEmulator._msg_template,
    f"{EC}/get_groupmsg_list_v2": WeComEmulator._msg_list,
    f"{EC}/get_groupmsg_task": WeComEmulator._msg_tasks,
    f"{EC}/get_groupmsg_send_result": WeComEmulator._msg_results,
    f"{EC}/remind_groupmsg_send": WeComEmulator._msg_remind,
    f"{EC}/cancel_groupmsg_send": WeComEmulator._msg_cancel,
    f"{EC}/send_welcome_msg": WeComEmulator._welcome,
    f"{EC}/groupchat/list": WeComEmulator._chat_list,
    f"{EC}/groupchat/get": WeComEmulator._chat_get,
}

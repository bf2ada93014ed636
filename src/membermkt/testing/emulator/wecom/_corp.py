"""``Corp``: one emulated corp's state, set-up helpers and signed callback pushes."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.replies import cdata
from membermkt.errors import UsageError
from membermkt.testing.emulator.wechat import Push
from membermkt.testing.emulator.wecom._models import (
    Customer,
    GroupMassReceipt,
    MassReceipt,
    Relation,
    WelcomeReceipt,
    _Group,
    _Mass,
    _Refuse,
    _Tag,
    _Way,
    _Welcome,
)

if TYPE_CHECKING:
    from membermkt.testing.emulator.wecom._emulator import WeComEmulator


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
        self.group_receipts: list[GroupMassReceipt] = []
        """Mass messages customer groups received (``chat_type=group``, once confirmed)."""
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
                if m.chat_type == "single"
                for es in m.targets.values()
                if external_userid in es
            )

    def group_mass_count(self, chat_id: str) -> int:
        """Group mass messages created that target the customer group (sent or not)."""
        with self.emulator.lock:
            return sum(
                1
                for m in self.masses.values()
                if m.chat_type == "group"
                for cs in m.targets.values()
                if chat_id in cs
            )

    def add_chat(
        self,
        chat_id: str,
        owner: str,
        *,
        name: str = "",
        customers: Iterable[str] = (),
        status: int = 0,
        at: float | None = None,
    ) -> None:
        """A customer group owned by staff member ``owner`` with these customers (members of
        ``type`` 2) and the owner (``type`` 1), as ``groupchat/get`` answers it."""
        now = int(self._now(at))
        with self.emulator.lock:
            if owner not in self.staff:
                raise UsageError(f"unknown staff {owner!r}: add_staff() first")
            members: list[dict[str, Any]] = [{"userid": owner, "type": 1, "join_time": now}]
            members += [{"userid": e, "type": 2, "join_time": now} for e in customers]
            self.chats[chat_id] = {
                "status": status,
                "owner": owner,
                "name": name or chat_id,
                "create_time": now,
                "member_list": members,
            }

    def dismiss_chat(self, chat_id: str) -> None:
        """The owner dismisses the group: it leaves the lists, a pending group message to it
        fails (status 2 — emulator choice, **unconfirmed** for groups)."""
        with self.emulator.lock:
            self.chats.pop(chat_id, None)

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
        """The sender confirms a mass message in the client: each target customer (or
        customer group) gets it unless the relation is gone — the group dismissed or no
        longer the sender's (status 2) — or the receive cap is used up (status 3).
        Returns external_userid (chat_id) → status."""
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
            group = m.chat_type == "group"
            for ext in m.targets[userid]:
                if group:
                    chat = self.chats.get(ext)
                    gone = chat is None or chat.get("owner") != userid
                else:
                    gone = (userid, ext) not in self.relations
                if gone:
                    status = 2
                else:
                    # rule: wecom.group_cap -- counted per customer and per customer group
                    got = self._received.setdefault(f"chat:{ext}" if group else ext, [])
                    start, end = cap.window(when)
                    used = sum(1 for t in got if start <= t < end)
                    if used >= cap.limit_at(when):
                        status = 3
                    else:
                        status = 1
                        got.append(when)
                        if group:
                            self.group_receipts.append(GroupMassReceipt(msgid, userid, ext, now))
                        else:
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

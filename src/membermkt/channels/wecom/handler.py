"""The WeCom callback endpoint: verify, decrypt, parse, record, welcome — framework-agnostic.

:class:`WeComCallbackHandler` has the same shape as the official-account
:class:`~membermkt.channels.wechat.CallbackHandler` — ``handle(method, query, body) ->
(status, headers, body)`` — so :mod:`membermkt.contrib.asgi` / ``wsgi`` mount it the same way.

* ``GET ?msg_signature&timestamp&nonce&echostr`` (URL verification): the echo is decrypted
  and returned as the body, plaintext, no newline (reference §2.5).
* ``POST ?msg_signature&timestamp&nonce``: decrypted with receive id = corpid (the shared
  :class:`~membermkt.channels.wechat.crypto.MessageCrypto`), parsed
  (:func:`~membermkt.channels.wecom.messages.parse_message`), turned into core events
  (:func:`events_for`) for the customer's member — resolved by
  ``Identity.external_userid(corpid, id)``, created when new — and appended to the store,
  de-duplicated by key (WeCom re-pushes after 5 s without an answer, 3 attempts).
* A *new* ``add_external_contact`` with a ``WelcomeCode`` goes to the
  :class:`~membermkt.channels.wecom.welcome.WelcomeSender` (once).

Security (see ``docs/security.md``): WeCom callbacks are always encrypted, so there is no
plaintext mode to downgrade to — a push without a valid ``msg_signature`` over its
``Encrypt`` value is refused. Query parameters must be ASCII, the body must fit
``max_body`` (413 otherwise), and the signed ``timestamp`` must lie within ``freshness``
seconds of the clock. An authentic push with unusable field values is answered ``success``
(logged and counted in :attr:`WeComCallbackHandler.outcomes`); only store failures answer
503.

Core events: ``contact_added`` (``source`` = the decoded channel, ``staff``, ``state``,
``campaign``), ``contact_deleted`` (``staff``, ``by`` = ``"customer"`` for ``del_follow_user``
— a churn signal — or ``"staff"`` for ``del_external_contact``), ``tags_changed``
(``edit_external_contact``: remark or corp tags edited), ``contact_transfer_failed``
(``reason``). Group-chat and tag-definition events have no member: they reach ``on_event``
only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from membermkt.channels._ingest import ingest
from membermkt.channels.wechat._guard import (
    DEFAULT_FRESHNESS,
    Outcomes,
    check_fresh,
    check_window,
    clean_query,
)
from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.messages import BaseMessage
from membermkt.channels.wechat.replies import SUCCESS
from membermkt.channels.wecom import messages as m
from membermkt.channels.wecom.enrich import ContactEnricher
from membermkt.channels.wecom.state import ChannelState, decode_state
from membermkt.channels.wecom.welcome import WelcomeJob, WelcomeSender
from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.errors import (
    ConfigError,
    DecryptError,
    MalformedPushError,
    MembermktError,
    SignatureError,
    StoreError,
    UsageError,
)

__all__ = ["WeComCallbackHandler", "WeComEndpoint", "WeComIncoming", "event_key", "events_for"]

log = logging.getLogger(__name__)

Response = tuple[int, list[tuple[str, str]], bytes]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class _Store(Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def upsert_members(self, members: Iterable[Member]) -> int: ...

    def append_events(self, events: Iterable[Event]) -> int: ...

    def get_member(self, member_id: str) -> Member | None: ...


@attrs.frozen(slots=True, kw_only=True)
class WeComEndpoint:
    """The callback settings of one corp app.

    Attributes:
        corpid: the corp (the receive id).
        token: the callback Token.
        encoding_aes_key: the EncodingAESKey.
    """

    corpid: str
    token: str = attrs.field(repr=False)
    encoding_aes_key: str = attrs.field(repr=False)

    def crypto(self, max_body: int) -> MessageCrypto:
        """The :class:`MessageCrypto` (receive id = corpid).

        Raises:
            ConfigError: for a bad token or key.
        """
        return MessageCrypto(self.token, self.encoding_aes_key, self.corpid, max_body=max_body)


@attrs.frozen(slots=True, kw_only=True)
class WeComIncoming:
    """What ``on_event`` receives: the parsed push, the member (if any), the events."""

    corpid: str
    message: BaseMessage
    member_id: str | None
    events: tuple[Event, ...]
    new: bool


def event_key(corpid: str, message: BaseMessage) -> str:
    """The de-duplication key of a push: ``wc:{corpid}:{Event}:{ChangeType}:…:{CreateTime}``."""
    if isinstance(message, m.ExternalContactEvent):
        parts = (message.change_type, message.user_id, message.external_userid)
    elif isinstance(message, m.ExternalChatEvent):
        parts = (message.change_type, message.chat_id, message.update_detail or "")
    elif isinstance(message, m.ExternalTagEvent):
        parts = (message.change_type, message.tag_type, message.tag_id)
    else:
        parts = (message.raw.get("ChangeType", ""), message.openid, message.msg_id or "")
    ev = message.raw.get("Event", message.type)
    return f"wc:{corpid}:{ev}:{':'.join(parts)}:{message.create_time}"[:200]


def events_for(
    message: BaseMessage, *, corpid: str, member_id: str, state: ChannelState | None = None
) -> tuple[Event, ...]:
    """The core events a customer-contact push means for the customer's member."""
    if not isinstance(message, m.ExternalContactEvent):
        return ()
    at = message.created_at
    key = event_key(corpid, message)
    ct = message.change_type
    props: dict[str, Any] = {"corpid": corpid, "staff": message.user_id, "channel": "wecom"}
    if ct in ("add_external_contact", "add_half_external_contact"):
        st = state if state is not None else decode_state(message.state)
        if st is not None:
            props.update(source=st.channel, state=st.raw, campaign=st.campaign)
        if ct == "add_half_external_contact":
            props["half"] = True
        kind = "contact_added"
    elif ct == "del_follow_user":
        props["by"] = "customer"
        kind = "contact_deleted"
    elif ct == "del_external_contact":
        props.update(by="staff", reason=message.source)
        kind = "contact_deleted"
    elif ct == "edit_external_contact":
        kind = "tags_changed"
    elif ct == "transfer_fail":
        props["reason"] = message.fail_reason
        kind = "contact_transfer_failed"
    else:
        props["change_type"] = ct
        kind = "contact_changed"
    clean = {k: v for k, v in props.items() if v is not None and v != ""}
    return (Event(member_id, kind, at, clean, key=key),)


OnEvent = Callable[[WeComIncoming], None]

_ADDS = ("add_external_contact", "add_half_external_contact")
_DELETES = ("del_external_contact", "del_follow_user")


class WeComCallbackHandler:
    """The WeCom customer-contact callback endpoint (sync, framework-agnostic).

    Args:
        endpoint: the corp app's :class:`WeComEndpoint`.
        store: a ``MemberStore`` + ``EventLog`` (``InMemoryStore``, ``SqlStore``).
        welcome: a :class:`~membermkt.channels.wecom.welcome.WelcomeSender` (``None``: no
            welcomes).
        on_event: called once per new push (exceptions are logged, never propagated).
        clock: unix-seconds clock stamping receipt (the welcome deadline runs from it).
        max_body: the largest accepted body, in bytes (default 1 MiB).
        freshness: seconds the signed ``timestamp`` may differ from the clock either side
            (default 300); ``None`` disables the check.
        client: the corp's ``WeCom`` client: each new contact's unionid is read
            (``externalcontact/get``) by a
            :class:`~membermkt.channels.wecom.enrich.ContactEnricher` made for it — a
            background thread, rate-limited, never on the 5-second answer path — and linked
            to the external_userid in the store, so the customer and the official-account
            follower are one member.
        enricher: a :class:`~membermkt.channels.wecom.enrich.ContactEnricher` you made (e.g.
            for an ``AsyncWeCom``: then run ``await enricher.run()`` in the app's lifespan).

    Raises:
        ConfigError: for a bad token, EncodingAESKey or freshness, or a client / enricher
            of another corp (or both).
    """

    def __init__(
        self,
        endpoint: WeComEndpoint,
        *,
        store: _Store,
        welcome: WelcomeSender | None = None,
        on_event: OnEvent | None = None,
        clock: Callable[[], float] = time.time,
        max_body: int = 1 << 20,
        freshness: float | None = DEFAULT_FRESHNESS,
        client: Any = None,
        enricher: ContactEnricher | None = None,
    ) -> None:
        if client is not None and enricher is not None:
            raise ConfigError("give a client or an enricher, not both")
        if client is not None:
            enricher = ContactEnricher(client, store)
        if enricher is not None and enricher.corpid != endpoint.corpid:
            raise ConfigError("the enricher's client is for another corp")
        if welcome is not None and welcome.client.corpid != endpoint.corpid:
            raise ConfigError("the WelcomeSender's client is for another corp")
        self.endpoint = endpoint
        self.corpid = endpoint.corpid
        self.crypto = endpoint.crypto(max_body)
        self.store = store
        self.welcome = welcome
        self.on_event = on_event
        self.clock = clock
        self.max_body = max_body
        self.freshness = check_window(freshness)
        self.outcomes = Outcomes()
        self._recent: dict[str, None] = {}
        self._lock = threading.Lock()
        self.enricher = enricher
        """Links new contacts by unionid (``None``: no client given)."""

    def __repr__(self) -> str:
        return f"WeComCallbackHandler(corpid={self.corpid!r})"

    @property
    def endpoints(self) -> dict[str, WeComEndpoint]:
        """corpid → endpoint (what :mod:`membermkt.contrib` routes by)."""
        return {self.corpid: self.endpoint}

    def close(self) -> None:
        """Wait for queued welcomes; stop the enricher's worker thread."""
        if self.enricher is not None:
            self.enricher.close()
        if self.welcome is not None:
            self.welcome.close()

    def handle(
        self,
        method: str,
        query: Mapping[str, str],
        body: bytes,
        *,
        appid: str | None = None,
        received_at: float | None = None,
    ) -> Response:
        """Answer one callback request.

        Args:
            method: ``"GET"`` (URL verification) or ``"POST"`` (a push).
            query: the (URL-decoded) query parameters.
            body: the raw body.
            appid: the corpid named by the URL, if any (``contrib`` glue passes it); another
                corp's id is refused with 403.
            received_at: when the request arrived (default: now on ``clock``); also the
                ``now`` of the freshness window.

        Returns:
            ``(status, headers, body)``: 200 with the echo or ``success`` (also for an
            authentic push with unusable field values); 403 for a bad signature or a stale
            timestamp; 400 for an undecryptable push; 413 for an oversized body; 405 for
            other methods; 503 when the store fails (WeCom then re-pushes).
        """
        perf = time.perf_counter()
        at = self.clock() if received_at is None else received_at
        try:
            if method not in ("GET", "POST"):
                return 405, _TEXT, b"method not allowed"
            if len(body) > self.max_body:
                self.outcomes.add("too_large")
                return 413, _TEXT, b"request entity too large"
            if appid is not None and appid != self.corpid:
                raise SignatureError("no callback endpoint for the corp named in the URL")
            clean = clean_query(query)
            check_fresh(clean.get("timestamp", ""), now=at, window=self.freshness)
            if method == "GET":
                echo = self._verify(clean).encode("utf-8")
                self.outcomes.add("verified")
                return 200, _TEXT, echo
            if "msg_signature" not in clean or clean.get("encrypt_type", "aes") != "aes":
                # WeCom has no plaintext mode: whatever the request claims, it is refused.
                raise SignatureError("WeCom pushes are always encrypted: no msg_signature")
            xml = self.crypto.decrypt_bytes(
                body,
                clean.get("msg_signature", ""),
                clean.get("timestamp", ""),
                clean.get("nonce", ""),
            )
            new = self._push(m.parse_message(xml, max_size=self.max_body), at, perf)
            self.outcomes.add("accepted" if new else "duplicate")
            return 200, _TEXT, SUCCESS.encode()
        except SignatureError as exc:
            self.outcomes.add("refused")
            log.warning("wecom callback refused: %s", exc)
            return 403, _TEXT, b"invalid signature"
        except MalformedPushError as exc:
            self.outcomes.add("unprocessable")
            log.warning("wecom push can never be processed; answered success: %s", exc)
            return 200, _TEXT, SUCCESS.encode()
        except DecryptError as exc:
            self.outcomes.add("undecodable")
            log.warning("wecom callback undecodable: %s", exc)
            return 400, _TEXT, b"bad request"
        except StoreError:
            self.outcomes.add("store_error")
            log.exception("wecom callback: the store failed; answered 503 so WeCom re-pushes")
            return 503, _TEXT, b"try again"
        except MembermktError:
            self.outcomes.add("error")
            log.exception("wecom callback failed")
            return 500, _TEXT, b"error"

    def _verify(self, query: Mapping[str, str]) -> str:
        sig, ts, nonce = (query.get(k, "") for k in ("msg_signature", "timestamp", "nonce"))
        echostr = query.get("echostr", "")
        try:
            return self.crypto.verify_url(sig, ts, nonce, echostr)
        except SignatureError:
            # A '+' of the base64 echostr sent unescaped reads back as a space once the
            # framework form-decodes the query string: try the literal form once.
            if " " not in echostr:
                raise
            return self.crypto.verify_url(sig, ts, nonce, echostr.replace(" ", "+"))

    def _identity(self, external_userid: str) -> Identity:
        try:
            return Identity.external_userid(self.corpid, external_userid)
        except UsageError as exc:
            raise MalformedPushError(
                f"ExternalUserID is not a usable id: {exc}", field="ExternalUserID"
            ) from None

    def _push(self, message: BaseMessage, at: float, perf: float) -> bool:
        member_id: str | None = None
        events: tuple[Event, ...] = ()
        state: ChannelState | None = None
        new: bool | None = None
        if isinstance(message, m.ExternalContactEvent) and message.external_userid:
            contact = message
            state = decode_state(message.state)
            # resolve, create when new, append: one store transaction (ingest_push)
            got = ingest(
                self.store,
                self._identity(message.external_userid),
                lambda mid: events_for(contact, corpid=self.corpid, member_id=mid, state=state),
            )
            member_id, events = got.member_id, got.events
            if events:
                new = got.new > 0
            # a new contact, or the first push of a customer never seen before (added before
            # this endpoint existed): read its unionid in the background — not after a
            # deletion, when the customer may be nobody's contact any more (whether
            # externalcontact/get still answers then is not confirmed)
            if (
                new
                and self.enricher is not None
                and message.change_type not in _DELETES
                and (got.attached or message.change_type in _ADDS)
            ):
                self.enricher.submit(message.external_userid)
        if new is None:
            new = self._seen_once(event_key(self.corpid, message))
        if (
            new
            and self.welcome is not None
            and member_id is not None
            and isinstance(message, m.ExternalContactEvent)
            and message.welcome_code
            and message.change_type in ("add_external_contact", "add_half_external_contact")
        ):
            self.welcome.submit(
                WelcomeJob(
                    corpid=self.corpid,
                    staff=message.user_id,
                    external_userid=message.external_userid,
                    member_id=member_id,
                    welcome_code=message.welcome_code,
                    state=state,
                    received_at=at,
                    received_perf=perf,
                    event_at=float(message.create_time),
                )
            )
        if self.on_event is not None:
            incoming = WeComIncoming(
                corpid=self.corpid, message=message, member_id=member_id, events=events, new=new
            )
            try:
                self.on_event(incoming)
            except Exception:
                log.exception("on_event failed for %s", event_key(self.corpid, message))
        return new

    def _seen_once(self, key: str) -> bool:
        with self._lock:
            if key in self._recent:
                return False
            self._recent[key] = None
            if len(self._recent) > 10_000:
                del self._recent[next(iter(self._recent))]
            return True

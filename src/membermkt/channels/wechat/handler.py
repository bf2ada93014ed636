"""The callback endpoint: verify, decrypt, parse, record, reply — framework-agnostic.

:class:`CallbackHandler` has one method, ``handle(method, query, body) -> (status, headers,
body)``; :mod:`membermkt.contrib.asgi` and :mod:`membermkt.contrib.wsgi` mount it in one
line. For each push it:

1. checks the signature (plaintext mode) or the ``msg_signature`` and decrypts (safe mode);
2. parses the XML (:func:`~membermkt.channels.wechat.messages.parse_message`);
3. turns it into core :class:`~membermkt.core.events.Event` values (:func:`events_for`) for
   the follower's member — resolved through the store, created with
   :func:`~membermkt.core.identity.member_id_for` when new — and appends them to the
   ``EventLog``, de-duplicated by key (WeChat re-pushes when it gets no answer in 5 s); all
   three in one store transaction (``store.ingest_push``) when the store offers it;
   with the account's ``client``, a new follower's openid is queued for a
   :class:`~membermkt.channels.wechat.enrich.FollowerEnricher`, which links it to its
   unionid later, off this path;
4. calls your ``on_message`` for a passive reply — once per push (not for re-pushes), with
   a deadline so the answer always leaves within WeChat's 5 s; a late handler keeps running
   in the background and the push is answered ``success``.

Before any of that, the endpoint — not the request — decides what it accepts (see
``docs/security.md``): query parameters must be ASCII; the body must fit ``max_body``; an
endpoint with an EncodingAESKey refuses plaintext pushes unless it is explicitly in
``compatibility`` mode; the signed ``timestamp`` must lie within ``freshness`` seconds of
``now``. Refusals are answered 403 (signature, mode, freshness), 400 (undecryptable or not
well-formed), 413 (too large); an authentic push whose field values can never be used is
answered ``success`` so WeChat stops re-pushing it (logged and counted); only store failures
answer 503, so WeChat re-pushes. :attr:`CallbackHandler.outcomes` counts each kind.

Several official accounts can share one handler: give one :class:`Endpoint` per account;
a push is routed by the ``appid`` argument (e.g. from the URL path) or, failing that, by
whose token signs it. Accounts sharing a Token cannot be told apart by signature, so such a
configuration requires ``route_by_signature=False`` (every request names its appid).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from membermkt.channels._ingest import ingest
from membermkt.channels.wechat import messages as m
from membermkt.channels.wechat._guard import (
    DEFAULT_FRESHNESS,
    Outcomes,
    check_fresh,
    check_window,
    clean_query,
)
from membermkt.channels.wechat.crypto import MessageCrypto, sha1_signature
from membermkt.channels.wechat.enrich import FollowerEnricher
from membermkt.channels.wechat.replies import SUCCESS, text_reply
from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.jobresults import JobResult
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

__all__ = [
    "CallbackHandler",
    "Endpoint",
    "Incoming",
    "event_key",
    "events_for",
]

log = logging.getLogger(__name__)

Response = tuple[int, list[tuple[str, str]], bytes]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_XML = [("Content-Type", "application/xml; charset=utf-8")]


class _Store(Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def upsert_members(self, members: Iterable[Member]) -> int: ...

    def append_events(self, events: Iterable[Event]) -> int: ...


@attrs.frozen(slots=True, kw_only=True)
class Endpoint:
    """The callback settings of one official account.

    Attributes:
        appid: the account's appid (the safe-mode receive id).
        token: the server-settings Token.
        encoding_aes_key: the EncodingAESKey (``None``: plaintext mode only). With a key
            the endpoint is in safe mode: plaintext pushes are refused.
        compatibility: accept plaintext pushes as well as encrypted ones (WeChat's
            compatibility mode, for the duration of a migration to safe mode). Needs a key.
        scene_channels: QR scene → acquisition channel name; a follow or scan through a
            mapped scene records the channel as ``source`` (unmapped: the scene itself).
    """

    appid: str
    token: str = attrs.field(repr=False)
    encoding_aes_key: str | None = attrs.field(default=None, repr=False)
    compatibility: bool = False
    scene_channels: Mapping[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.compatibility and not self.encoding_aes_key:
            raise ConfigError(
                f"endpoint {self.appid!r}: compatibility mode needs an encoding_aes_key "
                "(without one the endpoint is plaintext-only anyway)"
            )

    def crypto(self, max_body: int) -> MessageCrypto:
        """The :class:`MessageCrypto` of this endpoint (a dummy key in plaintext mode)."""
        key = self.encoding_aes_key or "A" * 43
        return MessageCrypto(self.token, key, self.appid, max_body=max_body)


@attrs.frozen(slots=True, kw_only=True)
class Incoming:
    """What ``on_message`` receives.

    Attributes:
        appid: the account.
        message: the parsed push.
        member_id: the follower's member (``None`` for pushes that concern no member yet,
            such as job results from an unknown openid).
        events: the core events recorded for it.
    """

    appid: str
    message: m.BaseMessage
    member_id: str | None
    events: tuple[Event, ...]

    def reply_text(self, content: str) -> str:
        """A passive text reply to this push."""
        return text_reply(self.message, content, create_time=self.message.create_time)


def event_key(appid: str, message: m.BaseMessage) -> str:
    """The de-duplication key: ``wx:{appid}:{MsgId}`` for messages,
    ``wx:{appid}:{FromUserName}:{CreateTime}:{Event}`` for events."""
    if isinstance(message, m.BaseEvent):
        return f"wx:{appid}:{message.openid}:{message.create_time}:{message.raw.get('Event', '')}"
    mid = message.raw.get("MsgId")
    if mid:
        return f"wx:{appid}:{mid}"
    return f"wx:{appid}:{message.openid}:{message.create_time}:{message.type}"


def events_for(
    message: m.BaseMessage,
    *,
    appid: str,
    member_id: str,
    scene_channels: Mapping[str, str] | None = None,
) -> tuple[Event, ...]:
    """The core events a push means for the follower (the behaviour trail).

    ``follow`` (``source``, ``scene``, ``appid``), ``unfollow``, ``scan`` (``source``,
    ``scene``), ``menu_click`` (``key``), ``view`` (``url``), ``message`` (``msgtype``),
    ``location``. Job results and unknown kinds record nothing.
    """
    channels = scene_channels or {}
    at = message.created_at
    key = event_key(appid, message)
    props: dict[str, Any]

    def one(event_type: str, props: dict[str, Any]) -> tuple[Event, ...]:
        clean = {k: v for k, v in props.items() if v is not None and v != ""}
        return (Event(member_id, event_type, at, clean, key=key),)

    if isinstance(message, m.SubscribeEvent):
        props = {"appid": appid, "scene": message.scene}
        if message.scene:
            props["source"] = channels.get(message.scene, message.scene)
        return one("follow", props)
    if isinstance(message, m.UnsubscribeEvent):
        return one("unfollow", {"appid": appid})
    if isinstance(message, m.ScanEvent):
        props = {"appid": appid, "scene": message.scene}
        if message.scene:
            props["source"] = channels.get(message.scene, message.scene)
        return one("scan", props)
    if isinstance(message, m.ClickEvent):
        return one("menu_click", {"key": message.key or "", "appid": appid})
    if isinstance(message, m.ViewEvent):
        return one("view", {"url": message.url, "appid": appid})
    if isinstance(message, m.LocationEvent):
        return one(
            "location",
            {
                "latitude": message.latitude,
                "longitude": message.longitude,
                "precision": message.precision,
                "appid": appid,
            },
        )
    if not isinstance(message, m.BaseEvent) and not isinstance(message, m.UnknownMessage):
        return one("message", {"msgtype": message.type, "appid": appid})
    if isinstance(message, m.UnknownMessage):
        return one("message", {"msgtype": message.type or "unknown", "appid": appid})
    return ()


OnMessage = Callable[[Incoming], str | None]


def _several(value: Any) -> list[Any]:
    if value is None:
        return []
    if hasattr(value, "appid"):
        return [value]
    return list(value)


_MEMBER_EVENTS = (
    m.SubscribeEvent,
    m.UnsubscribeEvent,
    m.ScanEvent,
    m.ClickEvent,
    m.ViewEvent,
    m.LocationEvent,
)
"""The events :func:`events_for` records (every message kind is recorded too)."""


class CallbackHandler:
    """The WeChat official-account callback endpoint (sync, framework-agnostic).

    Args:
        endpoints: one :class:`Endpoint` per account.
        store: a ``MemberStore`` + ``EventLog`` (``InMemoryStore``, ``SqlStore``).
        on_message: called once per new push; return passive-reply XML (see
            :meth:`Incoming.reply_text`) or ``None``.
        reply_timeout: seconds ``on_message`` may take before the push is answered
            ``success`` without a reply (keep it under WeChat's 5 s).
        max_body: the largest accepted body, in bytes (default 1 MiB).
        freshness: seconds the signed ``timestamp`` may differ from ``now`` either side
            (default 300); ``None`` disables the check.
        clock: unix-seconds clock used when :meth:`handle` gets no ``now``.
        route_by_signature: with several endpoints and no ``appid`` on a request, route by
            whose Token signs it. Set ``False`` to require the appid (URL path) on every
            request; required when two endpoints share a Token.
        client: the account's ``OfficialAccount`` (or one per account): new followers are
            enriched with their unionid by a
            :class:`~membermkt.channels.wechat.enrich.FollowerEnricher` made for it — a
            background thread, rate-limited, never on the 5-second answer path — and linked
            to it in the store, so one person across accounts and WeCom is one member.
        enricher: a :class:`~membermkt.channels.wechat.enrich.FollowerEnricher` you made
            (or one per account), e.g. for an ``AsyncOfficialAccount`` (then run
            ``await enricher.run()`` in the app's lifespan) or other rate settings.

    Raises:
        ConfigError: without endpoints, with two for one appid, with a bad key or
            freshness, with two endpoints sharing a Token while routing by signature, or
            with a client / enricher for an account without an endpoint (or two for one).
    """

    def __init__(
        self,
        endpoints: Endpoint | Iterable[Endpoint],
        *,
        store: _Store,
        on_message: OnMessage | None = None,
        reply_timeout: float = 4.0,
        max_body: int = 1 << 20,
        freshness: float | None = DEFAULT_FRESHNESS,
        clock: Callable[[], float] = time.time,
        route_by_signature: bool = True,
        client: Any = None,
        enricher: FollowerEnricher | Iterable[FollowerEnricher] | None = None,
    ) -> None:
        eps = [endpoints] if isinstance(endpoints, Endpoint) else list(endpoints)
        if not eps:
            raise ConfigError("CallbackHandler needs at least one Endpoint")
        self.endpoints: dict[str, Endpoint] = {}
        self._crypto: dict[str, MessageCrypto] = {}
        tokens: dict[str, str] = {}
        for ep in eps:
            if ep.appid in self.endpoints:
                raise ConfigError(f"two endpoints for appid {ep.appid!r}")
            if route_by_signature and len(eps) > 1 and ep.token in tokens:
                raise ConfigError(
                    f"endpoints {tokens[ep.token]!r} and {ep.appid!r} share a Token, so a "
                    "push cannot be routed by its signature: give each account its own "
                    "Token, or pass route_by_signature=False and name the appid in the URL"
                )
            tokens[ep.token] = ep.appid
            self.endpoints[ep.appid] = ep
            self._crypto[ep.appid] = ep.crypto(max_body)
        self.freshness = check_window(freshness)
        self.clock = clock
        self.route_by_signature = route_by_signature
        self.outcomes = Outcomes()
        self.store = store
        self.on_message = on_message
        self.reply_timeout = reply_timeout
        self.max_body = max_body
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._recent: dict[str, None] = {}
        self.enrichers: dict[str, FollowerEnricher] = {}
        """appid → the enricher of that account's new followers."""
        made = [FollowerEnricher(c, store) for c in _several(client)]
        for e in [*made, *_several(enricher)]:
            if e.appid not in self.endpoints:
                raise ConfigError(f"enricher for appid {e.appid!r}, which has no endpoint")
            if e.appid in self.enrichers:
                raise ConfigError(f"two clients / enrichers for appid {e.appid!r}")
            self.enrichers[e.appid] = e

    def __repr__(self) -> str:
        return f"CallbackHandler(appids={sorted(self.endpoints)})"

    def close(self) -> None:
        """Wait for background ``on_message`` calls and release their threads; stop the
        enrichers' worker threads (openids still queued stay in :attr:`enrichers`)."""
        for e in self.enrichers.values():
            e.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ------------------------------------------------------------------ routing

    def _route(self, query: Mapping[str, str], appid: str | None) -> str:
        if appid is not None:
            if appid not in self.endpoints:
                raise SignatureError(f"no callback endpoint for appid {appid!r}")
            return appid
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints))
        if not self.route_by_signature:
            raise SignatureError("this handler serves several accounts: the URL must name one")
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        sig = query.get("signature", "")
        for aid, ep in self.endpoints.items():
            if sig and sha1_signature(ep.token, ts, nonce) == sig:
                return aid
        raise SignatureError("no endpoint's token signs this push")

    # ------------------------------------------------------------------ entry point

    def handle(
        self,
        method: str,
        query: Mapping[str, str],
        body: bytes,
        *,
        appid: str | None = None,
        now: float | None = None,
    ) -> Response:
        """Answer one callback request.

        Args:
            method: ``"GET"`` (URL verification) or ``"POST"`` (a push).
            query: the query parameters.
            body: the raw body.
            appid: the account, when the URL names it (several accounts on one handler).
            now: the current unix time (default: ``clock()``), for the freshness window.

        Returns:
            ``(status, headers, body)``: 200 with the echo / reply / ``success`` (also for
            an authentic push with unusable field values, so WeChat stops re-pushing it);
            403 for a bad signature, a refused plaintext push on a safe-mode endpoint or a
            stale timestamp; 400 for an undecryptable or malformed push; 413 for an
            oversized body; 405 for other methods; 503 when the store fails (WeChat then
            re-pushes).
        """
        try:
            if method not in ("GET", "POST"):
                return 405, _TEXT, b"method not allowed"
            if len(body) > self.max_body:
                self.outcomes.add("too_large")
                return 413, _TEXT, b"request entity too large"
            clean = clean_query(query)
            target = self._route(clean, appid)
            check_fresh(
                clean.get("timestamp", ""),
                now=self.clock() if now is None else now,
                window=self.freshness,
            )
            if method == "GET":
                response = self._verify(target, clean)
                self.outcomes.add("verified")
                return response
            return self._push(target, clean, body)
        except SignatureError as exc:
            self.outcomes.add("refused")
            log.warning("wechat callback refused: %s", exc)
            return 403, _TEXT, b"invalid signature"
        except MalformedPushError as exc:
            self.outcomes.add("unprocessable")
            log.warning("wechat push can never be processed; answered success: %s", exc)
            return 200, _TEXT, SUCCESS.encode()
        except DecryptError as exc:
            self.outcomes.add("undecodable")
            log.warning("wechat callback undecodable: %s", exc)
            return 400, _TEXT, b"bad request"
        except StoreError:
            self.outcomes.add("store_error")
            log.exception("wechat callback: the store failed; answered 503 so WeChat re-pushes")
            return 503, _TEXT, b"try again"
        except MembermktError:
            self.outcomes.add("error")
            log.exception("wechat callback failed")
            return 500, _TEXT, b"error"

    def _verify(self, appid: str, query: Mapping[str, str]) -> Response:
        crypto = self._crypto[appid]
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        echostr = query.get("echostr", "")
        if "signature" in query:
            crypto.check_signature(query["signature"], ts, nonce)
            return 200, _TEXT, echostr.encode("utf-8")
        if "msg_signature" in query and self.endpoints[appid].encoding_aes_key:
            # Unconfirmed: official accounts verify URLs with the plaintext signature even in
            # safe mode; this WeCom-style branch is kept for Open Platform-style endpoints.
            return (
                200,
                _TEXT,
                crypto.verify_url(query["msg_signature"], ts, nonce, echostr).encode(),
            )
        raise SignatureError("URL verification without a signature")

    def _push(self, appid: str, query: Mapping[str, str], body: bytes) -> Response:
        ep, crypto = self.endpoints[appid], self._crypto[appid]
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        encrypted = query.get("encrypt_type") == "aes"
        if encrypted:
            if not ep.encoding_aes_key:
                raise DecryptError(f"{appid}: encrypted push but no EncodingAESKey configured")
            xml = crypto.decrypt_bytes(body, query.get("msg_signature", ""), ts, nonce)
        else:
            crypto.check_signature(query.get("signature", ""), ts, nonce)
            if ep.encoding_aes_key and not ep.compatibility:
                # The endpoint, not the request, decides the mode: a safe-mode endpoint
                # never takes an unencrypted body (its signature covers only the query).
                raise SignatureError(
                    f"{appid}: plaintext push refused (the endpoint is in safe mode; set "
                    "compatibility=True only while migrating)"
                )
            xml = body
        message = m.parse_message(xml, max_size=self.max_body)
        incoming, new = self._record(ep, message)
        self.outcomes.add("accepted" if new else "duplicate")
        reply = self._reply(incoming) if new else None
        if reply is None:
            return 200, _TEXT, SUCCESS.encode()
        if encrypted:
            return 200, _XML, crypto.encrypt(reply, ts or str(message.create_time), nonce).encode()
        return 200, _XML, reply.encode("utf-8")

    def _record(self, ep: Endpoint, message: m.BaseMessage) -> tuple[Incoming, bool]:
        try:
            identity = Identity.openid(ep.appid, message.openid)
        except UsageError as exc:
            raise MalformedPushError(
                f"FromUserName is not a usable openid: {exc}", field="FromUserName"
            ) from None
        # Pushes that mean nothing for a member (job results, unknown events) neither create
        # one nor store events. Job results are recorded once in the store (when it keeps
        # them); the rest are de-duplicated by key in a small in-memory window.
        if isinstance(message, m.BaseEvent) and not isinstance(message, _MEMBER_EVENTS):
            member_id = self.store.resolve(identity)
            new = self._job_result(ep.appid, message)
            if new is None:
                new = self._seen_once(event_key(ep.appid, message))
            return Incoming(appid=ep.appid, message=message, member_id=member_id, events=()), new
        # Resolve, create when new (deterministic id: two processes seeing the same new
        # follower create one member) and append — one store transaction (ingest_push).
        got = ingest(
            self.store,
            identity,
            lambda mid: events_for(
                message, appid=ep.appid, member_id=mid, scene_channels=ep.scene_channels
            ),
        )
        new = got.new > 0
        if new and (got.attached or isinstance(message, m.SubscribeEvent)):
            self._enrich(ep.appid, message.openid)
        return (
            Incoming(appid=ep.appid, message=message, member_id=got.member_id, events=got.events),
            new,
        )

    def _enrich(self, appid: str, openid: str) -> None:
        e = self.enrichers.get(appid)
        if e is not None:
            e.submit(openid)

    def _job_result(self, appid: str, message: m.BaseMessage) -> bool | None:
        """Record a job result (``MASSSENDJOBFINISH``, ``TEMPLATESENDJOBFINISH``) once in the
        store — whether it is new — or ``None`` for another push or a store that keeps no
        job results (see :mod:`membermkt.engine.jobresults`)."""
        record = getattr(self.store, "record_job_result", None)
        if not callable(record):
            return None
        try:
            result = JobResult.from_message(appid, message)
        except UsageError as exc:
            raise MalformedPushError(str(exc), field="MsgID") from None
        if result is None:
            return None
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        return bool(record(result.key, attrs.asdict(result), now=now))

    def _seen_once(self, key: str) -> bool:
        recent = self._recent
        with self._pool_lock:
            if key in recent:
                return False
            recent[key] = None
            if len(recent) > 10_000:
                del recent[next(iter(recent))]
            return True

    def _reply(self, incoming: Incoming) -> str | None:
        if self.on_message is None:
            return None
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=8, thread_name_prefix="membermkt-wechat-reply"
                )
            pool = self._pool
        future = pool.submit(self.on_message, incoming)
        try:
            reply = future.result(timeout=self.reply_timeout)
        except concurrent.futures.TimeoutError:
            log.warning("on_message took over %s s; answered 'success'", self.reply_timeout)
            return None
        except Exception:
            log.exception("on_message failed for %s", incoming.message.dedup_id)
            return None
        if reply is not None and not isinstance(reply, str):
            log.error("on_message returned %r; it must return reply XML (str) or None", reply)
            return None
        return reply

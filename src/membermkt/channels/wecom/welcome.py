"""The welcome fast path: greet every new customer once, inside WeCom's 20-second window.

An ``add_external_contact`` event may carry a ``WelcomeCode``. It can be used **once**, within
**20 s** of the event; later calls — or any call after the customer started chatting — get
41051 (reference §3.5). :class:`WelcomeSender` therefore:

* chooses the message by the contact way's channel (decoded from ``state``) and personalises
  it with the member's fields plus ``customer_name``, ``staff``, ``channel`` and ``campaign``
  (:class:`~membermkt.core.templating.Template` placeholders, e.g. ``{{ customer_name |
  "朋友" }}``);
* claims each welcome code once per process (the callback handler additionally sends only
  when the ``contact_added`` event was *newly* stored, which de-duplicates across processes
  and WeCom's re-pushes);
* refuses to call when the deadline (``window - margin`` after receipt) has passed, and
  never retries blindly: 41051, a late start and an ambiguous timeout are recorded (status
  and reason) and left alone;
* records every outcome (:attr:`WelcomeSender.outcomes`, and a ``wecom_welcome`` event in the
  store when one is given) with the latency from callback receipt to the call.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from membermkt.channels.wecom.client import WeCom
from membermkt.channels.wecom.state import ChannelState
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.templating import MissingField, Template
from membermkt.errors import (
    MembermktError,
    PermanentDeliveryError,
    PlatformError,
    QuotaExceeded,
    TransportError,
    UsageError,
)

__all__ = [
    "WelcomeConfig",
    "WelcomeJob",
    "WelcomeMessage",
    "WelcomeOutcome",
    "WelcomeSender",
    "WelcomeStatus",
    "percentile",
]

log = logging.getLogger(__name__)

WINDOW = 20.0
"""Seconds a welcome code is usable after the add event (reference §3.5)."""


class _Store(Protocol):
    def get_member(self, member_id: str) -> Member | None: ...

    def append_events(self, events: Any) -> int: ...


@attrs.frozen(slots=True, kw_only=True)
class WelcomeMessage:
    """A welcome: template text and up to 9 attachments (as the API takes them).

    Raises:
        UsageError: for a malformed template, no content, or more than 9 attachments.
    """

    text: str | None = None
    attachments: tuple[Mapping[str, Any], ...] = ()
    _template: Template | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not self.text and not self.attachments:
            raise UsageError("a WelcomeMessage needs text or attachments")
        if len(self.attachments) > 9:
            raise UsageError("a welcome takes at most 9 attachments")
        object.__setattr__(self, "_template", Template(self.text) if self.text else None)

    def render(self, member: Member) -> str | None:
        """The personalised text.

        Raises:
            MissingField: when a placeholder without fallback has no value.
        """
        return self._template.render(member) if self._template is not None else None


@attrs.frozen(slots=True, kw_only=True)
class WelcomeConfig:
    """Which welcome to send, and the timing rules.

    Attributes:
        default: the welcome for channels without their own (``None``: none).
        by_channel: decoded channel (the contact way's ``state``) → welcome.
        window: the platform's window in seconds (20).
        margin: do not *start* a call later than ``window - margin`` after the event.
        from_event_time: start the window at the event's ``CreateTime`` when that is earlier
            than receipt (a re-push arrives ≥ 5 s after the event); turn off if this host's
            clock runs ahead of WeCom's.
        fetch_name: look the customer's name up (``externalcontact/get``) for the
            ``customer_name`` placeholder — one more call inside the window; a failed lookup
            leaves the name empty (use a fallback in the template).
    """

    default: WelcomeMessage | None = None
    by_channel: Mapping[str, WelcomeMessage] = attrs.field(factory=dict)
    window: float = WINDOW
    margin: float = 2.0
    from_event_time: bool = True
    fetch_name: bool = False

    def choose(self, channel: str | None) -> WelcomeMessage | None:
        """The welcome for ``channel``."""
        if channel is not None and channel in self.by_channel:
            return self.by_channel[channel]
        return self.default

    @property
    def deadline(self) -> float:
        """Seconds after receipt by which the call must start."""
        return self.window - self.margin


@attrs.frozen(slots=True, kw_only=True)
class WelcomeJob:
    """One welcome to send, as the callback handler hands it over.

    Attributes:
        corpid, staff, external_userid, member_id: who.
        welcome_code: the single-use code.
        state: the decoded contact-way state (``None`` without one).
        received_at: when the callback arrived (the sender's ``clock``, unix seconds).
        received_perf: the same instant on :func:`time.perf_counter` (latency measurement).
        customer_name: the customer's name if known.
        event_at: the event's ``CreateTime`` (unix seconds), if known.
    """

    corpid: str
    staff: str
    external_userid: str
    member_id: str
    welcome_code: str
    state: ChannelState | None
    received_at: float
    received_perf: float
    customer_name: str | None = None
    event_at: float | None = None


class WelcomeStatus(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"
    """41051: the code was unusable (used, expired, or the chat started)."""
    LATE = "late"
    """The deadline had passed before the call could start: not called."""
    UNKNOWN = "unknown"
    """The call's answer was lost: WeCom may or may not have sent it. Not retried."""
    FAILED = "failed"
    NO_MESSAGE = "no_message"
    DUPLICATE = "duplicate"
    """This code was already handled by this sender."""


@attrs.frozen(slots=True, kw_only=True)
class WelcomeOutcome:
    """What happened to one welcome code.

    Attributes:
        job: the job.
        status: a :class:`WelcomeStatus`.
        reason: why (``"errcode:41051"``, ``"deadline: 19.2 s after receipt"``…).
        latency: seconds from callback receipt to the start of the call (``None``: no call).
    """

    job: WelcomeJob
    status: WelcomeStatus
    reason: str | None = None
    latency: float | None = None


class WelcomeSender:
    """Sends welcomes for new customers (see the module docs).

    Args:
        client: the :class:`WeCom` client of the corp.
        config: a :class:`WelcomeConfig`.
        store: where to record a ``wecom_welcome`` event per code and read members for
            personalisation (optional).
        clock: unix-seconds clock for the deadline (the emulator's, in tests).
        background: send from a thread pool (the callback answers at once) instead of
            inside the callback request.
        workers: pool threads.
        history: how many outcomes (and claimed codes) to keep in memory.

    Raises:
        UsageError: for a margin outside ``[0, window)`` or no workers.
    """

    def __init__(
        self,
        client: WeCom,
        config: WelcomeConfig,
        *,
        store: _Store | None = None,
        clock: Callable[[], float] = time.time,
        background: bool = True,
        workers: int = 8,
        history: int = 100_000,
    ) -> None:
        if not 0 <= config.margin < config.window:
            raise UsageError("WelcomeConfig.margin must be in [0, window)")
        if workers < 1 or history < 1:
            raise UsageError("workers and history must be >= 1")
        self.client = client
        self.config = config
        self.store = store
        self.clock = clock
        self.background = background
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # Codes are single-use and die after 20 s: remembering the recent ones is enough.
        self._claimed: dict[str, None] = {}
        self._history = history
        self.outcomes: collections.deque[WelcomeOutcome] = collections.deque(maxlen=history)

    def __repr__(self) -> str:
        return f"WelcomeSender({self.client.corpid!r}, {len(self.outcomes)} outcomes)"

    @property
    def latencies(self) -> list[float]:
        """Receipt-to-call latencies (seconds) of every welcome that was called."""
        with self._lock:
            return [o.latency for o in self.outcomes if o.latency is not None]

    def counts(self) -> dict[str, int]:
        """Outcomes per status."""
        out: dict[str, int] = {}
        with self._lock:
            for o in self.outcomes:
                out[o.status.value] = out.get(o.status.value, 0) + 1
        return out

    def submit(self, job: WelcomeJob) -> None:
        """Send ``job`` now (inline) or on the pool (``background``)."""
        if not self.background:
            self.send(job)
            return
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="membermkt-wecom-welcome"
                )
            pool = self._pool
        pool.submit(self._send_logged, job)

    def _send_logged(self, job: WelcomeJob) -> None:
        try:
            self.send(job)
        except Exception:
            log.exception("welcome for %s failed unexpectedly", job.external_userid)

    def close(self) -> None:
        """Wait for queued welcomes and release the pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _member(self, job: WelcomeJob) -> Member:
        base = self.store.get_member(job.member_id) if self.store is not None else None
        base = base or Member(job.member_id)
        extra: dict[str, str] = {"staff": job.staff}
        if job.customer_name:
            extra["customer_name"] = job.customer_name
        if job.state is not None:
            extra["channel"] = job.state.channel
            if job.state.campaign:
                extra["campaign"] = job.state.campaign
        return attrs.evolve(base, attributes={**base.attributes, **extra})

    def send(self, job: WelcomeJob) -> WelcomeOutcome:
        """Send one welcome (at most once per code) and record the outcome.

        Returns:
            The :class:`WelcomeOutcome` (never raises for a platform refusal).
        """
        with self._lock:
            if job.welcome_code in self._claimed:
                return WelcomeOutcome(job=job, status=WelcomeStatus.DUPLICATE)
            self._claimed[job.welcome_code] = None
            if len(self._claimed) > self._history:
                del self._claimed[next(iter(self._claimed))]
        outcome = self._attempt(job)
        with self._lock:
            self.outcomes.append(outcome)
        self._record(outcome)
        return outcome

    def _attempt(self, job: WelcomeJob) -> WelcomeOutcome:
        message = self.config.choose(job.state.channel if job.state else None)
        if message is None:
            return WelcomeOutcome(job=job, status=WelcomeStatus.NO_MESSAGE)
        if self.config.fetch_name and job.customer_name is None:
            job = attrs.evolve(job, customer_name=self._name(job))
        try:
            text = message.render(self._member(job))
        except MissingField as exc:
            return WelcomeOutcome(job=job, status=WelcomeStatus.FAILED, reason=f"template: {exc}")
        start = job.received_at
        if self.config.from_event_time and job.event_at is not None:
            start = min(start, job.event_at)
        elapsed = self.clock() - start
        if elapsed > self.config.deadline:
            return WelcomeOutcome(
                job=job,
                status=WelcomeStatus.LATE,
                reason=f"deadline: {elapsed:.1f} s after the event "
                f"(limit {self.config.deadline} s)",
            )
        latency = time.perf_counter() - job.received_perf
        try:
            self.client.send_welcome(job.welcome_code, text=text, attachments=message.attachments)
        except PermanentDeliveryError as exc:
            return WelcomeOutcome(
                job=job,
                status=WelcomeStatus.REJECTED,
                reason=f"errcode:{exc.errcode}",
                latency=latency,
            )
        except TransportError as exc:
            status = WelcomeStatus.UNKNOWN if exc.ambiguous else WelcomeStatus.FAILED
            return WelcomeOutcome(
                job=job, status=status, reason=f"transport: {exc}", latency=latency
            )
        except (PlatformError, QuotaExceeded, UsageError) as exc:
            code = exc.errcode if isinstance(exc, PlatformError) else type(exc).__name__
            return WelcomeOutcome(
                job=job, status=WelcomeStatus.FAILED, reason=f"errcode:{code}", latency=latency
            )
        return WelcomeOutcome(job=job, status=WelcomeStatus.SENT, latency=latency)

    def _name(self, job: WelcomeJob) -> str | None:
        try:
            name = self.client.get_contact(job.external_userid).contact.name
        except (PlatformError, TransportError, QuotaExceeded) as exc:
            log.warning("no name for %s (%s): welcoming without it", job.external_userid, exc)
            return None
        return name or None

    def _record(self, outcome: WelcomeOutcome) -> None:
        if self.store is None:
            return
        job = outcome.job
        props: dict[str, str | int | float | bool] = {
            "status": outcome.status.value,
            "staff": job.staff,
            "channel": "wecom",
        }
        if outcome.reason:
            props["reason"] = outcome.reason[:200]
        if outcome.latency is not None:
            props["latency_ms"] = round(outcome.latency * 1000, 3)
        if job.state is not None:
            props["source"] = job.state.channel
        at = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        key = f"wc:{job.corpid}:welcome:{job.welcome_code}"[:200]
        try:
            self.store.append_events([Event(job.member_id, "wecom_welcome", at, props, key=key)])
        except MembermktError:
            log.exception("could not record the welcome outcome of %s", job.external_userid)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank (for latency reports).

    Raises:
        UsageError: for no values or ``q`` outside [0, 1].
    """
    if not values or not 0 <= q <= 1:
        raise UsageError("percentile needs values and 0 <= q <= 1")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]

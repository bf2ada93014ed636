"""Value types shared by channels, the delivery ledger and the campaign engine (pure)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.core._frozen import FrozenMap
from membermkt.errors import LedgerError, UsageError

__all__ = [
    "BATCH_CLOSED",
    "BATCH_OPEN",
    "HANDED_STATUSES",
    "ChannelCapabilities",
    "Delivery",
    "DeliveryRecord",
    "DeliveryStatus",
    "LedgerBatch",
    "Outcome",
    "SendOutcome",
    "SendResult",
    "check_transition",
]


def _to_payload(value: Mapping[str, Any]) -> FrozenMap[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(f"Delivery.payload must be a mapping, got {type(value).__name__}")
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


@attrs.frozen(slots=True, kw_only=True)
class Delivery:
    """One message to one member through one channel.

    Attributes:
        key: the idempotency key (derived from campaign, member and variant; stable across
            re-plans), unique in the ledger.
        campaign_id: the campaign.
        member_id: the member.
        channel: the channel name, e.g. ``"wechat.mass"``.
        address: the channel address (openid, external_userid, ...).
        variant: the A/B variant name.
        payload: the rendered, channel-specific content (JSON-able values).
    """

    key: str
    campaign_id: str
    member_id: str
    channel: str
    address: str
    variant: str
    payload: FrozenMap[str, Any] = attrs.field(factory=FrozenMap, converter=_to_payload)


class SendOutcome(enum.StrEnum):
    """How a channel classifies one delivery's result."""

    SENT = "sent"
    """Accepted by the platform."""
    PENDING = "pending_confirmation"
    """Accepted, but a person (WeCom staff) must still confirm; results arrive later."""
    RETRYABLE = "retryable"
    """Not sent; trying the same delivery again later can succeed."""
    PERMANENT = "permanent"
    """Not sent and never will be (unfollowed, blocked, outside window, invalid address)."""
    UNKNOWN = "unknown"
    """The platform may or may not have sent it (timeout on a non-idempotent call)."""


@attrs.frozen(slots=True, kw_only=True)
class SendResult:
    """The result of sending one :class:`Delivery`.

    Attributes:
        key: the delivery's idempotency key.
        outcome: a :class:`SendOutcome`.
        reason: for failures, a short machine-readable reason (``"errcode:43004"``).
        platform_id: the platform's id for the send (mass ``msg_id``, template ``msgid``).
        retry_after: seconds to wait before retrying, when the platform said.
    """

    key: str
    outcome: SendOutcome = attrs.field(converter=SendOutcome)
    reason: str | None = None
    platform_id: str | None = None
    retry_after: float | None = None


@attrs.frozen(slots=True, kw_only=True)
class ChannelCapabilities:
    """What a channel can do, declared up front so planning never asks the platform.

    Attributes:
        max_batch_size: most deliveries per ``send`` call.
        min_batch_size: fewest deliveries per call (WeChat mass send by openid list: 2).
        idempotent: ``True`` if re-sending a delivery with the same key never sends twice
            (the platform de-duplicates, e.g. mass send ``clientmsgid``).
        rate_per_second: the most ``send`` calls per second the platform accepts (``None``:
            no known limit).
        address_kind: the identity kind used as address (``"openid"``, ``"external_userid"``).
        address_namespace: its namespace (appid / corpid), if any.
        rules: names of the platform rules this channel enforces (documentation).
    """

    max_batch_size: int
    min_batch_size: int = 1
    idempotent: bool = False
    rate_per_second: float | None = None
    address_kind: str = "openid"
    address_namespace: str = ""
    rules: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.max_batch_size < 1 or not 1 <= self.min_batch_size <= self.max_batch_size:
            raise UsageError(
                "ChannelCapabilities needs 1 <= min_batch_size <= max_batch_size, got "
                f"{self.min_batch_size}..{self.max_batch_size}"
            )


class DeliveryStatus(enum.StrEnum):
    """Ledger status of a delivery.

    ``planned → sending → sent | failed | unknown | pending_confirmation``;
    ``sending → planned`` (a retryable failure, re-queued);
    ``pending_confirmation → sent | failed`` (results pulled back later);
    ``planned → skipped`` (no longer qualifies when it is about to be handed to the channel);
    ``unknown → sent | failed`` (reconciled by a query, a keyed resend or a result callback).

    ``sending`` means *handed to the channel* (inside a ledger batch written before the
    call); ``unknown`` means the platform may or may not have delivered; ``failed`` means it
    certainly did not.
    """

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    PENDING = "pending_confirmation"
    SKIPPED = "skipped"


TERMINAL_STATUSES = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.SKIPPED,
    }
)

HANDED_STATUSES = frozenset(
    {
        DeliveryStatus.SENDING,
        DeliveryStatus.SENT,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.PENDING,
    }
)
"""Statuses of deliveries that reached — or may have reached — the member: what frequency
and platform receive caps count (in-doubt ones conservatively)."""

_ALLOWED: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PLANNED: frozenset(
        {DeliveryStatus.SENDING, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED}
    ),
    DeliveryStatus.SENDING: frozenset(
        {
            DeliveryStatus.SENT,
            DeliveryStatus.FAILED,
            DeliveryStatus.UNKNOWN,
            DeliveryStatus.PLANNED,
            DeliveryStatus.PENDING,
            DeliveryStatus.SENDING,
        }
    ),
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.SENT, DeliveryStatus.FAILED}),
    DeliveryStatus.SENT: frozenset(),
    DeliveryStatus.FAILED: frozenset(),
    DeliveryStatus.SKIPPED: frozenset(),
    DeliveryStatus.UNKNOWN: frozenset({DeliveryStatus.SENT, DeliveryStatus.FAILED}),
}


def check_transition(key: str, old: DeliveryStatus, new: DeliveryStatus) -> None:
    """Refuse a ledger transition that the state machine does not allow.

    ``unknown → sent|failed`` is allowed only for reconciliation (a later status query).

    Raises:
        LedgerError: naming the delivery and both statuses.
    """
    if new not in _ALLOWED[old]:
        raise LedgerError(f"delivery {key!r}: transition {old.value} -> {new.value} not allowed")


@attrs.frozen(slots=True, kw_only=True)
class DeliveryRecord:
    """A delivery as the ledger holds it.

    Attributes:
        delivery: the planned :class:`Delivery`.
        status: :class:`DeliveryStatus`.
        attempts: how many times it was claimed for sending.
        reason: failure / skip reason.
        platform_id: the platform's id once sent.
        updated_at: last change (UTC), set by the store from the caller's ``now``.
        worker: the runner that holds it while ``sending``.
    """

    delivery: Delivery
    status: DeliveryStatus = DeliveryStatus.PLANNED
    attempts: int = 0
    reason: str | None = None
    platform_id: str | None = None
    updated_at: dt.datetime | None = None
    worker: str | None = None

    @property
    def key(self) -> str:
        return self.delivery.key


BATCH_OPEN = "open"
"""A hand-off batch whose outcome is not fully known yet (sending or unknown members)."""
BATCH_CLOSED = "closed"
"""A hand-off batch whose every delivery reached a known state."""


@attrs.frozen(slots=True, kw_only=True)
class LedgerBatch:
    """One hand-off to a channel, written to the ledger *before* the call.

    The batch is the unit of idempotency: recovery resends exactly these ``keys`` with
    exactly this ``request_key`` (mass ``clientmsgid``), never a regrouping.

    Attributes:
        batch_id: unique id (also held in each member delivery's ``worker`` while
            ``sending``).
        campaign_id / channel: what it belongs to.
        keys: the member deliveries' keys, in send order.
        request_key: the platform idempotency key sent with the call.
        worker: the runner holding it.
        opened_at: when it was written (start of the platform's de-duplication window).
        updated_at: last heartbeat / outcome write.
        state: :data:`BATCH_OPEN` or :data:`BATCH_CLOSED`.
    """

    batch_id: str
    campaign_id: str
    channel: str
    keys: tuple[str, ...]
    request_key: str
    worker: str | None
    opened_at: dt.datetime
    updated_at: dt.datetime
    state: str = BATCH_OPEN


@attrs.frozen(slots=True, kw_only=True)
class Outcome:
    """A delivery's new status, recorded with its batch's other outcomes in one transaction.

    Attributes:
        key: the delivery.
        status: the new :class:`DeliveryStatus`.
        reason: failure / skip / deferral reason.
        platform_id: the platform's id of the send.
    """

    key: str
    status: DeliveryStatus = attrs.field(converter=DeliveryStatus)
    reason: str | None = None
    platform_id: str | None = None

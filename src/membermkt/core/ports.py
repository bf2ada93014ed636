"""The seams between the pure core and the world, as structural ``typing.Protocol``s.

Adapters implement these; the engine depends only on them. They are structural: a plugin
does not import a base class, it just has the methods (checked by the contract kits in
:mod:`membermkt.testing`).

Time is always an argument (``as_of`` / ``now``): no implementation reads the clock on its
own behalf, except a :class:`Clock`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from membermkt.core.delivery import (
    ChannelCapabilities,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    LedgerBatch,
    Outcome,
    SendResult,
)

if TYPE_CHECKING:
    from membermkt.core.events import Event
    from membermkt.core.identity import Evidence, Identity, LinkOutcome
    from membermkt.core.members import Member
    from membermkt.core.membership.coupons import CouponGrant, CouponResult
    from membermkt.core.quotas import PastSend
    from membermkt.core.segments import Segment

__all__ = [
    "AsyncChannel",
    "AsyncTokenCache",
    "BatchLedger",
    "BudgetState",
    "BudgetStore",
    "Channel",
    "Clock",
    "CouponGateway",
    "EventLog",
    "IdentityLinks",
    "IngestResult",
    "Ledger",
    "LedgerHistory",
    "MemberStore",
    "PayoutIntent",
    "PayoutLedger",
    "PushIngest",
    "SegmentQueries",
    "Store",
    "TokenCache",
    "TokenEntry",
]


# --------------------------------------------------------------------------- time


@runtime_checkable
class Clock(Protocol):
    """Where adapters and the engine get the current time (inject a fixed one in tests)."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        ...


# --------------------------------------------------------------------------- members & events


@runtime_checkable
class MemberStore(Protocol):
    """Members, their identities and tags."""

    def upsert_members(self, members: Iterable[Member]) -> int:
        """Insert or replace members by id (profile, tags, attributes, identities, consent;
        a given member's non-empty ``state`` replaces the stored one, an empty
        ``MemberState()`` keeps the state folded from stored events). Returns how many were
        written.

        An identity belongs to one member and an upsert never moves it: listing an identity
        another member holds (or that an earlier member of the call lists) raises
        :class:`~membermkt.errors.IdentityConflict` and writes nothing of the call. The
        built-in stores also take ``on_shared_identity="merge"`` (with ``at=`` and ``by=``)
        to merge the two members instead, recorded in their merge audit trail (see
        :mod:`membermkt.stores._upsert`). Dropping an identity from the member that holds it
        (re-upserting it without) releases it; that is not a move."""
        ...

    def get_member(self, member_id: str) -> Member | None:
        """The member with that id (state folded from all its events), or ``None``."""
        ...

    def resolve(self, identity: Identity) -> str | None:
        """The member id owning ``identity``, or ``None``."""
        ...

    def merge_members(self, keep: str, drop: str) -> None:
        """Fold member ``drop`` into ``keep``: identities, tags, attributes (keep's win),
        events re-attributed, state recombined; ``drop`` is removed."""
        ...

    def tag(self, member_ids: Iterable[str], tag: str) -> int:
        """Add ``tag`` to members; returns how many changed."""
        ...

    def untag(self, member_ids: Iterable[str], tag: str) -> int:
        """Remove ``tag`` from members; returns how many changed."""
        ...


class IdentityLinks(Protocol):
    """Recording that two identities are one person (``InMemoryStore``, ``SqlStore``)."""

    def link(
        self,
        a: Identity,
        b: Identity,
        evidence: Evidence | str,
        at: dt.datetime,
        *,
        by: str = "",
        note: str = "",
    ) -> LinkOutcome:
        """Record that ``a`` and ``b`` are one person (see
        :func:`membermkt.core.identity.check_link` for which evidence joins what).

        Raises:
            UsageError: on an invalid argument.
            IdentityConflict: when the rules refuse the link.
        """
        ...


@runtime_checkable
class EventLog(Protocol):
    """The append-only behaviour trail."""

    def append_events(self, events: Iterable[Event]) -> int:
        """Append events, de-duplicated by ``Event.key``; folds them into member state.
        Returns how many were newly stored. Events of unknown members create the member;
        the built-in stores record an event addressed to a member their ``link`` merged
        away as the survivor's instead (:mod:`membermkt.stores._survivors`)."""
        ...

    def events_for(
        self,
        member_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        types: Iterable[str] | None = None,
    ) -> list[Event]:
        """A member's events with ``since < at <= until`` (bounds optional), by time."""
        ...


@attrs.frozen(slots=True, kw_only=True)
class IngestResult:
    """What :meth:`PushIngest.ingest_push` did.

    Attributes:
        member_id: the member the identity belongs to (after the push).
        events: the events built for it (stored, or already stored: see ``new``).
        new: how many of them were newly stored (0: a re-push).
        attached: whether the identity was attached by this push (first time seen).
        created: whether the member itself was created by this push.
    """

    member_id: str
    events: tuple[Event, ...] = ()
    new: int = 0
    attached: bool = False
    created: bool = False


@runtime_checkable
class PushIngest(Protocol):
    """One platform push — resolve its sender, create the member when new, append its
    events — as one unit of work (one transaction on a SQL store), so a failure part-way
    leaves nothing half-written and a push costs one round of locking, not three.

    Optional: the callback handlers use it when the store has it and fall back to
    ``resolve`` + ``upsert_members`` + ``append_events`` otherwise.
    """

    def ingest_push(
        self, identity: Identity, make_events: Callable[[str], Iterable[Event]]
    ) -> IngestResult:
        """Resolve ``identity`` to its member — attaching it to a new member
        ``member_id_for(identity)`` when nobody holds it — call ``make_events(member_id)``
        (pure; it may be called again when a transaction is retried) and append the events
        (de-duplicated by key, folded into state). All or nothing.

        Raises:
            UsageError: for a value that is not an Identity, an event that is not an Event
                or that names another member.
            IdentityConflict: when the new member id already exists holding another
                identity of the same singular kind (it is not attached).
        """
        ...


@runtime_checkable
class SegmentQueries(Protocol):
    """Segment evaluation where the data lives."""

    def select(self, segment: Segment, as_of: dt.datetime) -> Iterator[str]:
        """Member ids in the segment as of ``as_of`` (streamed, sorted by id)."""
        ...

    def count(self, segment: Segment, as_of: dt.datetime) -> int:
        """How many members are in the segment as of ``as_of``."""
        ...

    def sample(
        self, segment: Segment, as_of: dt.datetime, n: int, seed: int | str = 0
    ) -> list[str]:
        """Up to ``n`` member ids of the segment (for previews): a deterministic
        pseudo-random choice for ``seed`` — the same ids in every store — sorted by id."""
        ...


# --------------------------------------------------------------------------- delivery ledger


@runtime_checkable
class Ledger(Protocol):
    """The delivery ledger: every planned delivery, its status and attempts.

    Implementations make each method atomic; ``claim`` must hand each delivery to exactly
    one worker even with several processes on one database (row locks / SKIP LOCKED).
    """

    def record_plan(self, deliveries: Iterable[Delivery], *, now: dt.datetime) -> int:
        """Insert deliveries as ``planned`` unless their key exists. Returns how many new."""
        ...

    def claim(
        self,
        campaign_id: str,
        *,
        worker: str,
        limit: int,
        now: dt.datetime,
        channel: str | None = None,
    ) -> list[DeliveryRecord]:
        """Atomically move up to ``limit`` ``planned`` deliveries to ``sending`` for
        ``worker`` (attempts + 1) and return them."""
        ...

    def mark(
        self,
        key: str,
        status: DeliveryStatus,
        *,
        now: dt.datetime,
        reason: str | None = None,
        platform_id: str | None = None,
    ) -> None:
        """Move one delivery to ``status`` (validated by
        :func:`membermkt.core.delivery.check_transition`; raises ``LedgerError``)."""
        ...

    def stale(self, campaign_id: str, *, older_than: dt.datetime) -> list[DeliveryRecord]:
        """Deliveries left ``sending`` since before ``older_than`` (a crashed worker's)."""
        ...

    def deliveries(
        self, campaign_id: str, *, status: DeliveryStatus | None = None
    ) -> Iterator[DeliveryRecord]:
        """The campaign's deliveries (optionally of one status), by key."""
        ...

    def status_counts(self, campaign_id: str) -> Mapping[str, int]:
        """Number of deliveries per status value."""
        ...


@runtime_checkable
class BatchLedger(Protocol):
    """The hand-off half of the ledger the :class:`~membermkt.engine.runner.CampaignRunner`
    works through (DESIGN §4.1): deliveries move ``planned → sending`` only inside a batch
    row written in the same transaction, so a crash leaves either nothing handed or a batch
    that recovery resends unchanged (idempotent channel) or reports ``unknown``.
    """

    def planned_counts(self, campaign_id: str, *, channel: str) -> Mapping[str, int]:
        """Planned deliveries per variant."""
        ...

    def peek_planned(
        self, campaign_id: str, *, channel: str, variant: str, limit: int
    ) -> list[DeliveryRecord]:
        """Up to ``limit`` planned deliveries of one variant (no state change)."""
        ...

    def skip(self, outcomes: Sequence[Outcome], *, now: dt.datetime) -> int:
        """``planned → skipped(reason)`` for those still planned; returns how many."""
        ...

    def open_batch(
        self,
        campaign_id: str,
        *,
        channel: str,
        batch_id: str,
        keys: Sequence[str],
        request_key: str,
        worker: str,
        now: dt.datetime,
    ) -> LedgerBatch | None:
        """Atomically write the batch row and move every key ``planned → sending``; ``None``
        (and no change) when any key is no longer planned."""
        ...

    def record_outcomes(
        self, batch_id: str, outcomes: Sequence[Outcome], *, now: dt.datetime, close: bool
    ) -> None:
        """Record outcomes of one batch in one transaction (and close it if ``close``)."""
        ...

    def open_batches(
        self, campaign_id: str, *, channel: str, older_than: dt.datetime | None = None
    ) -> list[LedgerBatch]:
        """Open batches (optionally only those not updated since ``older_than``)."""
        ...

    def take_batch(
        self, batch_id: str, *, worker: str, now: dt.datetime, stale_before: dt.datetime
    ) -> LedgerBatch | None:
        """Take over an open batch not updated since ``stale_before`` (``None`` if another
        runner holds or took it)."""
        ...

    def records(self, keys: Sequence[str]) -> list[DeliveryRecord]:
        """The deliveries with these keys, in the same order (missing ones left out)."""
        ...

    def hold(self, scope: str, *, until: dt.datetime, now: dt.datetime) -> dt.datetime:
        """Stop calls of ``scope`` until ``until`` (kept if later); returns the hold."""
        ...

    def held_until(self, scope: str, *, now: dt.datetime) -> dt.datetime | None:
        """The active hold of ``scope`` (``None`` when none is in force at ``now``)."""
        ...


@runtime_checkable
class LedgerHistory(Protocol):
    """The ledger as the history of what members received (frequency and receive caps are
    computed from it by default, with no argument from the caller)."""

    def past_sends(
        self,
        member_ids: Iterable[str],
        *,
        since: dt.datetime,
        exclude_campaign: str | None = None,
        include_planned: bool = False,
    ) -> Mapping[str, Sequence[PastSend]]:
        """Sends (handed or in doubt; ``planned`` too if asked) per member since ``since``."""
        ...


# --------------------------------------------------------------------------- money


@attrs.frozen(slots=True, kw_only=True)
class BudgetState:
    """A budget row: ``reserved + spent <= limit`` always holds (in fen, or in units)."""

    key: str
    limit: int
    reserved: int = 0
    spent: int = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.reserved - self.spent


@runtime_checkable
class BudgetStore(Protocol):
    """Budgets updated atomically (conditional updates), safe under concurrent claims."""

    def ensure_budget(self, key: str, *, limit: int) -> None:
        """Create the budget row if absent (an existing row keeps its limit)."""
        ...

    def reserve(self, items: Sequence[tuple[str, int]]) -> bool:
        """Reserve every ``(key, amount)`` or none (one transaction). ``False`` when any
        budget would exceed its limit; raises ``UsageError`` for an unknown key."""
        ...

    def release(self, items: Sequence[tuple[str, int]]) -> None:
        """Give reserved amounts back (definitive payout failure)."""
        ...

    def settle(self, items: Sequence[tuple[str, int]]) -> None:
        """Turn reserved amounts into spent (payout confirmed)."""
        ...

    def budget(self, key: str) -> BudgetState | None:
        """The budget row, or ``None``."""
        ...


@attrs.frozen(slots=True, kw_only=True)
class PayoutIntent:
    """A payout written down before the money moves.

    Attributes:
        bill_no: the merchant bill number (idempotency key at the platform).
        rule_id: the red-packet rule.
        member_id: the payee member.
        address: the payee openid.
        amount_fen: amount in fen.
        status: ``reserved | paying | paid | failed | unknown | waiting_funds`` (the
            merchant account lacked funds: the reservation and the bill number are kept until
            a retry after a top-up).
        reservations: the budget reservations to settle/release, as (key, amount) pairs.
        detail: extra data (platform ids, failure reason).
        created_at / updated_at: times (UTC).
    """

    bill_no: str
    rule_id: str
    member_id: str
    address: str
    amount_fen: int
    status: str = "reserved"
    reservations: tuple[tuple[str, int], ...] = ()
    detail: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@runtime_checkable
class PayoutLedger(Protocol):
    """Payout intents keyed by bill number."""

    def record_intent(self, intent: PayoutIntent) -> PayoutIntent:
        """Insert the intent unless its bill number exists; return the stored one
        (insert-or-get)."""
        ...

    def intent(self, bill_no: str) -> PayoutIntent | None:
        """The intent with this bill number, or ``None`` (a keyed read)."""
        ...

    def member_intents(self, rule_id: str, member_id: str) -> list[PayoutIntent]:
        """One member's intents under one rule, by bill number (a keyed read). Stores that
        merge members answer for the person: the intents of every id merged into it too."""
        ...

    def swap_intent(
        self,
        bill_no: str,
        *,
        expect: str,
        status: str,
        now: dt.datetime,
        detail: str | None = None,
    ) -> bool:
        """Compare-and-set: change the status only if it is still ``expect``; ``True`` when
        this call changed it."""
        ...

    def update_intent(
        self, bill_no: str, *, status: str, now: dt.datetime, detail: str | None = None
    ) -> None:
        """Change an intent's status."""
        ...

    def intents(
        self, *, rule_id: str | None = None, status: str | None = None
    ) -> list[PayoutIntent]:
        """Intents (optionally of one rule / status), by bill number."""
        ...


# --------------------------------------------------------------------------- coupons


@runtime_checkable
class CouponGateway(Protocol):
    """A coupon system that can put a coupon into a member's wallet (WeChat Pay's favor API
    in :mod:`membermkt.payouts.wechatpay.coupons`, or your own).

    Implementations de-duplicate by :attr:`CouponGrant.request_no`: granting the same request
    number twice gives one coupon and answers with it both times. They never raise for what
    the coupon system answered or for a lost answer: they classify it in a
    :class:`~membermkt.core.membership.coupons.CouponResult` (``UNKNOWN`` when unsure; the
    caller then grants again with the **same** request number).
    """

    name: str

    def grant(self, grant: CouponGrant) -> CouponResult:
        """Give one coupon of ``grant.stock_id`` to ``grant.openid`` (idempotent)."""
        ...

    def query(self, openid: str, coupon_id: str) -> CouponResult:
        """Where the coupon ``coupon_id`` of ``openid`` stands (granted, used, expired)."""
        ...


# --------------------------------------------------------------------------- stores


@runtime_checkable
class Store(MemberStore, EventLog, SegmentQueries, Ledger, BudgetStore, PayoutLedger, Protocol):
    """Everything the engine needs from storage (``InMemoryStore`` and ``SqlStore``)."""


# --------------------------------------------------------------------------- tokens


@attrs.frozen(slots=True)
class TokenEntry:
    """A cached access token and when it stops being usable (UTC). The repr hides the
    token."""

    token: str = attrs.field(repr=False)
    expires_at: dt.datetime


@runtime_checkable
class TokenCache(Protocol):
    """Shared access-token storage with a cross-process lock for single-flight refresh."""

    def get(self, key: str) -> TokenEntry | None:
        """The cached entry, or ``None``."""
        ...

    def set(self, key: str, entry: TokenEntry) -> None:
        """Store an entry."""
        ...

    def expire_if(self, key: str, token: str) -> bool:
        """Delete the entry only if it still holds ``token`` (compare-then-expire)."""
        ...

    def lock(self, key: str, *, timeout: float) -> AbstractContextManager[None]:
        """A lock held while one caller refreshes ``key``; others wait, then re-read."""
        ...


@runtime_checkable
class AsyncTokenCache(Protocol):
    """The async twin of :class:`TokenCache`."""

    async def get(self, key: str) -> TokenEntry | None: ...

    async def set(self, key: str, entry: TokenEntry) -> None: ...

    async def expire_if(self, key: str, token: str) -> bool: ...

    def lock(self, key: str, *, timeout: float) -> AbstractAsyncContextManager[None]: ...


# --------------------------------------------------------------------------- channels


@runtime_checkable
class Channel(Protocol):
    """A way to reach members (contract). Register third-party ones under the entry-point
    group ``membermkt.channels``; prove conformance with :mod:`membermkt.testing.contract`.

    ``send`` returns exactly one :class:`SendResult` per delivery, in order. It must not
    raise for per-delivery failures; it may raise ``TransportError`` when the whole batch
    got no answer (the runner then treats the batch as uncertain).
    """

    name: str
    capabilities: ChannelCapabilities

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]: ...


@runtime_checkable
class AsyncChannel(Protocol):
    """The async twin of :class:`Channel` (same contract, ``send`` is awaited)."""

    name: str
    capabilities: ChannelCapabilities

    async def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]: ...

"""Red-packet rules and the pure decision "may this claim be paid, and how much?".

Money demands more care than messages, so everything that *decides* lives here, pure and
property-tested; the engine (:mod:`membermkt.engine.redpackets`) only executes decisions:

* :class:`RedPacketRule` — who may claim (a segment), when (a time window), how much money
  (total and daily budgets in fen, a packet cap), how often (per member, per phone, per
  order), whether a verified purchase is required, and the platform bounds of the payout
  product (:class:`PayoutProduct`).
* Amount strategies — :class:`FixedAmount`, :class:`UniformAmount` (whole fen in
  ``[min, max]``) and :class:`LuckySplit` (a total cut into ``N`` parts, each at least the
  minimum; see :func:`lucky_split`).
* :func:`decide` — ``(rule, member, claim, state, as_of, rng) -> Grant | Deny``. A
  :class:`Grant` carries the amount, the **bill number** (derived from the business key, so
  a retry never mints a new one) and the budget rows to reserve atomically.
* :func:`bill_no` — deterministic merchant bill numbers in the platform formats
  (v2 ``mch_billno``: ``mch_id + yyyymmdd + 10 digits``, ≤ 28 chars; v3 ``out_bill_no``:
  ≤ 32 chars of ``[0-9a-zA-Z]``).
* :func:`claim_event` / :func:`paid_event` / :func:`claim_report` — claims and payouts as
  events, and the "who claimed when, from where, and did they buy again" report.

Nothing here reads the clock or global randomness: ``as_of`` and ``rng`` are arguments.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import random
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import attrs

from membermkt.core._frozen import FrozenMap
from membermkt.core.events import Event
from membermkt.core.identity import phone_digest
from membermkt.core.members import Member
from membermkt.errors import UsageError

if TYPE_CHECKING:
    from membermkt.core.segments import Segment

__all__ = [
    "BEIJING",
    "WECHATPAY_V2_REDPACK",
    "WECHATPAY_V3_TRANSFER",
    "AmountStrategy",
    "Claim",
    "ClaimReport",
    "ClaimRow",
    "ClaimState",
    "Deny",
    "DenyReason",
    "FixedAmount",
    "Grant",
    "LuckySplit",
    "PayoutProduct",
    "RedPacketRule",
    "Reservation",
    "UniformAmount",
    "bill_no",
    "budget_keys",
    "claim_event",
    "claim_report",
    "decide",
    "is_valid_bill_no",
    "lucky_split",
    "paid_event",
]

BEIJING: Final = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time (no daylight saving): the day boundary of WeChat Pay limits and of
the date inside bill numbers."""

_ID_RE = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")
_ALNUM_RE = re.compile(r"^[0-9A-Za-z]+$")


# --------------------------------------------------------------------------- platform products


@attrs.frozen(slots=True, kw_only=True)
class PayoutProduct:
    """A way to move money to a member, with the platform's bounds.

    Attributes:
        name: ``"wechatpay.v2.redpack"`` or ``"wechatpay.v3.transfer"`` (also the
            ``PayoutGateway.product`` of the adapter that pays it).
        bill_format: ``"v2"`` (``mch_billno``) or ``"v3"`` (``out_bill_no``).
        min_fen / max_fen: the amount bounds of one payout, in fen.
        per_user_daily_count / per_user_daily_fen: how many payouts / how much money one
            receiver may get per (Beijing) day from this merchant; ``None`` when the
            platform states no such limit.
    """

    name: str
    bill_format: str = attrs.field(validator=attrs.validators.in_(("v2", "v3")))
    min_fen: int
    max_fen: int
    per_user_daily_count: int | None = None
    per_user_daily_fen: int | None = None

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.min_fen <= self.max_fen:
            raise UsageError(
                f"PayoutProduct {self.name!r}: need 1 <= min_fen <= max_fen, "
                f"got {self.min_fen}..{self.max_fen}"
            )


WECHATPAY_V2_REDPACK: Final = PayoutProduct(
    name="wechatpay.v2.redpack",
    bill_format="v2",
    # Reference §4.2 (current doc): default 1–200 CNY per packet (adjustable in the merchant
    # console; below 1 or above 200 CNY needs a scene_id), ≤ 10 packets and ≤ 1000 CNY per
    # user per day. Use attrs.evolve() for a merchant with other limits.
    min_fen=100,
    max_fen=20_000,
    per_user_daily_count=10,
    per_user_daily_fen=100_000,
)
"""v2 cash red packet (``sendredpack``) with the platform's default limits."""

WECHATPAY_V3_TRANSFER: Final = PayoutProduct(
    name="wechatpay.v3.transfer",
    bill_format="v3",
    # Reference §4.6: user_name (encrypted real name) is required from 2,000 CNY; this
    # product stays below that. The minimum transfer amount is not in our reference
    # (unconfirmed), so 1 fen is the floor here; set your console's value with evolve().
    min_fen=1,
    max_fen=199_999,
)
"""v3 merchant transfer (``/v3/fund-app/mch-transfer/transfer-bills``)."""


# --------------------------------------------------------------------------- amounts


@runtime_checkable
class AmountStrategy(Protocol):
    """How much one granted claim receives."""

    @property
    def bounds(self) -> tuple[int, int]:
        """The smallest and largest amount this strategy can grant, in fen."""
        ...

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        """The amount of the next packet given what the rule has granted so far, or ``None``
        when the strategy has nothing left to give."""
        ...


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{attribute.name} must be a positive int (fen), got {value!r}")


def _optional_positive(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{attribute.name} must be None or a positive int, got {value!r}")


@attrs.frozen(slots=True)
class FixedAmount:
    """Every packet is ``fen``."""

    fen: int = attrs.field(validator=_positive)

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.fen, self.fen)

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        return self.fen


@attrs.frozen(slots=True)
class UniformAmount:
    """A whole number of fen drawn uniformly in ``[min_fen, max_fen]`` (both inclusive).

    Raises:
        UsageError: unless ``1 <= min_fen <= max_fen``.
    """

    min_fen: int = attrs.field(validator=_positive)
    max_fen: int = attrs.field(validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.min_fen > self.max_fen:
            raise UsageError(f"UniformAmount: min_fen {self.min_fen} > max_fen {self.max_fen}")

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.min_fen, self.max_fen)

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        return rng.randint(self.min_fen, self.max_fen)


def _split_step(rng: random.Random, rest: int, parts: int, cap: int) -> int:
    """One step of the double-mean split of ``rest`` (above the minimum) over ``parts``.

    Returns ``x`` with ``0 <= x <= min(cap, rest)`` and ``rest - x <= (parts - 1) * cap``, so
    the remaining parts can always still be filled within their caps.
    """
    lo = max(0, rest - (parts - 1) * cap)
    hi = max(lo, min(cap, (2 * rest) // parts))
    return rng.randint(lo, hi)


def lucky_split(
    total_fen: int, parts: int, min_fen: int, rng: random.Random, *, max_fen: int | None = None
) -> tuple[int, ...]:
    """Cut ``total_fen`` into ``parts`` random whole-fen amounts ("lucky" / fission packets).

    The parts sum exactly to ``total_fen`` and each lies in ``[min_fen, max_fen]``
    (``max_fen`` defaults to no upper bound beyond the total). Each part is drawn with the
    "double mean" rule (uniform up to twice the mean of what is left), then the parts are
    shuffled so position carries no advantage.

    Raises:
        UsageError: when the bounds make the split impossible
            (``parts * min_fen > total_fen`` or ``parts * max_fen < total_fen``).
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise UsageError(f"lucky_split: parts must be a positive int, got {parts!r}")
    if isinstance(min_fen, bool) or not isinstance(min_fen, int) or min_fen < 1:
        raise UsageError(f"lucky_split: min_fen must be a positive int, got {min_fen!r}")
    cap_total = max_fen if max_fen is not None else total_fen
    if cap_total < min_fen:
        raise UsageError(f"lucky_split: max_fen {cap_total} < min_fen {min_fen}")
    if parts * min_fen > total_fen:
        raise UsageError(
            f"lucky_split: {parts} parts of at least {min_fen} fen need {parts * min_fen} fen, "
            f"more than the total {total_fen}"
        )
    if parts * cap_total < total_fen:
        raise UsageError(
            f"lucky_split: {parts} parts of at most {cap_total} fen cannot reach {total_fen}"
        )
    cap = cap_total - min_fen
    rest = total_fen - parts * min_fen
    out: list[int] = []
    for i in range(parts - 1):
        x = _split_step(rng, rest, parts - i, cap)
        out.append(min_fen + x)
        rest -= x
    out.append(min_fen + rest)
    rng.shuffle(out)
    return tuple(out)


@attrs.frozen(slots=True, kw_only=True)
class LuckySplit:
    """A total cut into ``parts`` packets of random size, each in ``[min_fen, max_fen]``.

    Claims draw one step of :func:`lucky_split` at a time from what the rule has not yet
    granted, so the first ``parts`` grants sum to ``total_fen`` exactly when claims arrive
    one after another. Concurrent claims can see the same "granted so far"; the rule's total
    budget (set it to ``total_fen``) still caps the money, and the cap on packets (set
    ``max_packets`` to ``parts``) caps the count.

    Raises:
        UsageError: when the bounds make the split impossible.
    """

    total_fen: int = attrs.field(validator=_positive)
    parts: int = attrs.field(validator=_positive)
    min_fen: int = attrs.field(validator=_positive)
    max_fen: int | None = attrs.field(default=None, validator=_optional_positive)

    def __attrs_post_init__(self) -> None:
        hi = self.bounds[1]
        if self.parts * self.min_fen > self.total_fen or self.parts * hi < self.total_fen:
            raise UsageError(
                f"LuckySplit: {self.parts} parts in [{self.min_fen}, {hi}] fen cannot sum to "
                f"{self.total_fen}"
            )

    @property
    def bounds(self) -> tuple[int, int]:
        hi = self.total_fen - (self.parts - 1) * self.min_fen
        if self.max_fen is not None:
            hi = min(hi, self.max_fen)
        return (self.min_fen, hi)

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        left_parts = self.parts - granted_count
        left_fen = self.total_fen - granted_fen
        if left_parts < 1 or left_fen < self.min_fen * left_parts:
            return None
        hi = self.bounds[1]
        if left_parts == 1:
            return left_fen if left_fen <= hi else hi
        cap = hi - self.min_fen
        rest = left_fen - left_parts * self.min_fen
        if rest > left_parts * cap:
            rest = left_parts * cap  # money left over by concurrent draws: stay within bounds
        return self.min_fen + _split_step(rng, rest, left_parts, cap)


# --------------------------------------------------------------------------- the rule


def _check_rule_id(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise UsageError(f"RedPacketRule.id must be 1-40 chars of [0-9A-Za-z_.-], got {value!r}")


def _check_mch_id(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _ALNUM_RE.match(value) or len(value) > 10:
        raise UsageError(
            "RedPacketRule.mch_id must be the merchant id, 1-10 chars of [0-9a-zA-Z] "
            f"(a v2 mch_billno is mch_id + yyyymmdd + 10 digits, at most 28 chars), got {value!r}"
        )


def _check_aware(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, dt.datetime) or value.utcoffset() is None):
        raise UsageError(
            f"RedPacketRule.{attribute.name} must be a timezone-aware datetime, got {value!r}"
        )


def _optional_limit(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(
            f"RedPacketRule.{attribute.name} must be None or a positive int, got {value!r}"
        )


@attrs.frozen(slots=True, kw_only=True)
class RedPacketRule:
    """Who may claim how much, when, how often, paid through which product.

    Args:
        id: the rule id, 1–40 chars of ``[0-9A-Za-z_.-]`` (used in budget keys and bill
            numbers: never reuse an id for a different campaign).
        mch_id: the WeChat Pay merchant id (the prefix of v2 bill numbers).
        amount: an :class:`AmountStrategy`.
        total_budget_fen: the most money this rule may ever pay out.
        daily_budget_fen: the most per (Beijing) day, or ``None``.
        max_packets: the most packets ever granted, or ``None``.
        eligibility: a :class:`~membermkt.core.segments.Segment` the member must be in at
            claim time, or ``None`` for everyone.
        starts_at / ends_at: the claim window ``[starts_at, ends_at)``; ``None`` = open.
        per_member_limit: packets per member (default 1).
        per_phone_limit: packets per phone number (digest), or ``None`` for no limit.
        per_order_limit: packets per order id, or ``None`` for no limit.
        require_purchase: the claim's phone and/or order id must match a ``purchase`` event.
        purchase_within: how recent that purchase must be, or ``None`` for any time.
        product: the :class:`PayoutProduct` (its bounds and per-user daily limits apply).

    Raises:
        UsageError: on any invalid field, or when the amount strategy can leave the product's
            bounds or exceed the budget.
    """

    id: str = attrs.field(validator=_check_rule_id)
    mch_id: str = attrs.field(validator=_check_mch_id)
    amount: AmountStrategy
    total_budget_fen: int = attrs.field(validator=_positive)
    daily_budget_fen: int | None = attrs.field(default=None, validator=_optional_limit)
    max_packets: int | None = attrs.field(default=None, validator=_optional_limit)
    eligibility: Segment | None = None
    starts_at: dt.datetime | None = attrs.field(default=None, validator=_check_aware)
    ends_at: dt.datetime | None = attrs.field(default=None, validator=_check_aware)
    per_member_limit: int = attrs.field(default=1, validator=_positive)
    per_phone_limit: int | None = attrs.field(default=1, validator=_optional_limit)
    per_order_limit: int | None = attrs.field(default=1, validator=_optional_limit)
    require_purchase: bool = False
    purchase_within: dt.timedelta | None = None
    product: PayoutProduct = WECHATPAY_V2_REDPACK

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.amount, AmountStrategy):
            raise UsageError(f"RedPacketRule.amount must be an AmountStrategy, got {self.amount!r}")
        lo, hi = self.amount.bounds
        if lo < self.product.min_fen or hi > self.product.max_fen:
            raise UsageError(
                f"rule {self.id!r}: amounts {lo}..{hi} fen leave the bounds of "
                f"{self.product.name} ({self.product.min_fen}..{self.product.max_fen} fen)"
            )
        if lo > self.total_budget_fen:
            raise UsageError(
                f"rule {self.id!r}: the smallest packet ({lo} fen) exceeds the total budget "
                f"({self.total_budget_fen} fen)"
            )
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.starts_at >= self.ends_at
        ):
            raise UsageError(f"rule {self.id!r}: starts_at must be before ends_at")
        if self.purchase_within is not None and self.purchase_within <= dt.timedelta(0):
            raise UsageError(f"rule {self.id!r}: purchase_within must be positive")


# --------------------------------------------------------------------------- claims and state


def _opt_nonempty(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value or len(value) > 128):
        raise UsageError(f"Claim.{attribute.name} must be None or a str of 1-128 chars: {value!r}")


def _nonempty(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise UsageError(f"Claim.{attribute.name} must be a str of 1-128 chars, got {value!r}")


def _check_digest(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (
        not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value)
    ):
        raise UsageError(
            "Claim.phone_digest must be a phone digest (use Claim.with_phone(number)), "
            "never a raw number"
        )


@attrs.frozen(slots=True, kw_only=True)
class Claim:
    """A member asking for a red packet.

    Attributes:
        member_id: the claiming member.
        address: where the money goes (the openid under the paying appid).
        phone_digest: digest of the phone number the member typed (never the raw number).
        order_id: the order id the member typed, if any.
        source: where the claim came from (QR scene, menu key, campaign...), for analysis.

    Raises:
        UsageError: on an invalid field.
    """

    member_id: str = attrs.field(validator=_nonempty)
    address: str = attrs.field(validator=_nonempty)
    phone_digest: str | None = attrs.field(default=None, validator=_check_digest)
    order_id: str | None = attrs.field(default=None, validator=_opt_nonempty)
    source: str | None = attrs.field(default=None, validator=_opt_nonempty)

    @classmethod
    def with_phone(
        cls,
        *,
        member_id: str,
        address: str,
        phone: str | None,
        phone_key: str = "",
        order_id: str | None = None,
        source: str | None = None,
    ) -> Claim:
        """A claim from a typed phone number: the number is digested at once (with the same
        ``phone_key`` used for ``Identity.phone``) and never kept.

        Raises:
            UsageError: when the phone number is not a phone number.
        """
        digest = phone_digest(phone, key=phone_key) if phone else None
        return cls(
            member_id=member_id,
            address=address,
            phone_digest=digest,
            order_id=order_id,
            source=source,
        )


def _to_events(value: Iterable[Event]) -> tuple[Event, ...]:
    return tuple(value)


def _to_ids(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _nonneg(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"ClaimState.{attribute.name} must be a non-negative int, got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class ClaimState:
    """What the engine knows when a claim arrives (a snapshot; budgets are then re-checked
    atomically by the store when the grant's reservations are made).

    Attributes:
        events: the member's events (for the eligibility segment).
        purchases: candidate ``purchase`` events: the member's own and those of the members
            holding the claim's phone identity.
        phone_owner_ids: members holding the claim's phone identity.
        member_claims: this rule's live (not failed) packets to this member.
        member_attempts: every payout intent of this rule to this member, failed ones
            included (the claim sequence of the bill number is ``member_attempts + 1``).
        phone_claims / order_claims: live packets for the claim's phone / order.
        granted_count / granted_fen: the rule's live packets and money (reserved + spent).
        day_granted_fen: the rule's money today (Beijing day of ``as_of``).
        user_day_count / user_day_fen: payouts of this product to this address today, across
            rules (the platform's per-user daily limits).
        bill_salt: bumped by the engine when a bill number is already taken by another
            business key (a hash collision), so the next derivation differs.
    """

    events: tuple[Event, ...] = attrs.field(default=(), converter=_to_events)
    purchases: tuple[Event, ...] = attrs.field(default=(), converter=_to_events)
    phone_owner_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_to_ids)
    member_claims: int = attrs.field(default=0, validator=_nonneg)
    member_attempts: int = attrs.field(default=0, validator=_nonneg)
    phone_claims: int = attrs.field(default=0, validator=_nonneg)
    order_claims: int = attrs.field(default=0, validator=_nonneg)
    granted_count: int = attrs.field(default=0, validator=_nonneg)
    granted_fen: int = attrs.field(default=0, validator=_nonneg)
    day_granted_fen: int = attrs.field(default=0, validator=_nonneg)
    user_day_count: int = attrs.field(default=0, validator=_nonneg)
    user_day_fen: int = attrs.field(default=0, validator=_nonneg)
    bill_salt: int = attrs.field(default=0, validator=_nonneg)


# --------------------------------------------------------------------------- decisions


class DenyReason(enum.StrEnum):
    """Why a claim is not paid."""

    NOT_STARTED = "not_started"
    ENDED = "ended"
    NOT_ELIGIBLE = "not_eligible"
    NO_PROOF = "no_proof"
    """A purchase is required but the claim carries neither phone nor order id."""
    NO_PURCHASE = "no_purchase"
    """No purchase event matches the claim's phone / order id."""
    MEMBER_LIMIT = "member_limit"
    PHONE_LIMIT = "phone_limit"
    ORDER_LIMIT = "order_limit"
    PACKETS_EXHAUSTED = "packets_exhausted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    DAILY_BUDGET_EXHAUSTED = "daily_budget_exhausted"
    PLATFORM_USER_LIMIT = "platform_user_limit"
    """The receiver reached the product's per-user daily count or money limit."""


@attrs.frozen(slots=True)
class Reservation:
    """One budget row to reserve: ``amount`` out of a row whose limit is ``limit``.

    Money rows count fen; limit rows (per member, phone, order, packets, platform per-user
    counts) count packets. The engine creates missing rows with ``limit`` and reserves all of
    a grant's rows in one all-or-nothing transaction.
    """

    key: str
    amount: int
    limit: int


@attrs.frozen(slots=True, kw_only=True)
class Grant:
    """Pay ``amount_fen`` under ``bill_no`` after reserving ``reservations``.

    Attributes:
        amount_fen: the packet, in fen.
        bill_no: the merchant bill number (idempotency key at the platform).
        sequence: the member's claim sequence on this rule (part of the business key).
        order_id: the verified order, if the rule required one.
        reservations: budget rows to reserve atomically (see :class:`Reservation`).
    """

    amount_fen: int
    bill_no: str
    sequence: int
    order_id: str | None = None
    reservations: tuple[Reservation, ...] = ()

    @property
    def items(self) -> tuple[tuple[str, int], ...]:
        """The reservations as ``(key, amount)`` pairs for ``BudgetStore.reserve``."""
        return tuple((r.key, r.amount) for r in self.reservations)


@attrs.frozen(slots=True, kw_only=True)
class Deny:
    """The claim is refused; ``reason`` says why (a :class:`DenyReason`)."""

    reason: DenyReason
    detail: str = ""


def _day(as_of: dt.datetime) -> str:
    return as_of.astimezone(BEIJING).strftime("%Y%m%d")


def budget_keys(
    rule: RedPacketRule,
    *,
    as_of: dt.datetime,
    member_id: str | None = None,
    phone_digest: str | None = None,
    order_id: str | None = None,
    address: str | None = None,
) -> dict[str, str]:
    """The budget row keys a claim touches, by role (``total``, ``day``, ``packets``,
    ``member``, ``phone``, ``order``, ``user_day_count``, ``user_day_fen``).

    Rule rows start with ``rp:<rule>:``; the platform per-user rows start with
    ``pay:<product>:`` because they are shared by every rule paying through that product.
    """
    base = f"rp:{rule.id}"
    day = _day(as_of)
    keys = {"total": f"{base}:total", "day": f"{base}:day:{day}", "packets": f"{base}:packets"}
    if member_id is not None:
        keys["member"] = f"{base}:member:{member_id}"
    if phone_digest is not None:
        keys["phone"] = f"{base}:phone:{phone_digest}"
    if order_id is not None:
        keys["order"] = f"{base}:order:{order_id}"
    if address is not None:
        user = f"pay:{rule.product.name}:{address}:{day}"
        keys["user_day_count"] = f"{user}:n"
        keys["user_day_fen"] = f"{user}:fen"
    return keys


def bill_no(
    rule: RedPacketRule,
    member_id: str,
    sequence: int,
    as_of: dt.datetime,
    *,
    salt: int = 0,
) -> str:
    """The merchant bill number of the business key ``(rule, member, sequence)``.

    Deterministic: the same key (and ``as_of`` day, ``salt``) always gives the same number, so
    a retry re-uses it and the platform pays at most once.

    * v2 (``mch_billno``): ``mch_id + yyyymmdd + 10 digits`` (≤ 28 chars, digits/letters),
      the layout the platform suggests; the 10 digits come from SHA-256 of the key. Ten
      digits can collide between keys of one day: the engine detects a bill number already
      owned by another key in its ledger and derives again with ``salt + 1``.
    * v3 (``out_bill_no``): ``yyyymmdd + 24 hex digits`` of SHA-256 of the key (32 chars of
      ``[0-9a-f]``).

    Raises:
        UsageError: on a sequence below 1.
    """
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise UsageError(f"bill_no: sequence must be a positive int, got {sequence!r}")
    key = f"{rule.mch_id}|{rule.id}|{member_id}|{sequence}|{salt}".encode()
    digest = hashlib.sha256(key).hexdigest()
    day = _day(as_of)
    if rule.product.bill_format == "v2":
        return f"{rule.mch_id}{day}{int(digest, 16) % 10**10:010d}"
    return f"{day}{digest[:24]}"


def is_valid_bill_no(value: str, bill_format: str) -> bool:
    """Whether ``value`` is a well-formed ``mch_billno`` (``"v2"``: ≤ 28 chars) or
    ``out_bill_no`` (``"v3"``: ≤ 32 chars), both ``[0-9a-zA-Z]`` only."""
    limit = 28 if bill_format == "v2" else 32
    return isinstance(value, str) and 0 < len(value) <= limit and bool(_ALNUM_RE.match(value))


def _verified_purchase(
    rule: RedPacketRule, claim: Claim, state: ClaimState, as_of: dt.datetime
) -> Event | None:
    since = as_of - rule.purchase_within if rule.purchase_within is not None else None
    for event in sorted(state.purchases, key=lambda e: (e.at_utc, e.key or "")):
        if event.type != "purchase" or event.at_utc > as_of:
            continue
        if since is not None and event.at_utc <= since:
            continue
        props = event.properties
        if claim.order_id is not None and props.get("order_id") != claim.order_id:
            continue
        if claim.phone_digest is not None and not (
            event.member_id in state.phone_owner_ids
            or props.get("phone_digest") == claim.phone_digest
        ):
            continue
        return event
    return None


def _eligible(rule: RedPacketRule, member: Member, state: ClaimState, as_of: dt.datetime) -> bool:
    if rule.eligibility is None:
        return True
    from membermkt.core.evaluate import compile_predicate

    return bool(compile_predicate(rule.eligibility, as_of)(member, state.events))


def decide(
    rule: RedPacketRule,
    member: Member,
    claim: Claim,
    state: ClaimState,
    as_of: dt.datetime,
    rng: random.Random,
) -> Grant | Deny:
    """Decide one claim. Pure: the same inputs (and ``rng`` state) give the same answer.

    Checks, in order: time window, eligibility segment, purchase proof, per-member / phone /
    order limits, packet cap, amount (strategy), total and daily budgets, platform per-user
    daily limits. A :class:`Grant` never exceeds any limit *as seen in* ``state``; the
    engine's atomic reservation of :attr:`Grant.reservations` makes that hold under
    concurrent claims too.

    Raises:
        UsageError: when ``as_of`` is naive or the claim is for another member.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"decide: as_of must be a timezone-aware datetime, got {as_of!r}")
    if claim.member_id != member.id:
        raise UsageError(f"decide: claim of member {claim.member_id!r} for member {member.id!r}")
    if rule.starts_at is not None and as_of < rule.starts_at:
        return Deny(reason=DenyReason.NOT_STARTED)
    if rule.ends_at is not None and as_of >= rule.ends_at:
        return Deny(reason=DenyReason.ENDED)
    if not _eligible(rule, member, state, as_of):
        return Deny(reason=DenyReason.NOT_ELIGIBLE)

    order_id = claim.order_id
    if rule.require_purchase:
        if claim.phone_digest is None and claim.order_id is None:
            return Deny(reason=DenyReason.NO_PROOF)
        purchase = _verified_purchase(rule, claim, state, as_of)
        if purchase is None:
            return Deny(reason=DenyReason.NO_PURCHASE)
        found = purchase.properties.get("order_id")
        if order_id is None and isinstance(found, str) and found:
            order_id = found

    if state.member_claims >= rule.per_member_limit:
        return Deny(reason=DenyReason.MEMBER_LIMIT)
    if (
        rule.per_phone_limit is not None
        and claim.phone_digest is not None
        and state.phone_claims >= rule.per_phone_limit
    ):
        return Deny(reason=DenyReason.PHONE_LIMIT)
    if (
        rule.per_order_limit is not None
        and order_id is not None
        and state.order_claims >= rule.per_order_limit
    ):
        return Deny(reason=DenyReason.ORDER_LIMIT)
    if rule.max_packets is not None and state.granted_count >= rule.max_packets:
        return Deny(reason=DenyReason.PACKETS_EXHAUSTED)

    amount = rule.amount.draw(rng, granted_count=state.granted_count, granted_fen=state.granted_fen)
    if amount is None:
        return Deny(reason=DenyReason.PACKETS_EXHAUSTED, detail="the split is fully granted")
    if state.granted_fen + amount > rule.total_budget_fen:
        return Deny(reason=DenyReason.BUDGET_EXHAUSTED)
    if rule.daily_budget_fen is not None and state.day_granted_fen + amount > rule.daily_budget_fen:
        return Deny(reason=DenyReason.DAILY_BUDGET_EXHAUSTED)
    product = rule.product
    if product.per_user_daily_count is not None and (
        state.user_day_count + 1 > product.per_user_daily_count
    ):
        return Deny(reason=DenyReason.PLATFORM_USER_LIMIT, detail="daily packet count")
    if product.per_user_daily_fen is not None and (
        state.user_day_fen + amount > product.per_user_daily_fen
    ):
        return Deny(reason=DenyReason.PLATFORM_USER_LIMIT, detail="daily amount")

    keys = budget_keys(
        rule,
        as_of=as_of,
        member_id=member.id,
        phone_digest=claim.phone_digest,
        order_id=order_id,
        address=claim.address,
    )
    reservations = [
        Reservation(keys["total"], amount, rule.total_budget_fen),
        Reservation(keys["member"], 1, rule.per_member_limit),
    ]
    if rule.daily_budget_fen is not None:
        reservations.append(Reservation(keys["day"], amount, rule.daily_budget_fen))
    if rule.max_packets is not None:
        reservations.append(Reservation(keys["packets"], 1, rule.max_packets))
    if rule.per_phone_limit is not None and "phone" in keys:
        reservations.append(Reservation(keys["phone"], 1, rule.per_phone_limit))
    if rule.per_order_limit is not None and "order" in keys:
        reservations.append(Reservation(keys["order"], 1, rule.per_order_limit))
    if product.per_user_daily_count is not None:
        reservations.append(Reservation(keys["user_day_count"], 1, product.per_user_daily_count))
    if product.per_user_daily_fen is not None:
        reservations.append(Reservation(keys["user_day_fen"], amount, product.per_user_daily_fen))

    sequence = state.member_attempts + 1
    return Grant(
        amount_fen=amount,
        bill_no=bill_no(rule, member.id, sequence, as_of, salt=state.bill_salt),
        sequence=sequence,
        order_id=order_id,
        reservations=tuple(reservations),
    )


# --------------------------------------------------------------------------- events & analysis


def claim_event(rule: RedPacketRule, claim: Claim, grant: Grant, at: dt.datetime) -> Event:
    """The ``redpacket_claim`` event of a granted claim (keyed by bill number)."""
    props: dict[str, str | int | float | bool] = {
        "rule": rule.id,
        "amount_fen": grant.amount_fen,
        "bill_no": grant.bill_no,
    }
    if claim.source is not None:
        props["source"] = claim.source
    if grant.order_id is not None:
        props["order_id"] = grant.order_id
    return Event(claim.member_id, "redpacket_claim", at, props, key=f"rpclaim:{grant.bill_no}")


def paid_event(
    *,
    rule_id: str,
    member_id: str,
    bill_no: str,
    amount_fen: int,
    at: dt.datetime,
    platform_id: str | None = None,
) -> Event:
    """The ``redpacket_paid`` event of a confirmed payout (keyed by bill number)."""
    props: dict[str, str | int | float | bool] = {
        "rule": rule_id,
        "amount_fen": amount_fen,
        "bill_no": bill_no,
    }
    if platform_id:
        props["platform_id"] = platform_id
    return Event(member_id, "redpacket_paid", at, props, key=f"rppaid:{bill_no}")


@attrs.frozen(slots=True, kw_only=True)
class ClaimRow:
    """One granted claim in a :class:`ClaimReport`.

    Attributes:
        member_id / bill_no / amount_fen / source: from the claim event.
        claimed_at: when (UTC); ``hour`` is the Beijing hour of day (0–23).
        paid_at: when the payout was confirmed, or ``None``.
        repurchased: a purchase by the member after the claim, within the report window.
        repurchase_fen: money of those purchases.
    """

    member_id: str
    bill_no: str
    amount_fen: int
    source: str | None
    claimed_at: dt.datetime
    hour: int
    paid_at: dt.datetime | None
    repurchased: bool
    repurchase_fen: int


@attrs.frozen(slots=True, kw_only=True)
class ClaimReport:
    """Who claimed at what time, from which channel, and did they buy again.

    Attributes:
        rule_id: the rule.
        rows: one :class:`ClaimRow` per claim, by time.
        by_hour: Beijing hour → number of claims.
        by_source: source → (claims, paid, repurchased).
    """

    rule_id: str
    rows: tuple[ClaimRow, ...]
    by_hour: Mapping[int, int]
    by_source: Mapping[str, tuple[int, int, int]]

    @property
    def claims(self) -> int:
        return len(self.rows)

    @property
    def paid(self) -> int:
        return sum(1 for r in self.rows if r.paid_at is not None)

    @property
    def paid_fen(self) -> int:
        return sum(r.amount_fen for r in self.rows if r.paid_at is not None)

    @property
    def repurchase_rate(self) -> float:
        return sum(r.repurchased for r in self.rows) / len(self.rows) if self.rows else 0.0


def claim_report(
    events: Iterable[Event],
    rule_id: str,
    as_of: dt.datetime,
    *,
    repurchase_within: dt.timedelta | None = None,
) -> ClaimReport:
    """Build the claim report of ``rule_id`` from events (claims, payouts, purchases).

    Only events at or before ``as_of`` count. A claim counts as "bought again" when the same
    member has a ``purchase`` event after the claim (and within ``repurchase_within`` of it,
    when given).
    """
    claims: list[Event] = []
    paid: dict[str, dt.datetime] = {}
    purchases: dict[str, list[Event]] = {}
    for e in events:
        if e.at_utc > as_of:
            continue
        if e.type == "redpacket_claim" and e.properties.get("rule") == rule_id:
            claims.append(e)
        elif e.type == "redpacket_paid" and e.properties.get("rule") == rule_id:
            b = str(e.properties.get("bill_no", ""))
            if b not in paid or e.at_utc < paid[b]:
                paid[b] = e.at_utc
        elif e.type == "purchase":
            purchases.setdefault(e.member_id, []).append(e)
    rows: list[ClaimRow] = []
    seen: set[str] = set()
    for c in sorted(claims, key=lambda e: (e.at_utc, e.key or "")):
        b = str(c.properties.get("bill_no", ""))
        if b in seen:
            continue
        seen.add(b)
        start = c.at_utc
        end = start + repurchase_within if repurchase_within is not None else None
        later = [
            p
            for p in purchases.get(c.member_id, ())
            if p.at_utc > start and (end is None or p.at_utc <= end)
        ]
        src = c.properties.get("source")
        amount = c.properties.get("amount_fen", 0)
        rows.append(
            ClaimRow(
                member_id=c.member_id,
                bill_no=b,
                amount_fen=int(amount) if isinstance(amount, int) else 0,
                source=src if isinstance(src, str) else None,
                claimed_at=start,
                hour=start.astimezone(BEIJING).hour,
                paid_at=paid.get(b),
                repurchased=bool(later),
                repurchase_fen=sum(_purchase_fen(p) for p in later),
            )
        )
    by_hour: dict[int, int] = {}
    by_source: dict[str, tuple[int, int, int]] = {}
    for r in rows:
        by_hour[r.hour] = by_hour.get(r.hour, 0) + 1
        key = r.source or "(none)"
        n, p, rb = by_source.get(key, (0, 0, 0))
        by_source[key] = (n + 1, p + (r.paid_at is not None), rb + r.repurchased)
    return ClaimReport(
        rule_id=rule_id,
        rows=tuple(rows),
        by_hour=FrozenMap(dict(sorted(by_hour.items()))),
        by_source=FrozenMap(dict(sorted(by_source.items()))),
    )


def _purchase_fen(event: Event) -> int:
    amount = event.properties.get("amount_fen", 0)
    return amount if isinstance(amount, int) and not isinstance(amount, bool) else 0

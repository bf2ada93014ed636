"""A member's claim and the state snapshot the decision sees."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from membermkt.core.events import Event
from membermkt.core.identity import Identity, IdentityKind, phone_digest
from membermkt.errors import UsageError


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
        phone_key_id: the key id of that digest (the phone identity's namespace; ``""`` for
            an unkeyed or anonymous-key digest) — see :meth:`for_phone`.
        order_id: the order id the member typed, if any.
        source: where the claim came from (QR scene, menu key, campaign...), for analysis.

    Raises:
        UsageError: on an invalid field.
    """

    member_id: str = attrs.field(validator=_nonempty)
    address: str = attrs.field(validator=_nonempty)
    phone_digest: str | None = attrs.field(default=None, validator=_check_digest)
    phone_key_id: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
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

        Stores that keep keyed phone identities (a ``PhoneProtector`` ring, as ``SqlStore``
        requires) need :meth:`for_phone` with ``phones.identity(number)`` instead: a plain
        digest would not find the buyer holding the keyed identity.

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

    @classmethod
    def for_phone(
        cls,
        *,
        member_id: str,
        address: str,
        phone: Identity | None,
        order_id: str | None = None,
        source: str | None = None,
    ) -> Claim:
        """A claim from a phone identity already made for the typed number (a keyed blind
        index, e.g. ``PhoneProtector.identity(number)``): its digest and key id are kept.

        Raises:
            UsageError: when ``phone`` is not a phone identity.
        """
        if phone is not None and (
            not isinstance(phone, Identity) or phone.kind is not IdentityKind.PHONE
        ):
            raise UsageError(f"Claim.for_phone needs a phone Identity, got {phone!r}")
        return cls(
            member_id=member_id,
            address=address,
            phone_digest=None if phone is None else phone.value,
            phone_key_id="" if phone is None else phone.namespace,
            order_id=order_id,
            source=source,
        )

    @property
    def phone_identity(self) -> Identity | None:
        """The phone identity of the typed number (``None`` without a phone)."""
        if self.phone_digest is None:
            return None
        return Identity(IdentityKind.PHONE, self.phone_digest, self.phone_key_id)


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

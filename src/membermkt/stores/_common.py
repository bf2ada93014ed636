"""Helpers shared by the in-memory and SQL stores (validation, schema of custom attributes,
merging, sampling order). Not public API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.delivery import DeliveryStatus
from membermkt.core.members import Consent, Member, MemberState, Profile
from membermkt.core.ports import PayoutIntent
from membermkt.core.segments import (
    HASH_PRIME,
    Cmp,
    Segment,
    _type_class,
    field_type,
    member_hash,
    salt_coefficients,
    walk,
)
from membermkt.errors import SegmentError, UsageError

__all__ = [
    "EMPTY_STATE",
    "PAYOUT_STATUSES",
    "AttributeSchema",
    "check_as_of",
    "check_items",
    "check_payout_status",
    "merge_member_values",
    "sample_rank",
]

EMPTY_STATE = MemberState()

PAYOUT_STATUSES = frozenset({"reserved", "paying", "paid", "failed", "unknown", "waiting_funds"})
"""The statuses a :class:`~membermkt.core.ports.PayoutIntent` may take."""

_ALLOWED_TYPES: dict[type, str] = {str: "str", int: "int", float: "float", bool: "bool"}


def check_as_of(as_of: object) -> dt.datetime:
    """``as_of`` as an aware UTC datetime.

    Raises:
        UsageError: when it is not a timezone-aware datetime.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"as_of must be a timezone-aware datetime, got {as_of!r}")
    return as_of.astimezone(dt.UTC)


def check_now(now: object, name: str = "now") -> dt.datetime:
    """``now`` as an aware UTC datetime.

    Raises:
        UsageError: when it is not a timezone-aware datetime.
    """
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise UsageError(f"{name} must be a timezone-aware datetime, got {now!r}")
    return now.astimezone(dt.UTC)


def check_items(items: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Budget ``(key, amount)`` pairs summed per key (amounts are non-negative ints).

    Raises:
        UsageError: for a malformed pair or a negative / non-int amount.
    """
    out: dict[str, int] = {}
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise UsageError(f"budget items are (key, amount) pairs, got {item!r}")
        key, amount = item
        if not isinstance(key, str) or not key:
            raise UsageError(f"budget key must be a non-empty str, got {key!r}")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise UsageError(f"budget amount must be a non-negative int, got {amount!r}")
        out[key] = out.get(key, 0) + amount
    return out


def check_limit(limit: object) -> int:
    """A budget limit (non-negative int).

    Raises:
        UsageError: otherwise.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise UsageError(f"budget limit must be a non-negative int, got {limit!r}")
    return limit


def check_payout_status(status: object) -> str:
    """A payout status.

    Raises:
        UsageError: for anything but ``reserved paying paid failed unknown waiting_funds``.
    """
    if status not in PAYOUT_STATUSES:
        raise UsageError(f"payout status must be one of {sorted(PAYOUT_STATUSES)}, got {status!r}")
    assert isinstance(status, str)
    return status


def check_intent(intent: object) -> PayoutIntent:
    """Validate a payout intent.

    Raises:
        UsageError: for a non-intent, an empty bill number, a bad status or amount.
    """
    if not isinstance(intent, PayoutIntent):
        raise UsageError(f"expected a PayoutIntent, got {intent!r}")
    if not intent.bill_no:
        raise UsageError("PayoutIntent.bill_no must be non-empty")
    check_payout_status(intent.status)
    if isinstance(intent.amount_fen, bool) or not isinstance(intent.amount_fen, int):
        raise UsageError(f"PayoutIntent.amount_fen must be an int, got {intent.amount_fen!r}")
    check_items(intent.reservations)
    return intent


def check_delivery_status(status: object) -> DeliveryStatus:
    """A :class:`DeliveryStatus` (or its value).

    Raises:
        UsageError: for anything else.
    """
    if isinstance(status, DeliveryStatus):
        return status
    try:
        return DeliveryStatus(str(status))
    except ValueError:
        raise UsageError(f"unknown delivery status {status!r}") from None


def check_sample_args(n: object, seed: object) -> tuple[int, str]:
    """Validate ``sample``'s ``n`` and ``seed``.

    Raises:
        UsageError: for a negative / non-int ``n`` or a seed that is not int or str.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UsageError(f"sample size must be a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise UsageError(f"sample seed must be an int or str, got {seed!r}")
    return n, f"preview:{seed}"


def sample_coefficients(salt: str) -> tuple[int, int]:
    """The (a, b) of the preview-sample order for ``salt``."""
    return salt_coefficients(salt)


def sample_rank(member_id: str, a: int, b: int) -> tuple[int, str]:
    """The order of previews: ``((a*h + b) mod p, id)`` — the same in every store."""
    return ((a * member_hash(member_id) + b) % HASH_PRIME, member_id)


def merge_member_values(keep: Member, drop: Member, state: MemberState) -> Member:
    """The member ``keep`` after absorbing ``drop`` (identities, tags, attributes and
    profile fields ``keep`` lacks, the stricter consent) with ``state``."""
    profile_kwargs: dict[str, Any] = {}
    for f in attrs.fields(Profile):
        mine = getattr(keep.profile, f.name)
        profile_kwargs[f.name] = mine if mine is not None else getattr(drop.profile, f.name)
    attributes = dict(drop.attributes)
    attributes.update(keep.attributes)
    consent = Consent(
        marketing=keep.consent.marketing and drop.consent.marketing,
        opted_out_channels=keep.consent.opted_out_channels | drop.consent.opted_out_channels,
    )
    return Member(
        keep.id,
        Profile(**profile_kwargs),
        keep.tags | drop.tags,
        attributes,
        (*keep.identities, *drop.identities),
        state=state,
        consent=consent,
    )


def check_members(members: Iterable[Member]) -> list[Member]:
    """Members as a list, the last of each id winning.

    Raises:
        UsageError: for a value that is not a Member.
    """
    out: dict[str, Member] = {}
    for m in members:
        if not isinstance(m, Member):
            raise UsageError(f"upsert_members takes Member values, got {m!r}")
        out[m.id] = m
    return list(out.values())


@attrs.frozen(slots=True)
class AttributeSchema:
    """Declared custom attributes of a store (optional).

    Args:
        types: attribute name → ``str``, ``int``, ``float`` or ``bool``. A segment comparing
            a declared attribute with a value of another type, and a member holding one, are
            refused.
        strict: refuse segments and members naming an undeclared custom attribute.
    """

    types: Mapping[str, type] = attrs.field(factory=dict)
    strict: bool = False

    @classmethod
    def build(cls, types: Mapping[str, type] | None, strict: bool) -> AttributeSchema:
        """Validate and build a schema.

        Raises:
            UsageError: for a reserved name or an unsupported type.
        """
        from membermkt.core.members import RESERVED_NAMES

        declared = dict(types or {})
        for name, t in declared.items():
            if not isinstance(name, str) or not name or name in RESERVED_NAMES:
                raise UsageError(f"cannot declare custom attribute {name!r} (reserved or empty)")
            if t not in _ALLOWED_TYPES:
                raise UsageError(
                    f"custom attribute {name!r} must be declared as str, int, float or bool, "
                    f"got {t!r}"
                )
        if strict and not declared:
            raise UsageError("strict=True needs declared attributes=")
        return cls(declared, bool(strict))

    def check_segment(self, segment: Segment) -> None:
        """Refuse comparisons on undeclared (strict) or wrongly typed attributes.

        Raises:
            SegmentError: naming the attribute and what was expected.
        """
        if not isinstance(segment, Segment):
            raise SegmentError(f"expected a segment, got {type(segment).__name__}")
        if not self.types and not self.strict:
            return
        for node in walk(segment):
            if not isinstance(node, Cmp) or field_type(node.field).value != "custom":
                continue
            declared = self.types.get(node.field)
            if declared is None:
                if self.strict:
                    raise SegmentError(
                        f"unknown field {node.field!r}: not a built-in field nor a declared "
                        f"custom attribute ({', '.join(sorted(self.types))})"
                    )
                continue
            for v in node.values:
                if not _fits(declared, v, for_segment=True):
                    raise SegmentError(
                        f"custom attribute {node.field!r} holds {_ALLOWED_TYPES[declared]} "
                        f"values, got {v!r}"
                    )
            if node.op in ("contains", "startswith") and declared is not str:
                raise SegmentError(
                    f"{node.op} needs a text attribute; {node.field!r} holds "
                    f"{_ALLOWED_TYPES[declared]}"
                )

    def check_member(self, member: Member) -> None:
        """Refuse a member holding an undeclared (strict) or wrongly typed attribute.

        Raises:
            UsageError: naming the member and the attribute.
        """
        if not self.types and not self.strict:
            return
        for name, v in member.attributes.items():
            declared = self.types.get(name)
            if declared is None:
                if self.strict:
                    raise UsageError(f"member {member.id!r}: undeclared custom attribute {name!r}")
                continue
            if not _fits(declared, v, for_segment=False):
                raise UsageError(
                    f"member {member.id!r}: custom attribute {name!r} holds "
                    f"{_ALLOWED_TYPES[declared]} values, got {v!r}"
                )


def _fits(declared: type, v: object, *, for_segment: bool) -> bool:
    cls = _type_class(v)
    if declared is bool:
        return cls == "bool"
    if declared is str:
        return cls == "str"
    if declared is int:
        # segments may compare an int attribute with any number (age > 2.5 style)
        return cls == "number" and (for_segment or isinstance(v, int))
    return cls == "number"

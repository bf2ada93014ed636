"""A/B variants (content with personalisation) and the deterministic group assignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core.members import Member
from membermkt.core.segments import BUCKETS, sample_bucket
from membermkt.core.templating import compile_payload, render_payload, template_fields
from membermkt.errors import UsageError

HOLDOUT: Final = "holdout"
"""The pseudo-variant name of holdout members (not a valid variant name)."""


def _name(what: str) -> Any:
    def check(instance: object, attribute: object, value: Any) -> None:
        if not isinstance(value, str) or not value or len(value) > 64:
            raise UsageError(f"{what} must be a non-empty str of ≤ 64 chars, got {value!r}")

    return check


def _check_weight(instance: object, attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UsageError(f"Variant.weight must be a positive number, got {value!r}")


def _to_content(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(f"Variant.content must be a mapping, got {type(value).__name__}")
    return value


@attrs.frozen(slots=True, kw_only=True)
class Variant:
    """One version of the message.

    Args:
        name: the variant name (``"A"``, ``"B"``, ...; not ``"holdout"``).
        content: the channel payload, JSON-able; every string is a
            :class:`~membermkt.core.templating.Template` (``{{ field }}`` placeholders).
        weight: relative share of the non-holdout audience.

    Raises:
        UsageError: for a bad name, weight or template.
    """

    name: str = attrs.field(validator=_name("Variant.name"))
    content: Mapping[str, Any] = attrs.field(converter=_to_content, eq=False)
    weight: float = attrs.field(default=1.0, validator=_check_weight)
    _compiled: dict[str, Any] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.name == HOLDOUT:
            raise UsageError(f"variant name {HOLDOUT!r} is reserved for the holdout group")
        object.__setattr__(self, "_compiled", compile_payload(self.content))

    @property
    def fields(self) -> tuple[str, ...]:
        """Member fields used by the content templates."""
        return template_fields(self._compiled)

    def render(self, member: Member) -> dict[str, Any]:
        """The payload for ``member``.

        Raises:
            MissingField: when a required template field is missing.
        """
        rendered: dict[str, Any] = render_payload(self._compiled, member)
        return rendered


def assign(member_id: str, variants: Sequence[Variant], holdout: float, salt: str) -> str:
    """The member's group: ``"holdout"`` or a variant name, by two independent keyed hashes.

    The holdout is ``sample_bucket(id, salt + ":holdout") < holdout * 10000``; the variant is
    the weighted slot of ``sample_bucket(id, salt + ":variant")``.
    """
    if holdout > 0 and sample_bucket(member_id, f"{salt}:holdout") < round(holdout * BUCKETS):
        return HOLDOUT
    if len(variants) == 1:
        return variants[0].name
    bucket = sample_bucket(member_id, f"{salt}:variant")
    total = float(sum(v.weight for v in variants))
    acc = 0.0
    for v in variants:
        acc += v.weight
        if bucket < round(acc / total * BUCKETS):
            return v.name
    return variants[-1].name

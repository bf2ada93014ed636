"""Tags and tag rules: a rule is a segment that assigns a tag."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.segments import Segment
from membermkt.errors import UsageError

__all__ = ["Tag", "TagChanges", "TagRule", "apply_rules"]


def _check_name(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise UsageError(f"tag name must be a non-empty str of ≤ 64 chars, got {value!r}")


@attrs.frozen(slots=True)
class Tag:
    """A tag (label) members can carry.

    Attributes:
        name: unique name, e.g. ``"vip"`` (≤ 64 chars; WeChat's own tag names are ≤ 30,
            which the tag sync checks when pushing).
        description: free text for operators.
        group: an optional group (WeCom corp tags live in groups).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    group: str | None = None


@attrs.frozen(slots=True)
class TagRule:
    """Members in ``segment`` get ``tag``; with ``remove_others=True`` members outside lose it.

    Example: ``TagRule("champions", did("purchase", at_least=5, within=timedelta(days=90)))``.
    """

    tag: str = attrs.field(validator=_check_name)
    segment: Segment = attrs.field()
    remove_others: bool = True

    @segment.validator
    def _check_segment(self, attribute: object, value: Any) -> None:
        if not isinstance(value, Segment):
            raise UsageError(f"TagRule.segment must be a Segment, got {value!r}")


@attrs.frozen(slots=True)
class TagChanges:
    """What applying tag rules would change: member ids to tag / untag, per tag."""

    add: dict[str, tuple[str, ...]]
    remove: dict[str, tuple[str, ...]]


def apply_rules(
    rules: Sequence[TagRule],
    members: Iterable[tuple[Member, Sequence[Event]]],
    as_of: dt.datetime,
) -> TagChanges:
    """Evaluate ``rules`` as of ``as_of`` over (member, events) pairs and return the changes
    (pure: the caller writes them with ``store.tag`` / ``store.untag``)."""
    preds = [(r, compile_predicate(r.segment, as_of)) for r in rules]
    add: dict[str, list[str]] = {r.tag: [] for r in rules}
    remove: dict[str, list[str]] = {r.tag: [] for r in rules}
    for member, events in members:
        for rule, pred in preds:
            inside = pred(member, events)
            if inside and rule.tag not in member.tags:
                add[rule.tag].append(member.id)
            elif not inside and rule.remove_others and rule.tag in member.tags:
                remove[rule.tag].append(member.id)
    return TagChanges(
        add={k: tuple(v) for k, v in add.items()}, remove={k: tuple(v) for k, v in remove.items()}
    )

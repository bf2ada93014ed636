"""Make WeChat's tags match membermkt's tags for a set of followers (pure planning).

The platform only edits tags per tag (batch tag/untag of ≤ 50 openids), and lists a tag's
fans in pages of 10,000, so the fewest calls come from working per tag: read the fans of
each managed tag, diff against the desired sets, create missing tags, untag first (freeing
slots under the 20-tags-per-user limit), then tag, 50 openids per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from membermkt.channels.wechat.api.tags import MAX_TAGS_PER_USER, TAG_BATCH_MAX
from membermkt.errors import UsageError

__all__ = ["TagSyncPlan", "plan_tag_sync"]


@attrs.frozen(slots=True, kw_only=True)
class TagSyncPlan:
    """What to change.

    Attributes:
        create: tag names to create first.
        add: tag name → openids to tag (sorted).
        remove: tag name → openids to untag (sorted).
        over_limit: openids whose desired WeChat tags exceed 20: their additions beyond the
            limit are left out (the platform would refuse them with 45059).
    """

    create: tuple[str, ...] = ()
    add: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    remove: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    over_limit: tuple[str, ...] = ()

    @property
    def calls(self) -> int:
        """Write calls the plan needs (creates + batches of 50)."""
        batches = sum(
            -(-len(v) // TAG_BATCH_MAX) for v in (*self.add.values(), *self.remove.values())
        )
        return len(self.create) + batches


def plan_tag_sync(
    desired: Mapping[str, Iterable[str]],
    *,
    managed: Iterable[str],
    existing: Iterable[str],
    fans: Mapping[str, Iterable[str]],
    other_tag_counts: Mapping[str, int] | None = None,
) -> TagSyncPlan:
    """Plan the tag changes.

    Args:
        desired: openid → the managed tag names it should carry; a current fan of a managed
            tag that is not in ``desired`` (a member who left the rule) loses that tag.
        managed: the tag names membermkt owns; only these are added or removed.
        existing: tag names that exist on the account.
        fans: managed tag name → its current fans (only openids in ``desired`` matter).
        other_tag_counts: openid → how many tags set elsewhere (console, other tools) it
            carries; they count toward the platform's 20 tags per user.

    Raises:
        UsageError: when a desired tag is not in ``managed``.
    """
    managed_set = frozenset(managed)
    existing_set = frozenset(existing)
    others = other_tag_counts or {}
    add: dict[str, list[str]] = {}
    remove: dict[str, list[str]] = {}
    current: dict[str, set[str]] = {o: set() for o in desired}
    for name in managed_set:
        for o in fans.get(name, ()):
            # A fan missing from ``desired`` left the rule: it loses the managed tag.
            current.setdefault(o, set()).add(name)
    over: list[str] = []
    for openid in sorted(current):
        want = set(desired.get(openid, ()))
        stray = want - managed_set
        if stray:
            raise UsageError(f"{openid}: tags {sorted(stray)} are not managed by this sync")
        have = current[openid]
        for name in sorted(have - want):
            remove.setdefault(name, []).append(openid)
        room = MAX_TAGS_PER_USER - others.get(openid, 0) - len(have & want)
        additions = sorted(want - have)
        if len(additions) > room:
            over.append(openid)
            additions = additions[: max(room, 0)]
        for name in additions:
            add.setdefault(name, []).append(openid)
    create = tuple(sorted(n for n in add if n not in existing_set))
    return TagSyncPlan(
        create=create,
        add={k: tuple(v) for k, v in sorted(add.items())},
        remove={k: tuple(v) for k, v in sorted(remove.items())},
        over_limit=tuple(over),
    )

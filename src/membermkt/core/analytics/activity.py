"""Activity classes: active / to-be-activated / dormant / churned.

A member's class as of ``as_of`` follows from their latest interaction
(``last_active_at``: follows, scans, clicks, views, messages, purchases, red-packet claims,
WeCom contact adds — see :data:`membermkt.core.events.INTERACTION_TYPES`) and whether they
unfollowed, using three windows ``active_days < dormant_days < churn_days``:

==================  ==========================================================
``active``          last interaction within ``active_days``
``to_be_activated`` last interaction within ``dormant_days`` but not ``active_days``
``dormant``         last interaction within ``churn_days`` but not ``dormant_days``
``churned``         lost every channel (unfollowed the official account and/or
                    deleted by or deleting every WeCom staff, with no channel left),
                    or no interaction within ``churn_days`` (or ever)
==================  ==========================================================

"Lost every channel": ``subscribed`` is ``False`` or ``wecom_contact`` is ``False`` (all
WeCom relations ended), and neither is ``True``. A customer one staff deleted who is still
another staff's contact keeps ``wecom_contact == True`` and is not churned.

The classes partition the members. Each class is also a *segment*
(:func:`activity`), built only from existing leaves (comparisons of ``last_active_at`` with
:func:`~membermkt.segments.ago` and of ``subscribed``), so every segment backend — the Python
predicate and the SQL compiler — evaluates it with no special support::

    from membermkt.core.analytics import activity, ActivityWindows
    dormant = activity("dormant", ActivityWindows(active_days=30, dormant_days=90))
    store.select(dormant & tag("vip"), as_of)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from membermkt.core.analytics._common import Table, check_as_of, group_label
from membermkt.core.evaluate import field_getter
from membermkt.core.events import Event, state_as_of
from membermkt.core.members import Member
from membermkt.core.segments import Not, Segment, ago, attr
from membermkt.errors import UsageError

__all__ = [
    "ACTIVITY_CLASSES",
    "ActivityResult",
    "ActivityWindows",
    "activity",
    "activity_class",
    "activity_counts",
]

ACTIVITY_CLASSES: Final = ("active", "to_be_activated", "dormant", "churned")
"""The activity classes, from most to least engaged."""


def _positive_days(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"ActivityWindows.{attribute.name} must be a positive int, got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class ActivityWindows:
    """The three windows (in days) that separate the activity classes.

    Raises:
        UsageError: unless ``0 < active_days < dormant_days < churn_days``.
    """

    active_days: int = attrs.field(default=30, validator=_positive_days)
    dormant_days: int = attrs.field(default=90, validator=_positive_days)
    churn_days: int = attrs.field(default=180, validator=_positive_days)

    def __attrs_post_init__(self) -> None:
        if not self.active_days < self.dormant_days < self.churn_days:
            raise UsageError(
                "activity windows must satisfy active_days < dormant_days < churn_days, got "
                f"{self.active_days}, {self.dormant_days}, {self.churn_days}"
            )


DEFAULT_WINDOWS: Final = ActivityWindows()


def _check_class(name: object) -> str:
    if name not in ACTIVITY_CLASSES:
        raise UsageError(f"unknown activity class {name!r}; expected one of {ACTIVITY_CLASSES}")
    assert isinstance(name, str)
    return name


def activity(name: str, windows: ActivityWindows = DEFAULT_WINDOWS) -> Segment:
    """The members in activity class ``name`` as a segment (no new node kind: comparisons on
    ``last_active_at`` and ``subscribed``).

    Raises:
        UsageError: for an unknown class name.
    """
    name = _check_class(name)
    last = attr("last_active_at")
    subscribed, contact = attr("subscribed"), attr("wecom_contact")
    unfollowed = (
        ((subscribed == False) | (contact == False))  # noqa: E712  (builds a segment)
        & Not.of(subscribed == True)  # noqa: E712
        & Not.of(contact == True)  # noqa: E712
    )
    following = Not.of(unfollowed)
    if name == "active":
        return following & (last >= ago(days=windows.active_days))
    if name == "to_be_activated":
        return (
            following
            & (last < ago(days=windows.active_days))
            & (last >= ago(days=windows.dormant_days))
        )
    if name == "dormant":
        return (
            following
            & (last < ago(days=windows.dormant_days))
            & (last >= ago(days=windows.churn_days))
        )
    return unfollowed | Not.of(last >= ago(days=windows.churn_days))


def activity_class(
    member: Member,
    as_of: dt.datetime,
    windows: ActivityWindows = DEFAULT_WINDOWS,
    *,
    events: Sequence[Event] | None = None,
) -> str:
    """The member's activity class as of ``as_of`` (same answer as the :func:`activity`
    segments). Pass the member's ``events`` to get the class of a member whose stored state
    has events later than ``as_of`` (the state is then folded up to ``as_of``)."""
    as_of = check_as_of(as_of)
    if events is not None:
        member = state_as_of(member, events, as_of)
    s = member.state
    channels = (s.subscribed, s.wecom_contact)
    if False in channels and True not in channels:
        return "churned"
    last = member.state.last_active_at
    if last is None:
        return "churned"
    if last >= as_of - dt.timedelta(days=windows.active_days):
        return "active"
    if last >= as_of - dt.timedelta(days=windows.dormant_days):
        return "to_be_activated"
    if last >= as_of - dt.timedelta(days=windows.churn_days):
        return "dormant"
    return "churned"


@attrs.frozen(slots=True, kw_only=True)
class ActivityResult:
    """Members per activity class, overall and per group.

    Attributes:
        as_of: the evaluation time.
        windows: the windows used.
        by: the grouping field (``None``: no grouping).
        counts: members per class, in :data:`ACTIVITY_CLASSES` order.
        groups: ``(group, counts)`` pairs sorted by group.
    """

    as_of: dt.datetime
    windows: ActivityWindows
    counts: tuple[int, ...]
    by: str | None = None
    groups: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def total(self) -> int:
        """Number of members classified."""
        return sum(self.counts)

    def as_dict(self) -> dict[str, int]:
        """Class name → count."""
        return dict(zip(ACTIVITY_CLASSES, self.counts, strict=True))

    def table(self) -> Table:
        """One row per class (overall), then per group when grouped."""
        rows: list[tuple[Any, ...]] = [
            ("(all)", c, n) for c, n in zip(ACTIVITY_CLASSES, self.counts, strict=True)
        ]
        for g, counts in self.groups:
            rows.extend((g, c, n) for c, n in zip(ACTIVITY_CLASSES, counts, strict=True))
        return Table(("group", "class", "members"), tuple(rows), title="Activity classes")

    def _repr_html_(self) -> str:
        w = self.windows
        return (
            f"<p><b>Activity</b> as of {self.as_of:%Y-%m-%d} — {self.total} members; windows "
            f"{w.active_days}/{w.dormant_days}/{w.churn_days} days</p>" + self.table().to_html()
        )


def activity_counts(
    members: Iterable[Member],
    *,
    as_of: dt.datetime,
    windows: ActivityWindows = DEFAULT_WINDOWS,
    by: str | None = None,
) -> ActivityResult:
    """Count members per activity class (optionally per value of field ``by``, e.g.
    ``"source"`` or a custom attribute).

    Raises:
        UsageError: for a bad ``as_of``.
    """
    as_of = check_as_of(as_of)
    index = {c: i for i, c in enumerate(ACTIVITY_CLASSES)}
    total = [0] * len(ACTIVITY_CLASSES)
    per: dict[str, list[int]] = {}
    get: Callable[[Member], Any] | None = field_getter(by) if by is not None else None
    for m in members:
        i = index[activity_class(m, as_of, windows)]
        total[i] += 1
        if get is not None:
            per.setdefault(group_label(get(m)), [0] * len(ACTIVITY_CLASSES))[i] += 1
    return ActivityResult(
        as_of=as_of,
        windows=windows,
        counts=tuple(total),
        by=by,
        groups=tuple((g, tuple(c)) for g, c in sorted(per.items())),
    )

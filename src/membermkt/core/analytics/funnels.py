"""Funnels: ordered steps with windows, conversion per step, per acquisition channel.

A member *enters* a funnel at their first event matching step 1 (after ``since``, at or
before ``as_of``). Each later step is reached at the member's **first** matching event that
happens at or after the previous step and, when the step has a window, no later than
``within`` after the previous step. A step of the *same event type* as the previous step must
happen strictly later (so one purchase is never both the "first" and the "repeat" purchase).
Events after ``as_of`` are ignored.

Counts are therefore non-increasing along the steps (property-tested), and the store-backed
runner computes the same counts in SQL, one ``GROUP BY`` per step.

"Members who click A then C" is a two-step funnel::

    Funnel.of(step("A", "menu_click", where={"key": "A"}),
              step("C", "menu_click", where={"key": "C"}))
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core.analytics._common import (
    History,
    Table,
    check_as_of,
    group_label,
    matches_where,
    to_where,
)
from membermkt.core.evaluate import field_getter
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.errors import UsageError

__all__ = [
    "ACQUISITION_FUNNEL",
    "Funnel",
    "FunnelResult",
    "FunnelStep",
    "funnel",
    "funnel_times",
    "step",
]


def _check_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"FunnelStep.{attribute.name} must be a non-empty str, got {value!r}")


def _check_within(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise UsageError(f"FunnelStep.within must be None or positive seconds, got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class FunnelStep:
    """One funnel step.

    Attributes:
        name: shown in results, unique within the funnel.
        event: the event type.
        where: event-property filter, as sorted ``(name, value)`` pairs.
        within: window in seconds after the previous step (``None``: no limit; ignored on
            the first step).
    """

    name: str = attrs.field(validator=_check_name)
    event: str = attrs.field(validator=_check_name)
    where: tuple[tuple[str, str | int | float | bool], ...] = attrs.field(
        default=(), converter=to_where
    )
    within: int | None = attrs.field(default=None, validator=_check_within)

    def matches(self, event: Event) -> bool:
        """Whether ``event`` counts for this step."""
        return event.type == self.event and matches_where(event, self.where)


def step(
    name: str,
    event: str,
    *,
    where: Mapping[str, object] | None = None,
    within: dt.timedelta | None = None,
) -> FunnelStep:
    """Build a :class:`FunnelStep`; ``within`` is a timedelta after the previous step.

    Raises:
        UsageError: for bad arguments.
    """
    secs = None
    if within is not None:
        if not isinstance(within, dt.timedelta):
            raise UsageError(f"step(within=...) takes a timedelta, got {within!r}")
        secs = int(within.total_seconds())
        if secs != within.total_seconds():
            raise UsageError("step(within=...) must be whole seconds")
    return FunnelStep(name=name, event=event, where=to_where(where), within=secs)


def _to_steps(value: Iterable[FunnelStep]) -> tuple[FunnelStep, ...]:
    steps = tuple(value)
    if not steps:
        raise UsageError("a funnel needs at least one step")
    for s in steps:
        if not isinstance(s, FunnelStep):
            raise UsageError(f"funnel steps must be FunnelStep values, got {s!r}")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise UsageError(f"funnel step names must be unique, got {names}")
    return steps


@attrs.frozen(slots=True)
class Funnel:
    """Ordered steps. Build with ``Funnel.of(step(...), step(...))``."""

    steps: tuple[FunnelStep, ...] = attrs.field(converter=_to_steps)

    @classmethod
    def of(cls, *steps: FunnelStep) -> Funnel:
        """A funnel of ``steps`` in order."""
        return cls(steps)

    @property
    def names(self) -> tuple[str, ...]:
        """The step names."""
        return tuple(s.name for s in self.steps)

    def strict(self, i: int) -> bool:
        """Whether step ``i`` must happen strictly after step ``i - 1``."""
        return i > 0 and self.steps[i].event == self.steps[i - 1].event


ACQUISITION_FUNNEL: Final = Funnel.of(
    step("scan", "scan"),
    step("follow", "follow", within=dt.timedelta(days=1)),
    step("redpacket_claim", "redpacket_claim", within=dt.timedelta(days=7)),
    step("first_purchase", "purchase", within=dt.timedelta(days=30)),
    step("repeat_purchase", "purchase", within=dt.timedelta(days=90)),
)
"""scan → follow (1 day) → red-packet claim (7 days) → first purchase (30 days) → repeat
purchase (90 days)."""


def funnel_times(
    funnel: Funnel,
    events: Iterable[Event],
    *,
    as_of: dt.datetime,
    since: dt.datetime | None = None,
) -> tuple[dt.datetime, ...]:
    """The times at which one member reached each step, in order (as many as reached)."""
    as_of = check_as_of(as_of)
    lower = check_as_of(since, "since") if since is not None else None
    relevant = {s.event for s in funnel.steps}
    evs = sorted(
        (e.at_utc, i, e) for i, e in enumerate(events) if e.type in relevant and e.at_utc <= as_of
    )
    times: list[dt.datetime] = []
    for k, st in enumerate(funnel.steps):
        prev = times[-1] if times else None
        found = None
        for at, _, e in evs:
            if prev is None:
                if lower is not None and at <= lower:
                    continue
            elif at < prev or (at == prev and funnel.strict(k)):
                continue
            elif st.within is not None and (at - prev).total_seconds() > st.within:
                break
            if st.matches(e):
                found = at
                break
        if found is None:
            break
        times.append(found)
    return tuple(times)


@attrs.frozen(slots=True, kw_only=True)
class FunnelResult:
    """Members reaching each step, overall and per group.

    Attributes:
        steps: the step names.
        counts: members reaching each step (non-increasing).
        by: the grouping field (``None``: no grouping).
        groups: ``(group, counts)`` pairs sorted by group (groups where someone entered).
    """

    steps: tuple[str, ...]
    counts: tuple[int, ...]
    by: str | None = None
    groups: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @staticmethod
    def _rates(counts: Sequence[int]) -> tuple[float | None, ...]:
        return tuple(
            None if i == 0 else (counts[i] / counts[i - 1] if counts[i - 1] else None)
            for i in range(len(counts))
        )

    def conversion(self) -> tuple[float | None, ...]:
        """Step-to-step conversion (``None`` for the first step and after an empty step)."""
        return self._rates(self.counts)

    def overall(self) -> float | None:
        """Share of entrants reaching the last step (``None`` when nobody entered)."""
        return self.counts[-1] / self.counts[0] if self.counts[0] else None

    def group(self, name: str) -> tuple[int, ...]:
        """The counts of one group (zeros for an unknown group)."""
        return dict(self.groups).get(name, (0,) * len(self.steps))

    def table(self) -> Table:
        """One row per (group, step): members, conversion from the previous step and from
        the first step."""
        rows: list[tuple[Any, ...]] = []
        for g, counts in (("(all)", self.counts), *self.groups):
            rates = self._rates(counts)
            for name, n, r in zip(self.steps, counts, rates, strict=True):
                rows.append((g, name, n, r, n / counts[0] if counts[0] else None))
        return Table(
            ("group", "step", "members", "step_conversion", "overall_conversion"),
            tuple(rows),
            title="Funnel",
        )

    def _repr_html_(self) -> str:
        steps = html.escape(" → ".join(self.steps))
        return f"<p><b>Funnel</b> {steps}</p>" + self.table().to_html()


def counts_from_reached(n_steps: int, reached: Iterable[int]) -> tuple[int, ...]:
    """Turn "how many steps each member reached" into members per step."""
    at = [0] * (n_steps + 1)
    for k in reached:
        at[k] += 1
    out = []
    acc = 0
    for k in range(n_steps, 0, -1):
        acc += at[k]
        out.append(acc)
    return tuple(reversed(out))


def funnel(
    funnel: Funnel,
    history: History,
    *,
    as_of: dt.datetime,
    since: dt.datetime | None = None,
    by: str | None = "source",
) -> FunnelResult:
    """Run ``funnel`` over ``history``; group by member field ``by`` (default the
    acquisition ``source``; ``None`` for no grouping).

    Raises:
        UsageError: for bad arguments.
    """
    if not isinstance(funnel, Funnel):
        raise UsageError(f"expected a Funnel, got {funnel!r}")
    n = len(funnel.steps)
    get: Callable[[Member], Any] | None = field_getter(by) if by is not None else None
    reached: list[int] = []
    per: dict[str, list[int]] = {}
    for member, events in history:
        k = len(funnel_times(funnel, events, as_of=as_of, since=since))
        reached.append(k)
        if get is not None and k > 0:
            per.setdefault(group_label(get(member)), []).append(k)
    return FunnelResult(
        steps=funnel.names,
        counts=counts_from_reached(n, reached),
        by=by,
        groups=tuple((g, counts_from_reached(n, ks)) for g, ks in sorted(per.items())),
    )

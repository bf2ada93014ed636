"""Journey reports (pure): simulation over a past period and the funnel of entries."""

from __future__ import annotations

import datetime as dt
import html
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

import attrs

from membermkt.core.events import Event
from membermkt.core.journeys._model import Journey
from membermkt.core.journeys._replay import Effect, EntryState, replay
from membermkt.core.members import Member
from membermkt.errors import JourneyError

__all__ = ["JourneyReport", "Simulation", "journey_report", "simulate"]


@attrs.frozen(slots=True, kw_only=True)
class Simulation:
    """What a journey would have done over a history.

    Attributes:
        as_of: the end of the replayed period.
        entries: ``(member_id, EntryState)`` for every entry.
        effects: every side effect that would have happened, by time.
    """

    journey_id: str
    version: int
    as_of: dt.datetime
    entries: tuple[tuple[str, EntryState], ...]
    effects: tuple[Effect, ...]

    def entered(self) -> list[str]:
        """Members who would have entered (sorted, once each)."""
        return sorted({m for m, _ in self.entries})

    def received(self, member_id: str) -> list[Effect]:
        """What one member would have received."""
        return [e for e in self.effects if e.member_id == member_id]

    def report(self) -> JourneyReport:
        """The funnel of the simulated entries."""
        return journey_report(self.journey_id, [s for _, s in self.entries], as_of=self.as_of)


def simulate(
    journey: Journey,
    history: Iterable[tuple[Member, Sequence[Event]]],
    *,
    as_of: dt.datetime,
) -> Simulation:
    """Replay ``journey`` over a past period: who would have entered, where each would be at
    ``as_of`` and what they would have received. Nothing is written anywhere.

    ``history`` is ``(member, events)`` pairs (e.g. :func:`membermkt.stores.io` exports or
    ``(store.get_member(m), store.events_for(m))``).

    Raises:
        JourneyError: for an invalid journey or history.
    """
    journey.validate()
    entries: list[tuple[str, EntryState]] = []
    effects: list[Effect] = []
    for member, events in history:
        if not isinstance(member, Member):
            raise JourneyError(f"simulate() history needs (Member, events) pairs, got {member!r}")
        r = replay(journey, member, events, as_of)
        entries.extend((member.id, e) for e in r.entries)
        effects.extend(r.effects)
    effects.sort(key=lambda e: (e.at, e.member_id, e.step_id, e.entry))
    return Simulation(
        journey_id=journey.id,
        version=journey.version,
        as_of=as_of,
        entries=tuple(sorted(entries, key=lambda x: (x[0], x[1].entry))),
        effects=tuple(effects),
    )


@attrs.frozen(slots=True, kw_only=True)
class JourneyReport:
    """The funnel of a journey's entries.

    Attributes:
        entered: entries in total (held-out ones included).
        waiting: step → entries waiting there now.
        ended: reason (``goal``, ``completed``, ``exit:<reason>``) → entries.
        ended_at_step: (step, reason) → entries that ended there.
        time_to_goal: seconds from entry to goal: (count, median, mean) — ``None`` if none.
        arms: per variant and for the holdout (``"holdout"``): (entries, goals, rate).
        lift: variant → conversion rate minus the holdout's (``None`` without a holdout).
    """

    journey_id: str
    as_of: dt.datetime | None
    entered: int
    waiting: tuple[tuple[str, int], ...]
    ended: tuple[tuple[str, int], ...]
    ended_at_step: tuple[tuple[str, str, int], ...]
    time_to_goal: tuple[int, float, float] | None
    arms: tuple[tuple[str, int, int, float], ...]
    lift: tuple[tuple[str, float | None], ...]

    def to_dict(self) -> dict[str, object]:
        """A JSON-able dict."""
        return {
            "journey_id": self.journey_id,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "entered": self.entered,
            "waiting": dict(self.waiting),
            "ended": dict(self.ended),
            "ended_at_step": [
                {"step": s, "reason": r, "entries": n} for s, r, n in self.ended_at_step
            ],
            "time_to_goal": None
            if self.time_to_goal is None
            else dict(zip(("count", "median_s", "mean_s"), self.time_to_goal, strict=True)),
            "arms": [{"arm": a, "entries": n, "goals": g, "rate": r} for a, n, g, r in self.arms],
            "lift": dict(self.lift),
        }

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(f"<tr><td>waiting at {e(s)}</td><td>{n}</td></tr>" for s, n in self.waiting)
        rows += "".join(f"<tr><td>ended: {e(r)}</td><td>{n}</td></tr>" for r, n in self.ended)
        arms = "".join(
            f"<tr><td>{e(a)}</td><td>{n}</td><td>{g}</td><td>{r:.1%}</td></tr>"
            for a, n, g, r in self.arms
        )
        return (
            f"<p><b>Journey {e(self.journey_id)}</b>: {self.entered} entries</p>"
            f"<table><tr><th>where</th><th>entries</th></tr>{rows}</table>"
            f"<table><tr><th>arm</th><th>entries</th><th>goals</th><th>rate</th></tr>"
            f"{arms}</table>"
        )


def journey_report(
    journey_id: str, entries: Iterable[EntryState], *, as_of: dt.datetime | None = None
) -> JourneyReport:
    """Funnel, time-to-goal and per-variant lift vs holdout over entry states (from
    :func:`simulate` or from the engine's progress store)."""
    states = list(entries)
    waiting: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    at_step: Counter[tuple[str, str]] = Counter()
    ttg: list[float] = []
    arm_n: Counter[str] = Counter()
    arm_g: Counter[str] = Counter()
    for s in states:
        arm = "holdout" if s.holdout else s.variant
        arm_n[arm] += 1
        if s.status == "waiting":
            waiting[s.step] += 1
            continue
        reason = s.reason or s.status
        ended[reason] += 1
        at_step[(s.step, reason)] += 1
        if s.status == "goal":
            arm_g[arm] += 1
            if s.ended_at is not None:
                ttg.append((s.ended_at - s.entered_at).total_seconds())
    arms = tuple(
        (a, arm_n[a], arm_g[a], arm_g[a] / arm_n[a] if arm_n[a] else 0.0) for a in sorted(arm_n)
    )
    base = next((r for a, _, _, r in arms if a == "holdout"), None)
    lift = tuple((a, None if base is None else r - base) for a, _, _, r in arms if a != "holdout")
    return JourneyReport(
        journey_id=journey_id,
        as_of=as_of,
        entered=len(states),
        waiting=tuple(sorted(waiting.items())),
        ended=tuple(sorted(ended.items())),
        ended_at_step=tuple(sorted((s, r, n) for (s, r), n in at_step.items())),
        time_to_goal=(len(ttg), statistics.median(ttg), statistics.fmean(ttg)) if ttg else None,
        arms=arms,
        lift=lift,
    )

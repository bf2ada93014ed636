"""Qualification (精选): pick the first members precisely, and say why.

A :class:`Qualification` is a target-profile segment (who may be considered at all) plus a
score: weighted :class:`Signal`\\ s, each a segment (profile fit, engagement, purchase
history, acquisition source...). :meth:`Qualification.assess` is pure and explainable: the
:class:`Assessment` lists every signal with whether it held and what it weighed
(:meth:`Assessment.why`). :func:`invite` turns a qualified prospect into an invitation
event; :func:`~membermkt.core.membership.joining.joined_event` with the invitation's
``form`` completes an invite-only joining (:func:`check_invited` refuses the uninvited).

:func:`first_member_cohorts` reports the first members per acquisition source/partner with
their later retention and revenue — which partner brought the good ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

import attrs

from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import INTERACTION_TYPES, Event
from membermkt.core.members import Member
from membermkt.core.membership.joining import membership_as_of
from membermkt.core.segments import Segment
from membermkt.errors import UsageError

__all__ = [
    "INVITED",
    "Assessment",
    "CohortRow",
    "Qualification",
    "Signal",
    "check_invited",
    "first_member_cohorts",
    "invite",
]

INVITED: Final = "member_invited"


@attrs.frozen(slots=True, kw_only=True)
class Signal:
    """One weighted reason to want a member: ``weight`` points when ``segment`` holds."""

    name: str
    segment: Segment
    weight: float

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise UsageError("Signal.name must be non-empty")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
            raise UsageError(f"Signal {self.name}: weight must be a number, got {self.weight!r}")


@attrs.frozen(slots=True, kw_only=True)
class Assessment:
    """The outcome of assessing one member.

    Attributes:
        member_id: who.
        in_target: whether the member matches the target profile.
        score: the sum of the weights of the signals that held.
        threshold: the score needed.
        signals: ``(name, held, weight)`` for every signal, in the program's order.
    """

    member_id: str
    in_target: bool
    score: float
    threshold: float
    signals: tuple[tuple[str, bool, float], ...]

    @property
    def qualified(self) -> bool:
        """In the target profile and scoring at least the threshold."""
        return self.in_target and self.score >= self.threshold

    def why(self) -> list[str]:
        """One line per reason, e.g. ``"+3.0 bought durian twice"`` / ``"  0 (no) ..."``."""
        lines = [f"{'in' if self.in_target else 'NOT in'} the target profile"]
        for name, held, weight in self.signals:
            lines.append(f"{'+' if held else ' '}{weight if held else 0:g} {name}")
        verdict = "qualified" if self.qualified else "not qualified"
        lines.append(f"score {self.score:g} / threshold {self.threshold:g}: {verdict}")
        return lines


@attrs.frozen(slots=True, kw_only=True)
class Qualification:
    """Who qualifies as a first member: target profile + weighted signals ≥ threshold.

    Raises:
        UsageError: without signals or with duplicate signal names.
    """

    id: str
    target: Segment
    signals: tuple[Signal, ...]
    threshold: float

    def __attrs_post_init__(self) -> None:
        names = [s.name for s in self.signals]
        if not names or len(set(names)) != len(names):
            raise UsageError(f"Qualification {self.id}: needs distinct signals, got {names}")

    def assess(self, member: Member, events: Sequence[Event], as_of: dt.datetime) -> Assessment:
        """Assess one member as of ``as_of`` (pure)."""
        return self._assessor(as_of)(member, events)

    def _assessor(self, as_of: dt.datetime) -> Callable[[Member, Sequence[Event]], Assessment]:
        target = compile_predicate(self.target, as_of)
        signals = [
            (s.name, compile_predicate(s.segment, as_of), float(s.weight)) for s in self.signals
        ]

        def assess(member: Member, events: Sequence[Event]) -> Assessment:
            held = [(name, pred(member, events), w) for name, pred, w in signals]
            return self._assessment(member.id, target(member, events), held)

        return assess

    def _assessment(
        self, member_id: str, in_target: bool, held: list[tuple[str, bool, float]]
    ) -> Assessment:
        return Assessment(
            member_id=member_id,
            in_target=in_target,
            score=sum(w for _, h, w in held if h),
            threshold=float(self.threshold),
            signals=tuple(held),
        )

    def rank(
        self, people: Iterable[tuple[Member, Sequence[Event]]], as_of: dt.datetime, *, top: int
    ) -> list[Assessment]:
        """The ``top`` qualified members, best score first (ties by member id)."""
        assess = self._assessor(as_of)
        got = [assess(m, e) for m, e in people]
        ok = sorted((a for a in got if a.qualified), key=lambda a: (-a.score, a.member_id))
        return ok[:top]


def invite(assessment: Assessment, at: dt.datetime, *, qualification: str, form: str) -> Event:
    """The ``member_invited`` event for a qualified assessment (key per member and form).

    Raises:
        UsageError: when the assessment is not qualified.
    """
    if not assessment.qualified:
        raise UsageError(
            f"member {assessment.member_id!r} is not qualified: " + "; ".join(assessment.why())
        )
    return Event(
        member_id=assessment.member_id,
        type=INVITED,
        at=at,
        properties={"qualification": qualification, "form": form, "score": assessment.score},
        key=f"{INVITED}:{form}:{assessment.member_id}",
    )


def check_invited(events: Iterable[Event], *, form: str, at: dt.datetime) -> Event:
    """The invitation for ``form`` at or before ``at`` (invite-only joining).

    Raises:
        UsageError: when the member has no invitation for that form.
    """
    for ev in events:
        if ev.type == INVITED and ev.properties.get("form") == form and ev.at <= at:
            return ev
    raise UsageError(f"joining {form!r} is invite-only and this member has no invitation")


@attrs.frozen(slots=True, kw_only=True)
class CohortRow:
    """First members of one acquisition source.

    Attributes:
        source: the ``join_source``.
        members: how many joined from it in the cohort window.
        retained: how many were active in the retention window before ``as_of``.
        revenue_fen: their purchases after joining, up to ``as_of``.
    """

    source: str
    members: int
    retained: int
    revenue_fen: int

    @property
    def retention(self) -> float:
        """``retained / members`` (0 for an empty cohort)."""
        return self.retained / self.members if self.members else 0.0

    @property
    def revenue_per_member_fen(self) -> float:
        """Average revenue per member of the cohort."""
        return self.revenue_fen / self.members if self.members else 0.0


def first_member_cohorts(
    histories: Mapping[str, Sequence[Event]],
    *,
    joined_from: dt.datetime,
    joined_until: dt.datetime,
    as_of: dt.datetime,
    retention_window: dt.timedelta = dt.timedelta(days=30),
) -> list[CohortRow]:
    """Members who joined in ``[joined_from, joined_until)``, per ``join_source``, with
    retention (any interaction in ``(as_of - retention_window, as_of]``) and revenue after
    joining; sorted by revenue per member, best first."""
    rows: dict[str, list[int]] = {}
    lo = as_of - retention_window
    for events in histories.values():
        ms = membership_as_of(events, as_of)
        if ms.joined_at is None or not joined_from <= ms.joined_at < joined_until:
            continue
        row = rows.setdefault(ms.join_source or "(unknown)", [0, 0, 0])
        row[0] += 1
        if any(e.type in INTERACTION_TYPES and lo < e.at <= as_of for e in events):
            row[1] += 1
        for e in events:
            if e.type == "purchase" and ms.joined_at <= e.at <= as_of:
                amount = e.properties.get("amount_fen", 0)
                row[2] += amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
    out = [
        CohortRow(source=s, members=r[0], retained=r[1], revenue_fen=r[2]) for s, r in rows.items()
    ]
    return sorted(out, key=lambda r: (-r.revenue_per_member_fen, r.source))

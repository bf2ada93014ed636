"""Where a member is in a journey: a pure function of (journey version, the member's events,
time).

:func:`replay` walks every entry of one member from its trigger through the steps up to
``now``. Events are sorted and de-duplicated first, so the answer does not depend on the
order they arrived in nor on duplicates. Each side effect gets a key derived from (journey,
version, member, step, entry): the engine writes effects to the delivery ledger under that
key, so replaying again (after a crash, on another worker) never repeats one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core._frozen import FrozenMap, Scalar
from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event, fold
from membermkt.core.journeys._model import (
    Branch,
    EventTrigger,
    Exit,
    Grant,
    Journey,
    ScheduleTrigger,
    SegmentTrigger,
    Send,
    StaffTask,
    Tag,
    Wait,
    WaitForEvent,
    WaitUntil,
)
from membermkt.core.members import Member, MemberState
from membermkt.core.segments import Segment
from membermkt.errors import JourneyError

__all__ = ["Effect", "EntryState", "MemberJourney", "Resume", "effect_key", "pick", "replay"]

MAX_STEPS_PER_ENTRY: Final = 10_000
_KEY_MAX: Final = 180


def effect_key(journey_id: str, version: int, member_id: str, step_id: str, entry: int) -> str:
    """The ledger key of one step's side effect for one entry (stable; ≤ 180 chars)."""
    key = f"jy:{journey_id}:{version}:{member_id}:{step_id}:{entry}"
    if len(key) <= _KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"jy:{journey_id[:40]}:{version}:{digest}"


def pick(journey: Journey, member_id: str, entry: int) -> tuple[str, bool]:
    """(variant, held out) for one entry: a stable hash of journey id, member and entry —
    the same on every worker, every run, every store."""
    h = hashlib.sha256(f"{journey.id}\x00{member_id}\x00{entry}".encode()).digest()
    holdout = int.from_bytes(h[:4], "big") % 100 < journey.holdout_percent
    total = sum(v.weight for v in journey.variants)
    x = int.from_bytes(h[4:8], "big") % total
    for v in journey.variants:
        if x < v.weight:
            return v.name, holdout
        x -= v.weight
    raise JourneyError(f"Journey({journey.id!r}): variant weights are inconsistent")


@attrs.frozen(slots=True, kw_only=True)
class Effect:
    """One side effect due for a member (a message, a grant, a tag, a staff task).

    ``key`` is the delivery-ledger key; ``at`` is when the step ran in journey time.
    """

    key: str
    journey_id: str
    version: int
    member_id: str
    entry: int
    step_id: str
    kind: str
    channel: str
    variant: str
    payload: FrozenMap[str, Any]
    at: dt.datetime


@attrs.frozen(slots=True, kw_only=True)
class Resume:
    """An entry carried over from an older journey version (see the engine's migration
    rules): it continues at ``step`` (``None``: it ends, reason ``"exit:migrated"``) from
    time ``at``."""

    entry: int
    entered_at: dt.datetime
    step: str | None
    at: dt.datetime


@attrs.frozen(slots=True, kw_only=True)
class EntryState:
    """One entry of a member into a journey.

    Attributes:
        entry: 0 for the first entry, then 1, 2, ...
        entered_at: the trigger time.
        variant / holdout: the arm (held-out entries run with no side effects).
        status: ``"waiting"`` (at a wait step, see ``due_at``), ``"goal"`` (converted),
            ``"exited"`` (an exit step), ``"completed"`` (ran off the last step).
        step: the current step (waiting) or the last step run.
        due_at: when the wait ends (``None`` unless waiting).
        ended_at: when the entry ended (``None`` while waiting).
        reason: ``"goal"``, ``"exit:<reason>"`` or ``"completed"`` once ended.
        path: the steps run, as (step id, time) pairs.
    """

    entry: int
    entered_at: dt.datetime
    variant: str
    holdout: bool
    status: str
    step: str
    due_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    reason: str | None = None
    path: tuple[tuple[str, dt.datetime], ...] = ()


@attrs.frozen(slots=True, kw_only=True)
class MemberJourney:
    """A member's whole history in one journey version up to ``as_of``.

    ``next_due``: the earliest time anything can change without a new event (a wait ending,
    a scheduled trigger), or ``None``.
    """

    journey_id: str
    version: int
    member_id: str
    as_of: dt.datetime
    entries: tuple[EntryState, ...]
    effects: tuple[Effect, ...]
    next_due: dt.datetime | None


def _matches(ev: Event, type_: str, where: Mapping[str, Scalar]) -> bool:
    if ev.type != type_:
        return False
    for k, v in where.items():
        got = ev.properties.get(k)
        if got is None or type(got) is not type(v) or got != v:
            return False
    return True


def _canonical(events: Iterable[Event], member_id: str) -> list[Event]:
    seen: set[object] = set()
    out: list[Event] = []
    for ev in events:
        if not isinstance(ev, Event):
            raise JourneyError(f"replay() needs Event values, got {type(ev).__name__}")
        if ev.member_id != member_id:
            raise JourneyError(
                f"replay() for member {member_id!r} got an event of member {ev.member_id!r}"
            )
        ident: object = (
            ("k", ev.key) if ev.key is not None else ("e", ev.type, ev.at_utc, ev.properties)
        )
        if ident in seen:
            continue
        seen.add(ident)
        out.append(ev)
    out.sort(
        key=lambda e: (
            e.at_utc,
            e.type,
            e.key or "",
            sorted((k, type(v).__name__, str(v)) for k, v in e.properties.items()),
        )
    )
    return out


class _Walker:
    def __init__(self, journey: Journey, member: Member, events: list[Event], now: dt.datetime):
        self.j = journey
        self.member = attrs.evolve(member, state=MemberState())
        self.events = events
        self.now = now
        self._preds: dict[tuple[int, dt.datetime], bool] = {}
        self._segments: dict[int, Segment] = {}

    def in_segment(self, segment: Segment, at: dt.datetime) -> bool:
        k = (id(segment), at)
        if k not in self._preds:
            self._segments[id(segment)] = segment
            past = [e for e in self.events if e.at_utc <= at]
            m = fold(self.member, past)
            self._preds[k] = compile_predicate(segment, at)(m, past)
        return self._preds[k]

    def first_event(
        self, type_: str, where: Mapping[str, Scalar], after: dt.datetime, until: dt.datetime
    ) -> dt.datetime | None:
        for ev in self.events:
            t = ev.at_utc
            if t <= after:
                continue
            if t > until:
                return None
            if _matches(ev, type_, where):
                return t
        return None

    def triggers(self) -> tuple[list[dt.datetime], dt.datetime | None]:
        """Candidate entry times up to now, and the next scheduled one after now."""
        trig = self.j.trigger
        if isinstance(trig, EventTrigger):
            return (
                [
                    e.at_utc
                    for e in self.events
                    if e.at_utc <= self.now and _matches(e, trig.type, trig.where)
                ],
                None,
            )
        if isinstance(trig, ScheduleTrigger):
            due = [t for t in trig.at if t <= self.now]
            later = [t for t in trig.at if t > self.now]
            return [t for t in due if self.in_segment(trig.segment, t)], (
                later[0] if later else None
            )
        assert isinstance(trig, SegmentTrigger)
        times = sorted({e.at_utc for e in self.events if e.at_utc <= self.now})
        out: list[dt.datetime] = []
        inside = False
        for t in times:
            now_in = self.in_segment(trig.segment, t)
            if now_in and not inside:
                out.append(t)
            inside = now_in
        return out, None

    def wait_until(self, step: WaitUntil, t: dt.datetime) -> dt.datetime:
        off = self.member.attributes.get(step.offset_attribute)
        minutes = (
            off
            if isinstance(off, int) and not isinstance(off, bool) and -840 <= off <= 840
            else step.default_offset_minutes
        )
        zone = dt.timezone(dt.timedelta(minutes=minutes))
        local = t.astimezone(zone)
        hh, mm = int(step.time[:2]), int(step.time[3:])
        target = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if target < local:
            target += dt.timedelta(days=1)
        return target.astimezone(dt.UTC)

    def walk(
        self,
        entry: int,
        entered_at: dt.datetime,
        sink: list[Effect],
        resume: Resume | None = None,
    ) -> EntryState:
        j = self.j
        variant, holdout = pick(j, self.member.id, entry)
        goal_at = (
            self.first_event(j.goal.type, j.goal.where, entered_at, self.now)
            if j.goal is not None
            else None
        )
        t = entered_at if resume is None else resume.at
        sid: str | None = j.start_id if resume is None else resume.step
        path: list[tuple[str, dt.datetime]] = []

        def state(
            status: str,
            step: str,
            *,
            due_at: dt.datetime | None = None,
            ended_at: dt.datetime | None = None,
            reason: str | None = None,
        ) -> EntryState:
            return EntryState(
                entry=entry,
                entered_at=entered_at,
                variant=variant,
                holdout=holdout,
                status=status,
                step=step,
                due_at=due_at,
                ended_at=ended_at,
                reason=reason,
                path=tuple(path),
            )

        last = j.start_id if sid is None else sid
        if resume is not None and resume.step is None:
            return state("exited", last, ended_at=t, reason="exit:migrated")
        for _ in range(MAX_STEPS_PER_ENTRY):
            if goal_at is not None and goal_at <= t:
                return state("goal", last, ended_at=goal_at, reason="goal")
            if sid is None:
                return state("completed", last, ended_at=t, reason="completed")
            step = j.step(sid)
            last = sid
            path.append((sid, t))
            if isinstance(step, Wait | WaitUntil | WaitForEvent):
                if isinstance(step, Wait):
                    due, nxt = t + dt.timedelta(seconds=step.seconds), step.next
                elif isinstance(step, WaitUntil):
                    due, nxt = self.wait_until(step, t), step.next
                else:
                    due = t + dt.timedelta(seconds=step.timeout_seconds)
                    hit = self.first_event(step.type, step.where, t, min(due, self.now))
                    if hit is not None:
                        due, nxt = hit, step.on_event
                    else:
                        nxt = step.on_timeout
                if goal_at is not None and goal_at <= min(due, self.now):
                    t = goal_at
                    continue
                if due > self.now:
                    return state("waiting", sid, due_at=due)
                t, sid = due, nxt
                continue
            if isinstance(step, Branch):
                sid = step.then if self.in_segment(step.segment, t) else step.otherwise
                continue
            if isinstance(step, Exit):
                return state("exited", sid, ended_at=t, reason=f"exit:{step.reason}")
            if not holdout:
                sink.append(self.effect(step, entry, variant, t))
            sid = step.next
        raise JourneyError(
            f"Journey({j.id!r}) ran {MAX_STEPS_PER_ENTRY} steps at one entry for member "
            f"{self.member.id!r}: validate() the journey (a loop without a wait?)"
        )

    def effect(
        self, step: Send | Grant | Tag | StaffTask, entry: int, variant: str, t: dt.datetime
    ) -> Effect:
        payload: Mapping[str, Any]
        if isinstance(step, Send):
            payload, channel = step.payload_for(variant), step.channel
        elif isinstance(step, Grant):
            payload, channel = {"benefit": step.benefit}, step.channel
        elif isinstance(step, Tag):
            payload, channel = {"tag": step.tag, "remove": step.remove}, "journey.tag"
        else:
            payload = {"title": step.title, "script": step.script, "text": step.script}
            channel = step.channel
        return Effect(
            key=effect_key(self.j.id, self.j.version, self.member.id, step.id, entry),
            journey_id=self.j.id,
            version=self.j.version,
            member_id=self.member.id,
            entry=entry,
            step_id=step.id,
            kind=step.kind,
            channel=channel,
            variant=variant,
            payload=FrozenMap(payload),
            at=t,
        )


def replay(
    journey: Journey,
    member: Member,
    events: Sequence[Event] | Iterable[Event],
    now: dt.datetime,
    *,
    triggers_after: dt.datetime | None = None,
    triggers_until: dt.datetime | None = None,
    first_entry: int = 0,
    resume: Sequence[Resume] = (),
) -> MemberJourney:
    """Walk ``member`` through ``journey`` from their events up to ``now``.

    ``member`` gives the profile, tags and attributes used by branches; its ``state`` is
    re-folded from ``events`` at each moment, so a branch sees the member as they were.

    Re-entry: ``"never"`` keeps only the first trigger; ``"after_exit"`` takes a trigger only
    once the previous entry has ended (before that time); ``"always"`` takes every trigger;
    ``cooldown_seconds`` and ``max_entries`` apply on top.

    Version epochs (used by the engine when a journey is edited): only triggers with
    ``triggers_after < t <= triggers_until`` start entries, numbered from ``first_entry``;
    ``resume`` entries (carried over from an older version) are walked first. With
    re-entry ``"never"``, an epoch that does not start at entry 0 takes no new entries.

    Raises:
        JourneyError: for events of another member, a non-aware ``now``, or a journey that
            loops without waiting.
    """
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise JourneyError(f"replay() needs a timezone-aware now, got {now!r}")
    if not isinstance(journey, Journey):
        raise JourneyError(f"replay() needs a Journey, got {type(journey).__name__}")
    now = now.astimezone(dt.UTC)
    evs = _canonical(events, member.id)
    w = _Walker(journey, member, evs, now)
    times, next_sched = w.triggers()
    times = [
        t
        for t in times
        if (triggers_after is None or t > triggers_after)
        and (triggers_until is None or t <= triggers_until)
    ]
    if triggers_until is not None and next_sched is not None and next_sched > triggers_until:
        next_sched = None
    rules = journey.reentry
    effects: list[Effect] = []
    entries: list[EntryState] = [
        w.walk(r.entry, r.entered_at, effects, r) for r in sorted(resume, key=lambda r: r.entry)
    ]
    n0 = first_entry
    if rules.mode == "never" and (first_entry > 0 or entries):
        times = []
    for t in times:
        if rules.max_entries is not None and n0 + len(entries) >= rules.max_entries:
            break
        if entries:
            prev = entries[-1]
            if rules.mode == "never":
                break
            if (t - prev.entered_at).total_seconds() < max(rules.cooldown_seconds, 0) or (
                t == prev.entered_at
            ):
                continue
            if rules.mode == "after_exit" and (prev.ended_at is None or prev.ended_at >= t):
                continue
        entries.append(w.walk(n0 + len(entries) - len(resume), t, effects))
    dues = [e.due_at for e in entries if e.due_at is not None]
    if next_sched is not None:
        dues.append(next_sched)
    return MemberJourney(
        journey_id=journey.id,
        version=journey.version,
        member_id=member.id,
        as_of=now,
        entries=tuple(entries),
        effects=tuple(effects),
        next_due=min(dues) if dues else None,
    )

"""Graph rules of a journey: dangling targets, unreachable steps, loops without a wait,
missing variant content and channel-rule violations."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from membermkt.core.journeys._model import (
    WAIT_TYPES,
    Journey,
    Send,
    Step,
    Wait,
    WaitForEvent,
    successors,
)
from membermkt.errors import JourneyError

__all__ = ["ChannelRule", "validate"]


@attrs.frozen(slots=True, kw_only=True)
class ChannelRule:
    """What a channel requires of journey sends (supplied by the caller: the library does not
    guess platform limits).

    Attributes:
        required_keys: payload keys every variant's content must have.
        min_gap_seconds: on any path, two sends on this channel need at least this much
            guaranteed waiting between them (a ``WaitForEvent`` or ``WaitUntil`` guarantees
            none on its event path; a ``WaitForEvent`` guarantees its timeout on the
            timeout path).
    """

    required_keys: tuple[str, ...] = ()
    min_gap_seconds: int = 0


def _edges(step: Step) -> list[tuple[str, int]]:
    """(target, guaranteed seconds waited on the way) for each successor."""
    if isinstance(step, Wait):
        return [(t, step.seconds) for t in successors(step)]
    if isinstance(step, WaitForEvent):
        out: list[tuple[str, int]] = []
        if step.on_event is not None:
            out.append((step.on_event, 0))
        if step.on_timeout is not None:
            out.append((step.on_timeout, step.timeout_seconds))
        return out
    return [(t, 0) for t in successors(step)]


def _check_gaps(journey: Journey, rules: Mapping[str, ChannelRule]) -> None:
    # longest-path-free DFS over (step, seconds since last send per ruled channel); the
    # state is bounded by capping each clock at the rule's gap, so it terminates.
    ruled = sorted(c for c, r in rules.items() if r.min_gap_seconds > 0)
    if not ruled:
        return
    caps = {c: rules[c].min_gap_seconds for c in ruled}
    start = (journey.start_id, tuple(caps[c] for c in ruled))
    seen: set[tuple[str, tuple[int, ...]]] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        sid, clocks = node
        step = journey.step(sid)
        if isinstance(step, Send) and step.channel in caps:
            i = ruled.index(step.channel)
            if clocks[i] < caps[step.channel]:
                raise JourneyError(
                    f"Journey({journey.id!r}) step {sid!r}: two sends on {step.channel!r} can "
                    f"be only {clocks[i]}s apart (channel rule: at least "
                    f"{caps[step.channel]}s)"
                )
            clocks = tuple(0 if j == i else v for j, v in enumerate(clocks))
        for target, secs in _edges(step):
            nxt = tuple(min(caps[c], v + secs) for c, v in zip(ruled, clocks, strict=True))
            stack.append((target, nxt))


def validate(journey: Journey, *, channel_rules: Mapping[str, ChannelRule] | None = None) -> None:
    """Check a journey's graph.

    Refuses: a target naming no step; a step no path from the start reaches; a cycle with no
    wait step on it (it would spin forever at one instant); a send without content for some
    variant; a send breaking a :class:`ChannelRule` (missing payload keys, too little wait
    between two sends on one channel).

    Raises:
        JourneyError: naming the journey, the step and the rule.
    """
    if not isinstance(journey, Journey):
        raise JourneyError(f"validate() needs a Journey, got {type(journey).__name__}")
    ids = {s.id for s in journey.steps}
    for s in journey.steps:
        for t in successors(s):
            if t not in ids:
                raise JourneyError(
                    f"Journey({journey.id!r}) step {s.id!r} goes to {t!r}, which is not a step"
                )
    reached: set[str] = set()
    todo = [journey.start_id]
    while todo:
        sid = todo.pop()
        if sid in reached:
            continue
        reached.add(sid)
        todo.extend(successors(journey.step(sid)))
    unreachable = [s.id for s in journey.steps if s.id not in reached]
    if unreachable:
        raise JourneyError(
            f"Journey({journey.id!r}) has unreachable steps {unreachable} (no path from "
            f"{journey.start_id!r})"
        )
    # cycles through non-wait steps only: DFS colouring on the sub-graph without waits
    instant = {s.id: s for s in journey.steps if not isinstance(s, WAIT_TYPES)}
    colour: dict[str, int] = {}

    def visit(sid: str, path: list[str]) -> None:
        colour[sid] = 1
        for t in successors(instant[sid]):
            if t not in instant:
                continue
            if colour.get(t) == 1:
                loop = [*path[path.index(t) :], t] if t in path else [sid, t]
                raise JourneyError(
                    f"Journey({journey.id!r}) has a loop with no wait: {' -> '.join(loop)}"
                )
            if t not in colour:
                visit(t, [*path, t])
        colour[sid] = 2

    for sid in instant:
        if sid not in colour:
            visit(sid, [sid])
    rules = dict(channel_rules or {})
    for s in journey.steps:
        if not isinstance(s, Send):
            continue
        for v in journey.variants:
            payload = s.payload_for(v.name)
            rule = rules.get(s.channel)
            if rule is not None:
                missing = [k for k in rule.required_keys if k not in payload]
                if missing:
                    raise JourneyError(
                        f"Journey({journey.id!r}) step {s.id!r} variant {v.name!r}: payload "
                        f"lacks {missing} required by channel {s.channel!r}"
                    )
    _check_gaps(journey, rules)

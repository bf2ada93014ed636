"""Journeys (SOP): event-triggered multi-step automations, as pure values.

A :class:`Journey` has an entry trigger, steps (wait, wait-until a time of day, wait for an
event, branch by segment, send, grant, tag, staff task, exit), a goal, re-entry rules, a
holdout and A/B variants. :func:`validate` checks its graph; :func:`replay` computes where a
member is — a pure function of (journey version, events, time) — and which side effects are
due, each with a stable ledger key. The durable runner is :mod:`membermkt.engine.journeys`.
"""

from __future__ import annotations

from membermkt.core.journeys._json import journey_from_json, journey_to_json
from membermkt.core.journeys._model import (
    Branch,
    EventTrigger,
    Exit,
    Goal,
    Grant,
    Journey,
    Reentry,
    ScheduleTrigger,
    SegmentTrigger,
    Send,
    StaffTask,
    Step,
    Tag,
    Trigger,
    Variant,
    Wait,
    WaitForEvent,
    WaitUntil,
    successors,
)
from membermkt.core.journeys._replay import (
    Effect,
    EntryState,
    MemberJourney,
    Resume,
    effect_key,
    pick,
    replay,
)
from membermkt.core.journeys._report import JourneyReport, Simulation, journey_report, simulate
from membermkt.core.journeys._validate import ChannelRule, validate

__all__ = [
    "Branch",
    "ChannelRule",
    "Effect",
    "EntryState",
    "EventTrigger",
    "Exit",
    "Goal",
    "Grant",
    "Journey",
    "JourneyReport",
    "MemberJourney",
    "Reentry",
    "Resume",
    "ScheduleTrigger",
    "SegmentTrigger",
    "Send",
    "Simulation",
    "StaffTask",
    "Step",
    "Tag",
    "Trigger",
    "Variant",
    "Wait",
    "WaitForEvent",
    "WaitUntil",
    "effect_key",
    "journey_from_json",
    "journey_report",
    "journey_to_json",
    "pick",
    "replay",
    "simulate",
    "successors",
    "validate",
]

"""The versioned JSON form of a journey (round-trips: ``from_json(j.to_json()) == j``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

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
)
from membermkt.core.segments import Segment
from membermkt.errors import JourneyError, MembermktError

__all__ = ["JSON_VERSION", "journey_from_json", "journey_to_json"]

JSON_VERSION: Final = 1


def _dt(v: dt.datetime) -> str:
    return v.astimezone(dt.UTC).isoformat()


def _trigger_to_json(t: Trigger) -> dict[str, Any]:
    if isinstance(t, EventTrigger):
        return {"kind": "event", "type": t.type, "where": dict(t.where)}
    if isinstance(t, SegmentTrigger):
        return {"kind": "segment", "segment": t.segment.to_json()}
    return {"kind": "schedule", "at": [_dt(x) for x in t.at], "segment": t.segment.to_json()}


def _step_to_json(s: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": s.kind, "id": s.id}
    if isinstance(s, Wait):
        out.update(seconds=s.seconds, next=s.next)
    elif isinstance(s, WaitUntil):
        out.update(
            time=s.time,
            next=s.next,
            offset_attribute=s.offset_attribute,
            default_offset_minutes=s.default_offset_minutes,
        )
    elif isinstance(s, WaitForEvent):
        out.update(
            type=s.type,
            where=dict(s.where),
            timeout_seconds=s.timeout_seconds,
            on_event=s.on_event,
            on_timeout=s.on_timeout,
        )
    elif isinstance(s, Branch):
        out.update(segment=s.segment.to_json(), then=s.then, otherwise=s.otherwise)
    elif isinstance(s, Send):
        out.update(
            channel=s.channel,
            content={k: dict(v) for k, v in s.content.items()},
            next=s.next,
        )
    elif isinstance(s, Grant):
        out.update(benefit=s.benefit, channel=s.channel, next=s.next)
    elif isinstance(s, Tag):
        out.update(tag=s.tag, remove=s.remove, next=s.next)
    elif isinstance(s, StaffTask):
        out.update(title=s.title, script=s.script, channel=s.channel, next=s.next)
    else:
        out.update(reason=s.reason)
    return out


def journey_to_json(j: Journey) -> dict[str, Any]:
    """The JSON form (plain dicts/lists/strings/numbers) with ``"format": 1`` at the root."""
    return {
        "format": JSON_VERSION,
        "id": j.id,
        "version": j.version,
        "name": j.name,
        "trigger": _trigger_to_json(j.trigger),
        "start": j.start,
        "steps": [_step_to_json(s) for s in j.steps],
        "goal": None if j.goal is None else {"type": j.goal.type, "where": dict(j.goal.where)},
        "reentry": {
            "mode": j.reentry.mode,
            "cooldown_seconds": j.reentry.cooldown_seconds,
            "max_entries": j.reentry.max_entries,
        },
        "holdout_percent": j.holdout_percent,
        "variants": [{"name": v.name, "weight": v.weight} for v in j.variants],
        "migrations": {str(k): dict(v) for k, v in j.migrations.items()},
    }


def _obj(v: object, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise JourneyError(f"{path}: expected an object, got {type(v).__name__}")
    return v


def _keys(o: dict[str, Any], path: str, allowed: set[str], required: set[str]) -> None:
    extra = sorted(set(o) - allowed)
    if extra:
        raise JourneyError(f"{path}: unknown keys {extra}")
    missing = sorted(required - set(o))
    if missing:
        raise JourneyError(f"{path}: missing keys {missing}")


def _segment(v: object, path: str) -> Segment:
    try:
        return Segment.from_json(v)
    except MembermktError as exc:
        raise JourneyError(f"{path}: {exc}") from exc


def _time(v: object, path: str) -> dt.datetime:
    if not isinstance(v, str):
        raise JourneyError(f"{path}: expected an ISO datetime string, got {v!r}")
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError as exc:
        raise JourneyError(f"{path}: not an ISO datetime: {v!r}") from exc
    if t.utcoffset() is None:
        raise JourneyError(f"{path}: datetime needs a UTC offset: {v!r}")
    return t


def _trigger(v: object, path: str) -> Trigger:
    o = _obj(v, path)
    kind = o.get("kind")
    if kind == "event":
        _keys(o, path, {"kind", "type", "where"}, {"kind", "type"})
        return EventTrigger(o["type"], o.get("where", {}))
    if kind == "segment":
        _keys(o, path, {"kind", "segment"}, {"kind", "segment"})
        return SegmentTrigger(_segment(o["segment"], f"{path}.segment"))
    if kind == "schedule":
        _keys(o, path, {"kind", "at", "segment"}, {"kind", "at", "segment"})
        at = o["at"]
        if not isinstance(at, list):
            raise JourneyError(f"{path}.at: expected a list of datetimes")
        return ScheduleTrigger(
            [_time(x, f"{path}.at[{i}]") for i, x in enumerate(at)],
            _segment(o["segment"], f"{path}.segment"),
        )
    raise JourneyError(f"{path}.kind must be 'event', 'segment' or 'schedule', got {kind!r}")


_STEP_KEYS: Final[dict[str, tuple[set[str], set[str]]]] = {
    "wait": ({"seconds", "next"}, {"seconds"}),
    "wait_until": (
        {"time", "next", "offset_attribute", "default_offset_minutes"},
        {"time"},
    ),
    "wait_event": (
        {"type", "where", "timeout_seconds", "on_event", "on_timeout"},
        {"type", "timeout_seconds"},
    ),
    "branch": ({"segment", "then", "otherwise"}, {"segment"}),
    "send": ({"channel", "content", "next"}, {"channel", "content"}),
    "grant": ({"benefit", "channel", "next"}, {"benefit"}),
    "tag": ({"tag", "remove", "next"}, {"tag"}),
    "staff_task": ({"title", "script", "channel", "next"}, {"title", "script"}),
    "exit": ({"reason"}, set()),
}

_BUILD: Final[dict[str, Callable[[dict[str, Any], str], Step]]] = {
    "wait": lambda o, p: Wait(o["id"], o["seconds"], o.get("next")),
    "wait_until": lambda o, p: WaitUntil(
        o["id"],
        o["time"],
        o.get("next"),
        o.get("offset_attribute", "utc_offset_minutes"),
        o.get("default_offset_minutes", 480),
    ),
    "wait_event": lambda o, p: WaitForEvent(
        o["id"],
        o["type"],
        o["timeout_seconds"],
        o.get("on_event"),
        o.get("on_timeout"),
        o.get("where", {}),
    ),
    "branch": lambda o, p: Branch(
        o["id"], _segment(o["segment"], f"{p}.segment"), o.get("then"), o.get("otherwise")
    ),
    "send": lambda o, p: Send(o["id"], o["channel"], o["content"], o.get("next")),
    "grant": lambda o, p: Grant(
        o["id"], o["benefit"], o.get("next"), o.get("channel", "journey.grant")
    ),
    "tag": lambda o, p: Tag(o["id"], o["tag"], o.get("next"), bool(o.get("remove", False))),
    "staff_task": lambda o, p: StaffTask(
        o["id"], o["title"], o["script"], o.get("next"), o.get("channel", "wecom.mass")
    ),
    "exit": lambda o, p: Exit(o["id"], o.get("reason", "done")),
}


def _step(v: object, path: str) -> Step:
    o = _obj(v, path)
    kind = o.get("kind")
    if kind not in _STEP_KEYS:
        raise JourneyError(f"{path}.kind must be one of {sorted(_STEP_KEYS)}, got {kind!r}")
    allowed, required = _STEP_KEYS[kind]
    _keys(o, path, allowed | {"kind", "id"}, required | {"kind", "id"})
    try:
        return _BUILD[kind](o, path)
    except JourneyError as exc:
        raise JourneyError(f"{path}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise JourneyError(f"{path}: {exc}") from exc


def journey_from_json(obj: object) -> Journey:
    """Parse the JSON form (a dict or a JSON string).

    Raises:
        JourneyError: naming the path of the first problem.
    """
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise JourneyError(f"journey JSON does not parse: {exc}") from exc
    o = _obj(obj, "journey")
    _keys(
        o,
        "journey",
        {
            "format",
            "id",
            "version",
            "name",
            "trigger",
            "start",
            "steps",
            "goal",
            "reentry",
            "holdout_percent",
            "variants",
            "migrations",
        },
        {"format", "id", "version", "trigger", "steps"},
    )
    if o["format"] != JSON_VERSION:
        raise JourneyError(f"journey.format must be {JSON_VERSION}, got {o['format']!r}")
    steps = o["steps"]
    if not isinstance(steps, list):
        raise JourneyError("journey.steps: expected a list")
    goal: Goal | None = None
    if o.get("goal") is not None:
        g = _obj(o["goal"], "journey.goal")
        _keys(g, "journey.goal", {"type", "where"}, {"type"})
        goal = Goal(g["type"], g.get("where", {}))
    r = _obj(o.get("reentry", {}), "journey.reentry")
    _keys(r, "journey.reentry", {"mode", "cooldown_seconds", "max_entries"}, set())
    variants_raw = o.get("variants", [{"name": "default", "weight": 1}])
    if not isinstance(variants_raw, list):
        raise JourneyError("journey.variants: expected a list")
    variants = []
    for i, v in enumerate(variants_raw):
        vo = _obj(v, f"journey.variants[{i}]")
        _keys(vo, f"journey.variants[{i}]", {"name", "weight"}, {"name"})
        variants.append(Variant(vo["name"], vo.get("weight", 1)))
    migrations_raw: Mapping[str, Any] = _obj(o.get("migrations", {}), "journey.migrations")
    migrations: dict[int, dict[str, str]] = {}
    for k, m in migrations_raw.items():
        if not k.isdigit():
            raise JourneyError(f"journey.migrations: key {k!r} is not a version number")
        mm = _obj(m, f"journey.migrations[{k}]")
        if not all(isinstance(a, str) and isinstance(b, str) for a, b in mm.items()):
            raise JourneyError(f"journey.migrations[{k}]: expected step id -> step id strings")
        migrations[int(k)] = dict(mm)
    return Journey(
        id=o["id"],
        version=o["version"],
        name=o.get("name", ""),
        trigger=_trigger(o["trigger"], "journey.trigger"),
        start=o.get("start"),
        steps=[_step(s, f"journey.steps[{i}]") for i, s in enumerate(steps)],
        goal=goal,
        reentry=Reentry(r.get("mode", "never"), r.get("cooldown_seconds", 0), r.get("max_entries")),
        holdout_percent=o.get("holdout_percent", 0),
        variants=variants,
        migrations=migrations,
    )

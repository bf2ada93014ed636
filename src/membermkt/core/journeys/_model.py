"""The journey model: triggers, steps, goal, re-entry, holdout and variants (pure values)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from membermkt.core._frozen import FrozenMap, Scalar, check_scalar
from membermkt.core.segments import Segment
from membermkt.errors import JourneyError

__all__ = [
    "Branch",
    "EventTrigger",
    "Exit",
    "Goal",
    "Grant",
    "Journey",
    "Reentry",
    "ScheduleTrigger",
    "SegmentTrigger",
    "Send",
    "StaffTask",
    "Step",
    "Tag",
    "Trigger",
    "Variant",
    "Wait",
    "WaitForEvent",
    "WaitUntil",
]

_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_TIME_RE: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _check_id(owner: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not _ID_RE.match(value):
            raise JourneyError(
                f"{owner}.{attribute.name} must be 1-64 chars of letters, digits, _ . : - "
                f"(starting with a letter or digit), got {value!r}"
            )

    return check


def _check_opt_id(owner: str) -> Any:
    inner = _check_id(owner)

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            inner(instance, attribute, value)

    return check


def _check_seconds(owner: str, *, positive: bool = True) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
            raise JourneyError(
                f"{owner}.{attribute.name} must be an int of seconds "
                f"{'>= 1' if positive else '>= 0'}, got {value!r}"
            )

    return check


def _check_segment(owner: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, Segment):
            raise JourneyError(f"{owner}.{attribute.name} must be a Segment, got {value!r}")

    return check


def _to_where(value: Mapping[str, Scalar]) -> FrozenMap[str, Scalar]:
    if not isinstance(value, Mapping):
        raise JourneyError(f"'where' must be a mapping of property -> value, got {value!r}")
    try:
        for k, v in value.items():
            check_scalar("where", k, v)
    except ValueError as exc:
        raise JourneyError(str(exc)) from exc
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def _to_payload(value: Mapping[str, Any]) -> FrozenMap[str, Any]:
    if not isinstance(value, Mapping):
        raise JourneyError(f"step content must be a mapping, got {type(value).__name__}")
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def _check_event_type(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise JourneyError(f"{attribute.name} must be an event type (1-64 chars), got {value!r}")


def _aware(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise JourneyError(f"{attribute.name} must be a timezone-aware datetime, got {value!r}")


# --------------------------------------------------------------------------- triggers


@attrs.frozen(slots=True)
class EventTrigger:
    """Enter when the member has an event of ``type`` whose properties include ``where``."""

    type: str = attrs.field(validator=_check_event_type)
    where: FrozenMap[str, Scalar] = attrs.field(factory=FrozenMap, converter=_to_where)


@attrs.frozen(slots=True)
class SegmentTrigger:
    """Enter when the member enters ``segment``, checked at the time of each of their events
    (a member already inside at their first event enters then; a segment that changes with
    time alone, like "inactive 30 days", is noticed at the member's next event — use a
    :class:`ScheduleTrigger` for those)."""

    segment: Segment = attrs.field(validator=_check_segment("SegmentTrigger"))


def _to_times(value: Iterable[dt.datetime]) -> tuple[dt.datetime, ...]:
    out = tuple(value)
    for t in out:
        if not isinstance(t, dt.datetime) or t.utcoffset() is None:
            raise JourneyError(f"ScheduleTrigger.at needs timezone-aware datetimes, got {t!r}")
    if not out:
        raise JourneyError("ScheduleTrigger.at needs at least one time")
    return tuple(sorted(t.astimezone(dt.UTC) for t in out))


@attrs.frozen(slots=True)
class ScheduleTrigger:
    """Enter, at each of the times ``at``, every member who is in ``segment`` then."""

    at: tuple[dt.datetime, ...] = attrs.field(converter=_to_times)
    segment: Segment = attrs.field(validator=_check_segment("ScheduleTrigger"))


Trigger = EventTrigger | SegmentTrigger | ScheduleTrigger


@attrs.frozen(slots=True)
class Goal:
    """The conversion: an event of ``type`` with properties ``where`` after entry ends the
    member's journey early (outcome ``"goal"``)."""

    type: str = attrs.field(validator=_check_event_type)
    where: FrozenMap[str, Scalar] = attrs.field(factory=FrozenMap, converter=_to_where)


_REENTRY_MODES: Final = ("never", "after_exit", "always")


@attrs.frozen(slots=True)
class Reentry:
    """Whether a member may enter again.

    ``mode``: ``"never"`` (one entry per member, ever), ``"after_exit"`` (again once the
    previous entry has ended), ``"always"`` (every trigger starts an entry, even while one is
    running). ``cooldown_seconds``: at least this long between two entries' start times.
    ``max_entries``: at most this many entries (``None``: unbounded).
    """

    mode: str = "never"
    cooldown_seconds: int = attrs.field(
        default=0, validator=_check_seconds("Reentry", positive=False)
    )
    max_entries: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.mode not in _REENTRY_MODES:
            raise JourneyError(f"Reentry.mode must be one of {_REENTRY_MODES}, got {self.mode!r}")
        if self.max_entries is not None and (
            isinstance(self.max_entries, bool)
            or not isinstance(self.max_entries, int)
            or self.max_entries < 1
        ):
            raise JourneyError(
                f"Reentry.max_entries must be None or >= 1, got {self.max_entries!r}"
            )


@attrs.frozen(slots=True)
class Variant:
    """An A/B arm: ``weight`` (> 0) relative to the other variants."""

    name: str = attrs.field(validator=_check_id("Variant"))
    weight: int = attrs.field(default=1, validator=_check_seconds("Variant"))


# --------------------------------------------------------------------------- steps


@attrs.frozen(slots=True)
class Wait:
    """Wait ``seconds``, then go to ``next``."""

    id: str = attrs.field(validator=_check_id("Wait"))
    seconds: int = attrs.field(validator=_check_seconds("Wait"))
    next: str | None = attrs.field(default=None, validator=_check_opt_id("Wait"))
    kind = "wait"


@attrs.frozen(slots=True)
class WaitUntil:
    """Wait until the next ``time`` (``"HH:MM"``) of day in the member's zone, then go on.

    The zone is a fixed UTC offset in minutes, read from the member attribute
    ``offset_attribute`` when it holds an int, else ``default_offset_minutes`` (480 =
    China Standard Time, which has no daylight saving). A time exactly now counts as reached.
    """

    id: str = attrs.field(validator=_check_id("WaitUntil"))
    time: str = attrs.field()
    next: str | None = attrs.field(default=None, validator=_check_opt_id("WaitUntil"))
    offset_attribute: str = "utc_offset_minutes"
    default_offset_minutes: int = 480
    kind = "wait_until"

    @time.validator
    def _check_time(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not _TIME_RE.match(value):
            raise JourneyError(f"WaitUntil({self.id!r}).time must be 'HH:MM', got {value!r}")

    def __attrs_post_init__(self) -> None:
        if not -14 * 60 <= self.default_offset_minutes <= 14 * 60:
            raise JourneyError(
                f"WaitUntil({self.id!r}).default_offset_minutes must be within ±840, got "
                f"{self.default_offset_minutes!r}"
            )


@attrs.frozen(slots=True)
class WaitForEvent:
    """Wait for an event of ``type`` (properties ``where``) for at most ``timeout_seconds``:
    go to ``on_event`` when it happens, to ``on_timeout`` otherwise."""

    id: str = attrs.field(validator=_check_id("WaitForEvent"))
    type: str = attrs.field(validator=_check_event_type)
    timeout_seconds: int = attrs.field(validator=_check_seconds("WaitForEvent"))
    on_event: str | None = attrs.field(default=None, validator=_check_opt_id("WaitForEvent"))
    on_timeout: str | None = attrs.field(default=None, validator=_check_opt_id("WaitForEvent"))
    where: FrozenMap[str, Scalar] = attrs.field(factory=FrozenMap, converter=_to_where)
    kind = "wait_event"


@attrs.frozen(slots=True)
class Branch:
    """Go to ``then`` when the member is in ``segment`` at that moment, else to ``otherwise``."""

    id: str = attrs.field(validator=_check_id("Branch"))
    segment: Segment = attrs.field(validator=_check_segment("Branch"))
    then: str | None = attrs.field(default=None, validator=_check_opt_id("Branch"))
    otherwise: str | None = attrs.field(default=None, validator=_check_opt_id("Branch"))
    kind = "branch"


def _to_content(value: Mapping[str, Mapping[str, Any]]) -> FrozenMap[str, FrozenMap[str, Any]]:
    if not isinstance(value, Mapping) or not value:
        raise JourneyError("Send.content must be a non-empty mapping variant -> payload")
    return FrozenMap({str(k): _to_payload(v) for k, v in value.items()})


@attrs.frozen(slots=True)
class Send:
    """Send a message through ``channel``; ``content`` maps variant name → payload (the
    variant ``"default"`` serves every variant without its own entry)."""

    id: str = attrs.field(validator=_check_id("Send"))
    channel: str = attrs.field(validator=_check_id("Send"))
    content: FrozenMap[str, FrozenMap[str, Any]] = attrs.field(converter=_to_content)
    next: str | None = attrs.field(default=None, validator=_check_opt_id("Send"))
    kind = "send"

    def payload_for(self, variant: str) -> FrozenMap[str, Any]:
        """The payload of ``variant`` (or of ``"default"``).

        Raises:
            JourneyError: when neither exists.
        """
        if variant in self.content:
            return self.content[variant]
        if "default" in self.content:
            return self.content["default"]
        raise JourneyError(f"Send({self.id!r}) has no content for variant {variant!r}")


@attrs.frozen(slots=True)
class Grant:
    """Grant a coupon or entitlement: ``benefit`` names it (a coupon stock id, an
    entitlement code); delivered through the ledger on channel ``channel``."""

    id: str = attrs.field(validator=_check_id("Grant"))
    benefit: str = attrs.field(validator=_check_id("Grant"))
    next: str | None = attrs.field(default=None, validator=_check_opt_id("Grant"))
    channel: str = attrs.field(default="journey.grant", validator=_check_id("Grant"))
    kind = "grant"


@attrs.frozen(slots=True)
class Tag:
    """Add (or, with ``remove``, remove) a member tag."""

    id: str = attrs.field(validator=_check_id("Tag"))
    tag: str = attrs.field(validator=_check_id("Tag"))
    next: str | None = attrs.field(default=None, validator=_check_opt_id("Tag"))
    remove: bool = False
    kind = "tag"


@attrs.frozen(slots=True)
class StaffTask:
    """Ask the staff who owns the member's WeCom relation to act (SOP): ``title`` and a
    suggested ``script`` to send, delivered on ``channel`` (default ``"wecom.mass"``: an
    ``add_msg_template`` task for that staff member, who confirms it in WeCom). The engine
    sets the payload's ``sender`` to the owner staff (their latest ``contact_added`` not
    deleted since) and ``text`` to the script."""

    id: str = attrs.field(validator=_check_id("StaffTask"))
    title: str = attrs.field()
    script: str = attrs.field()
    next: str | None = attrs.field(default=None, validator=_check_opt_id("StaffTask"))
    channel: str = attrs.field(default="wecom.mass", validator=_check_id("StaffTask"))
    kind = "staff_task"

    def __attrs_post_init__(self) -> None:
        for name in ("title", "script"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise JourneyError(f"StaffTask({self.id!r}).{name} must be non-empty text")


@attrs.frozen(slots=True)
class Exit:
    """End the member's journey here with outcome ``"exit:<reason>"``."""

    id: str = attrs.field(validator=_check_id("Exit"))
    reason: str = attrs.field(default="done", validator=_check_id("Exit"))
    kind = "exit"


Step = Wait | WaitUntil | WaitForEvent | Branch | Send | Grant | Tag | StaffTask | Exit

STEP_TYPES: Final = (Wait, WaitUntil, WaitForEvent, Branch, Send, Grant, Tag, StaffTask, Exit)
WAIT_TYPES: Final = (Wait, WaitUntil, WaitForEvent)
EFFECT_TYPES: Final = (Send, Grant, Tag, StaffTask)


def successors(step: Step) -> tuple[str, ...]:
    """The step ids a step can go to (``None`` targets — the end — left out)."""
    if isinstance(step, WaitForEvent):
        targets: tuple[str | None, ...] = (step.on_event, step.on_timeout)
    elif isinstance(step, Branch):
        targets = (step.then, step.otherwise)
    elif isinstance(step, Exit):
        targets = ()
    else:
        targets = (step.next,)
    return tuple(t for t in targets if t is not None)


# --------------------------------------------------------------------------- journey


def _to_steps(value: Iterable[Step]) -> tuple[Step, ...]:
    out = tuple(value)
    for s in out:
        if not isinstance(s, STEP_TYPES):
            raise JourneyError(f"a journey step must be one of the step classes, got {s!r}")
    return out


def _to_variants(value: Iterable[Variant]) -> tuple[Variant, ...]:
    out = tuple(value)
    for v in out:
        if not isinstance(v, Variant):
            raise JourneyError(f"variants must be Variant values, got {v!r}")
    return out


def _to_migrations(value: Mapping[int, Mapping[str, str]]) -> FrozenMap[int, FrozenMap[str, str]]:
    if not isinstance(value, Mapping):
        raise JourneyError(f"Journey.migrations must be a mapping, got {value!r}")
    out: dict[int, FrozenMap[str, str]] = {}
    for k, v in value.items():
        if not isinstance(v, Mapping):
            raise JourneyError(f"Journey.migrations[{k!r}] must map step id -> step id")
        out[k] = FrozenMap(v)
    return FrozenMap(out)


@attrs.frozen(slots=True)
class Journey:
    """An event-triggered multi-step automation (a "canvas", an "SOP").

    Args:
        id: the journey id (stable across versions).
        version: an int >= 1; bump it on every edit (effect keys include it).
        trigger: :class:`EventTrigger`, :class:`SegmentTrigger` or :class:`ScheduleTrigger`.
        steps: the steps; ``start`` (default: the first) runs at entry.
        goal: the conversion event that ends an entry early (``None``: none).
        reentry: :class:`Reentry` rules.
        holdout_percent: 0-50: that share of entries (chosen by a stable hash of journey,
            member and entry) goes through the journey without any side effect — the
            control group for lift.
        variants: A/B arms (default one arm ``"default"``), chosen by a stable hash.
        migrations: ``{old_version: {old_step_id: new_step_id}}``: how entries still running
            under an older version move to this one (see docs/journeys.md; an old version
            not listed keeps running its own definition).
        name: a human name.

    Construction checks field types only; call :meth:`validate` (or
    :func:`membermkt.core.journeys.validate`) for the graph rules.

    Raises:
        JourneyError: naming the invalid field.
    """

    id: str = attrs.field(validator=_check_id("Journey"))
    version: int = attrs.field(validator=_check_seconds("Journey"))
    trigger: Trigger = attrs.field()
    steps: tuple[Step, ...] = attrs.field(converter=_to_steps)
    goal: Goal | None = None
    reentry: Reentry = Reentry()
    holdout_percent: int = 0
    variants: tuple[Variant, ...] = attrs.field(
        default=(Variant("default"),), converter=_to_variants
    )
    start: str | None = None
    migrations: FrozenMap[int, FrozenMap[str, str]] = attrs.field(
        factory=FrozenMap,
        converter=_to_migrations,
    )
    name: str = ""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.trigger, EventTrigger | SegmentTrigger | ScheduleTrigger):
            raise JourneyError(
                f"Journey({self.id!r}).trigger must be a trigger, got {self.trigger!r}"
            )
        if not self.steps:
            raise JourneyError(f"Journey({self.id!r}) needs at least one step")
        if self.goal is not None and not isinstance(self.goal, Goal):
            raise JourneyError(f"Journey({self.id!r}).goal must be a Goal or None")
        if not isinstance(self.reentry, Reentry):
            raise JourneyError(f"Journey({self.id!r}).reentry must be a Reentry")
        if (
            isinstance(self.holdout_percent, bool)
            or not isinstance(self.holdout_percent, int)
            or not 0 <= self.holdout_percent <= 50
        ):
            raise JourneyError(
                f"Journey({self.id!r}).holdout_percent must be an int 0..50, got "
                f"{self.holdout_percent!r}"
            )
        if not self.variants:
            raise JourneyError(f"Journey({self.id!r}) needs at least one variant")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise JourneyError(f"Journey({self.id!r}) has duplicate variant names {names}")
        ids = [s.id for s in self.steps]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise JourneyError(f"Journey({self.id!r}) has duplicate step ids {dup}")
        if self.start is not None and self.start not in ids:
            raise JourneyError(f"Journey({self.id!r}).start {self.start!r} is not a step id")
        for old, mapping in self.migrations.items():
            if isinstance(old, bool) or not isinstance(old, int) or not 1 <= old < self.version:
                raise JourneyError(
                    f"Journey({self.id!r}).migrations: {old!r} is not an older version"
                )
            for src, dst in mapping.items():
                if dst not in ids:
                    raise JourneyError(
                        f"Journey({self.id!r}).migrations[{old}]: {src!r} -> {dst!r}, and "
                        f"{dst!r} is not a step of version {self.version}"
                    )

    @property
    def start_id(self) -> str:
        """The first step's id."""
        return self.start if self.start is not None else self.steps[0].id

    def step(self, step_id: str) -> Step:
        """The step with that id.

        Raises:
            JourneyError: for an unknown id.
        """
        for s in self.steps:
            if s.id == step_id:
                return s
        raise JourneyError(f"Journey({self.id!r}) v{self.version} has no step {step_id!r}")

    def validate(self, channel_rules: Mapping[str, Any] | None = None) -> None:
        """Check the graph (see :func:`membermkt.core.journeys.validate`)."""
        from membermkt.core.journeys._validate import validate

        validate(self, channel_rules=channel_rules)

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form (see :mod:`membermkt.core.journeys._json`)."""
        from membermkt.core.journeys._json import journey_to_json

        return journey_to_json(self)

    @staticmethod
    def from_json(obj: object) -> Journey:
        """Parse the JSON form (a dict or a JSON string).

        Raises:
            JourneyError: naming the path of the first problem.
        """
        from membermkt.core.journeys._json import journey_from_json

        return journey_from_json(obj)

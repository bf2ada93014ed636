"""Per-member journey progress: the durable rows the engine works from.

One :class:`MemberProgress` row per (journey, member): the version epochs the member has run
under and ``due_at``, the next time the engine must look at the member (a timer; ``None``:
only a new event can change anything). One :class:`EntryRow` per entry, rewritten after each
look, for reports. :class:`InMemoryJourneyProgress` keeps them in memory;
:class:`~membermkt.engine.journeys.SqlJourneyProgress` in SQL tables next to a ``SqlStore``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from membermkt.core.journeys import EntryState, Resume
from membermkt.errors import UsageError

__all__ = [
    "EntryRow",
    "Epoch",
    "InMemoryJourneyProgress",
    "JourneyProgress",
    "MemberProgress",
    "epochs_from_json",
    "epochs_to_json",
]


@attrs.frozen(slots=True, kw_only=True)
class Epoch:
    """A stretch of a member's time in a journey run under one version.

    Attributes:
        version: the journey version.
        since: only triggers after this time start entries (``None``: from the beginning).
        until: only triggers up to this time (``None``: open).
        first_entry: the number of the first new entry.
        frozen_at: the epoch's entries stop at this time (they were migrated to a newer
            version); ``None``: they run to their end under this version.
        resume: entries carried over from the previous epoch.
    """

    version: int
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    first_entry: int = 0
    frozen_at: dt.datetime | None = None
    resume: tuple[Resume, ...] = ()


@attrs.frozen(slots=True, kw_only=True)
class MemberProgress:
    """A member's progress row in one journey."""

    journey_id: str
    member_id: str
    epochs: tuple[Epoch, ...]
    due_at: dt.datetime | None
    attempts: int = 0


@attrs.frozen(slots=True, kw_only=True)
class EntryRow:
    """One entry as last computed (what reports read)."""

    journey_id: str
    member_id: str
    version: int
    state: EntryState


def _t(v: dt.datetime | None) -> str | None:
    return None if v is None else v.astimezone(dt.UTC).isoformat()


def _p(v: Any) -> dt.datetime | None:
    return None if v is None else dt.datetime.fromisoformat(v)


def epochs_to_json(epochs: Sequence[Epoch]) -> str:
    """Serialise epochs (the SQL store keeps them as text)."""
    return json.dumps(
        [
            {
                "v": e.version,
                "since": _t(e.since),
                "until": _t(e.until),
                "first": e.first_entry,
                "frozen": _t(e.frozen_at),
                "resume": [[r.entry, _t(r.entered_at), r.step, _t(r.at)] for r in e.resume],
            }
            for e in epochs
        ],
        separators=(",", ":"),
    )


def epochs_from_json(text: str) -> tuple[Epoch, ...]:
    """Parse :func:`epochs_to_json` output.

    Raises:
        UsageError: for text that is not an epoch list.
    """
    try:
        raw = json.loads(text)
        out = []
        for e in raw:
            resume = []
            for entry, entered, step, at in e["resume"]:
                ea, aa = _p(entered), _p(at)
                if ea is None or aa is None:
                    raise ValueError("a resumed entry needs its times")
                resume.append(Resume(entry=entry, entered_at=ea, step=step, at=aa))
            out.append(
                Epoch(
                    version=e["v"],
                    since=_p(e["since"]),
                    until=_p(e["until"]),
                    first_entry=e["first"],
                    frozen_at=_p(e["frozen"]),
                    resume=tuple(resume),
                )
            )
        return tuple(out)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"journey progress epochs are corrupt: {text[:200]!r} ({exc})") from exc


Process = Callable[[list[MemberProgress]], list[tuple[MemberProgress, list[EntryRow]]]]
"""Given the claimed rows, return each row's new value and its entry rows."""


@runtime_checkable
class JourneyProgress(Protocol):
    """Where the engine keeps journey progress (durable timers included)."""

    def wake(
        self, journey_id: str, member_ids: Iterable[str], *, at: dt.datetime, version: int
    ) -> int:
        """Make members due at ``at`` (or earlier if already due): a new row (first epoch at
        ``version``) when the member has none. Returns how many rows were written."""
        ...

    def process_due(
        self, now: dt.datetime, limit: int, fn: Process, *, journey_id: str | None = None
    ) -> int:
        """Claim up to ``limit`` rows due at ``now`` (no other worker gets them meanwhile; a
        crashed worker's claim lapses with its connection), call ``fn`` and store what it
        returns. Returns how many rows were processed."""
        ...

    def get(self, journey_id: str, member_id: str) -> MemberProgress | None:
        """One member's row."""
        ...

    def entries(self, journey_id: str) -> Iterator[EntryRow]:
        """All entry rows of a journey (by member, entry)."""
        ...

    def due_count(self, now: dt.datetime, *, journey_id: str | None = None) -> int:
        """How many rows are due at ``now``."""
        ...


class InMemoryJourneyProgress:
    """:class:`JourneyProgress` in memory (one process; thread-safe)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], MemberProgress] = {}
        self._entries: dict[tuple[str, str], list[EntryRow]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<InMemoryJourneyProgress rows={len(self._rows)}>"

    def wake(
        self, journey_id: str, member_ids: Iterable[str], *, at: dt.datetime, version: int
    ) -> int:
        n = 0
        with self._lock:
            for mid in member_ids:
                row = self._rows.get((journey_id, mid))
                if row is None:
                    row = MemberProgress(
                        journey_id=journey_id,
                        member_id=mid,
                        epochs=(Epoch(version=version),),
                        due_at=at,
                    )
                elif row.due_at is None or row.due_at > at:
                    row = attrs.evolve(row, due_at=at)
                else:
                    continue
                self._rows[(journey_id, mid)] = row
                n += 1
        return n

    def process_due(
        self, now: dt.datetime, limit: int, fn: Process, *, journey_id: str | None = None
    ) -> int:
        with self._lock:
            due = sorted(
                (r for r in self._rows.values() if r.due_at is not None and r.due_at <= now)
                if journey_id is None
                else (
                    r
                    for r in self._rows.values()
                    if r.journey_id == journey_id and r.due_at is not None and r.due_at <= now
                ),
                key=lambda r: (r.due_at or now, r.journey_id, r.member_id),
            )[:limit]
            if not due:
                return 0
            for row, entries in fn(due):
                self._rows[(row.journey_id, row.member_id)] = row
                self._entries[(row.journey_id, row.member_id)] = entries
            return len(due)

    def get(self, journey_id: str, member_id: str) -> MemberProgress | None:
        with self._lock:
            return self._rows.get((journey_id, member_id))

    def entries(self, journey_id: str) -> Iterator[EntryRow]:
        with self._lock:
            keys = sorted(k for k in self._entries if k[0] == journey_id)
            out = [e for k in keys for e in self._entries[k]]
        return iter(out)

    def due_count(self, now: dt.datetime, *, journey_id: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self._rows.values()
                if r.due_at is not None
                and r.due_at <= now
                and (journey_id is None or r.journey_id == journey_id)
            )

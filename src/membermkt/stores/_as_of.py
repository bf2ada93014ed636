"""Members and events as of a past time, for exports (CSV, DataFrame, ``export_sql``).

A store keeps each member's derived state (``Member.state``) as a cache of the fold of all
its events, valid from its last event on (``MemberState.last_event_at``). An export asked
for an earlier ``as_of`` re-folds only the members whose cache is newer than ``as_of``
(:func:`~membermkt.core.events.state_as_of`, reading their events at or before ``as_of``)
and leaves out the events after ``as_of`` — so every store (memory, SQLite, PostgreSQL,
MySQL/MariaDB) exports the same state for the same ``as_of``.

Profile, consent, tags, attributes and identities carry no history: they are exported as
they are now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Protocol

from membermkt.core.events import Event, state_as_of
from membermkt.core.members import Member
from membermkt.stores._common import check_as_of

__all__ = ["AsOfExportable", "events_as_of", "members_as_of"]


class AsOfExportable(Protocol):
    """A store that lists everything it holds and reads one member's events (both
    built-in stores)."""

    def iter_members(self) -> Iterator[Member]: ...

    def iter_events(self) -> Iterator[Event]: ...

    def events_for(self, member_id: str, *, until: dt.datetime | None = None) -> list[Event]: ...


def members_as_of(store: AsOfExportable, as_of: dt.datetime | None) -> Iterator[Member]:
    """Every member of ``store`` with its derived state as of ``as_of`` (``None``: the
    stored state, as of the latest event).

    Raises:
        UsageError: for a naive ``as_of``.
    """
    if as_of is None:
        yield from store.iter_members()
        return
    as_of = check_as_of(as_of)
    for member in store.iter_members():
        last = member.state.last_event_at
        if last is None or last <= as_of:
            yield member
        else:
            yield state_as_of(member, store.events_for(member.id, until=as_of), as_of)


def events_as_of(store: AsOfExportable, as_of: dt.datetime | None) -> Iterator[Event]:
    """Every event of ``store`` at or before ``as_of`` (``None``: every event).

    Raises:
        UsageError: for a naive ``as_of``.
    """
    if as_of is None:
        yield from store.iter_events()
        return
    as_of = check_as_of(as_of)
    for event in store.iter_events():
        if event.at <= as_of:
            yield event

"""One push as one unit of work for :class:`~membermkt.stores.memory.InMemoryStore`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from membermkt.core.events import Event
from membermkt.core.identity import Identity, member_id_for
from membermkt.core.identity._graph import singular_clash
from membermkt.core.members import Member
from membermkt.core.ports import IngestResult
from membermkt.errors import IdentityConflict, UsageError

__all__ = ["MemoryIngest", "check_push_events"]


def check_push_events(events: Iterable[Event], member_id: str) -> tuple[Event, ...]:
    """The events ``make_events`` built, checked: Events of ``member_id`` only.

    Raises:
        UsageError: for a value that is not an Event or an event of another member.
    """
    out = tuple(events)
    for e in out:
        if not isinstance(e, Event):
            raise UsageError(f"ingest_push: make_events must build Event values, got {e!r}")
        if e.member_id != member_id:
            raise UsageError(
                f"ingest_push: an event of member {e.member_id!r} built for {member_id!r}"
            )
    return out


class MemoryIngest:
    """The ``ingest_push`` part of :class:`~membermkt.stores.memory.InMemoryStore`."""

    _lock: threading.RLock
    _members: dict[str, Member]
    _identities: dict[str, str]

    if TYPE_CHECKING:

        def append_events(self, events: Iterable[Event]) -> int: ...  # InMemoryStore's

    def ingest_push(
        self, identity: Identity, make_events: Callable[[str], Iterable[Event]]
    ) -> IngestResult:
        """Resolve, create when new, append — under the store lock, all or nothing (see
        :meth:`membermkt.core.ports.PushIngest.ingest_push`).

        Raises:
            UsageError: for a value that is not an Identity, or bad events.
            IdentityConflict: when the new member id holds another identity of the kind.
        """
        if not isinstance(identity, Identity):
            raise UsageError(f"ingest_push takes an Identity, got {identity!r}")
        with self._lock:
            member_id = self._identities.get(identity.token)
            attached = member_id is None
            if member_id is None:
                member_id = member_id_for(identity)
            events = check_push_events(make_events(member_id), member_id)
            prior = self._members.get(member_id)
            if attached:
                held = () if prior is None else prior.identities
                if singular_clash(held, (identity,)) is not None:
                    raise IdentityConflict(
                        f"member {member_id!r} holds another {identity.kind.value} identity "
                        f"in namespace {identity.namespace!r}; not attaching {identity.token!r}",
                        members=(member_id,),
                    )
                base = prior if prior is not None else Member(member_id)
                self._members[member_id] = attrs.evolve(
                    base, identities=(*base.identities, identity)
                )
                self._identities[identity.token] = member_id
            try:
                new = self.append_events(events)
            except BaseException:
                if attached:  # undo: nothing of this push stays
                    del self._identities[identity.token]
                    if prior is None:
                        self._members.pop(member_id, None)
                    else:
                        self._members[member_id] = prior
                raise
            return IngestResult(
                member_id=member_id,
                events=events,
                new=new,
                attached=attached,
                created=attached and prior is None,
            )

"""Recording one push in a store: ``store.ingest_push`` (one unit of work) when the store
has it, the three separate steps otherwise (a store that only implements the ``Store``
protocol)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from membermkt.core.events import Event
from membermkt.core.identity import Identity, member_id_for
from membermkt.core.members import Member
from membermkt.core.ports import IngestResult

__all__ = ["ingest"]


def ingest(
    store: Any, identity: Identity, make_events: Callable[[str], Iterable[Event]]
) -> IngestResult:
    """Resolve ``identity``, create its member when new, append ``make_events(member_id)``.

    With ``store.ingest_push`` (``InMemoryStore``, ``SqlStore``) this is one transaction;
    a store without it gets ``resolve`` + ``upsert_members`` + ``append_events`` (three,
    not atomic).
    """
    one = getattr(store, "ingest_push", None)
    if one is not None:
        result: IngestResult = one(identity, make_events)
        return result
    member_id = store.resolve(identity)
    attached = member_id is None
    if member_id is None:
        # Deterministic id: two processes seeing the same new follower create one member.
        member_id = member_id_for(identity)
        store.upsert_members([Member(member_id, identities=(identity,))])
    events = tuple(make_events(member_id))
    new = store.append_events(events) if events else 0
    return IngestResult(
        member_id=member_id, events=events, new=new, attached=attached, created=attached
    )

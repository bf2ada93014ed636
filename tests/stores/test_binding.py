"""The binding property: every store selects exactly the members the oracle selects.

For random members, events and segments (every leaf kind, nesting, negation, missing values,
time windows), ``InMemoryStore`` and ``SqlStore`` on SQLite, PostgreSQL and MariaDB return
the same ids as the reference interpreter ``tests/_oracle.py`` — and ``count`` agrees with
``select``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _oracle import interpret
from membermkt.core.events import Event, fold
from membermkt.core.members import Member
from membermkt.core.segments import Segment
from membermkt.stores import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing import strategies as mst

from .conftest import SQL_BACKENDS, make_store

AS_OF = mst.AS_OF


def _expected(members: list[Member], events: list[Event], seg: Segment) -> list[str]:
    out = []
    for m in members:
        evs = [e for e in events if e.member_id == m.id]
        folded = fold(m, evs)
        if interpret(seg, folded, evs, AS_OF):
            out.append(m.id)
    return sorted(out)


def _check(
    store: InMemoryStore | SqlStore, data: tuple[list[Member], list[Event]], segs: list[Segment]
) -> None:
    members, events = data
    store.upsert_members(members)
    # keyed events appended twice: de-duplication keeps the state the fold of kept events
    assert store.append_events(events) == len(events)
    assert store.append_events([e for e in events if e.key is not None]) == 0
    for seg in segs:
        want = _expected(members, events, seg)
        got = list(store.select(seg, AS_OF))
        assert got == want, seg
        assert store.count(seg, AS_OF) == len(want), seg
        assert list(store.select(~seg, AS_OF)) == sorted({m.id for m in members} - set(want)), seg


@given(mst.histories(), st.lists(mst.segments(), min_size=1, max_size=4))
def test_in_memory_store_matches_the_oracle(
    data: tuple[list[Member], list[Event]], segs: list[Segment]
) -> None:
    """InMemoryStore selects what the oracle selects."""
    _check(InMemoryStore(), data, segs)


@pytest.fixture(scope="module", params=SQL_BACKENDS)
def module_store(request: pytest.FixtureRequest) -> Iterator[SqlStore]:
    """One store per backend for the whole module (emptied between examples)."""
    store = make_store(str(request.param))
    yield store
    store.drop_tables()
    store.close()


# Server round trips (a commit per write) dominate: fewer examples per server backend by
# default; the CI profile (HYPOTHESIS_PROFILE / CI) scales them up with its max_examples.
SQL_EXAMPLES = max(10, settings.default.max_examples // 3)


@settings(max_examples=SQL_EXAMPLES)
@given(data=mst.histories(), segs=st.lists(mst.segments(), min_size=2, max_size=5))
def test_sql_store_matches_the_oracle(
    module_store: SqlStore,
    data: tuple[list[Member], list[Event]],
    segs: list[Segment],
) -> None:
    """SqlStore on each backend selects what the oracle selects."""
    module_store.delete_all()
    _check(module_store, data, segs)


def test_startswith_empty_on_a_missing_value_as_of_before_the_first_event(
    module_store: SqlStore,
) -> None:
    """Regression (Hypothesis, SQLite): ``source.startswith("")`` for a member whose only
    event (a follow without a source) is after ``as_of`` — the as-of fold gives no source,
    so the member is not selected; SQLite compiled ``startswith("")`` to a constant TRUE,
    which the fold's ``COALESCE(cmp, FALSE)`` could not turn into "absent"."""
    from membermkt.core.members import Consent
    from membermkt.segments import attr

    module_store.delete_all()
    members = [Member("m00", consent=Consent(marketing=False)), Member("m01")]
    events = [Event(member_id="m00", type="follow", at=AS_OF + mst.HOUR)]
    _check(module_store, (members, events), [attr("source").startswith("")])

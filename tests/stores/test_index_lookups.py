"""On PostgreSQL the lookups of ``prepare``'s read path (members, their identities, the
ledger history) run with sequential scans priced out: with stale statistics — a ledger
growing within one large ``prepare`` — the planner scanned the whole table per 4,000-id
chunk (#18). Checked on the plan PostgreSQL actually picks for a table it was never told
the size of."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from membermkt import Identity, Member
from membermkt.core.delivery import Delivery
from membermkt.stores.sql import SqlStore

from .conftest import POSTGRES_URL, make_store

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set"),
]
NOW = dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def store() -> Iterator[SqlStore]:
    s = make_store("postgresql")
    s.create_schema()
    try:
        yield s
    finally:
        s.drop_tables()
        s.close()


def _statements(store: SqlStore) -> list[str]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    return seen


def test_history_and_member_reads_use_the_indexes_on_a_table_never_analysed(
    store: SqlStore,
) -> None:
    n = 3000
    store.upsert_members(
        Member(f"m{i:05d}", identities=[Identity("openid", f"o{i:05d}", "wx")]) for i in range(n)
    )
    store.record_plan(
        [
            Delivery(
                key=f"k{i}",
                campaign_id="c",
                member_id=f"m{i:05d}",
                channel="wechat.mass",
                address=f"o{i:05d}",
                variant="A",
                payload={"msgtype": "text", "text": {"content": "hi"}},
            )
            for i in range(n)
        ],
        now=NOW,
    )
    seen = _statements(store)
    ids = [f"m{i:05d}" for i in range(0, n, 7)]
    store.past_sends(ids, since=NOW - dt.timedelta(days=1), include_planned=True)
    assert len(store.get_members(ids)) == len(ids)
    history = next(i for i, s in enumerate(seen) if "FROM" in s and "deliveries" in s)
    members = next(i for i, s in enumerate(seen) if "identities" in s and "IN (" in s)
    for at in (history, members):
        before = seen[:at]
        assert any("enable_seqscan = off" in s for s in before), seen[: at + 1]
    # and PostgreSQL follows it: the history query of a never-analysed ledger reads the
    # member index
    t = store.tables.deliveries
    with store.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.exec_driver_sql(
                f"EXPLAIN SELECT member_id FROM {t.name} WHERE member_id IN ('m00001', 'm00002')"
            )
        )
    assert "Index" in plan, plan

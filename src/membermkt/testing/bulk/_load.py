"""Writing a bulk population straight into an empty SQL store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from membermkt.errors import UsageError
from membermkt.stores.sql._codec import STATE_COLS
from membermkt.testing.bulk._model import (
    EVENT_SOURCES,
    STAFF,
    TYPES,
    BulkPopulation,
    _names,
    _nullable,
    _numpy,
)

if TYPE_CHECKING:  # pragma: no cover
    from membermkt.stores.sql import SqlStore


def load(
    store: SqlStore, pop: BulkPopulation, *, chunk: int = 100_000, analyze: bool = True
) -> None:
    """Write ``pop`` into an empty :class:`~membermkt.stores.sql.SqlStore` in one
    transaction: members with their folded state, identities, tags, attributes and events,
    straight from the columns (``COPY`` on PostgreSQL, ``executemany`` through the driver
    on SQLite and MySQL/MariaDB). The store ends up holding exactly what
    ``upsert_members`` of the members followed by ``append_events`` of their events would
    leave (tested), at a fraction of the cost. On SQLite and PostgreSQL the tables'
    secondary indexes are dropped for the load and built again at its end, inside the same
    transaction. ``analyze`` refreshes the planner's statistics afterwards (on PostgreSQL with
    ``VACUUM (ANALYZE)``, as autovacuum would after a load: hint bits and visibility map
    set, so the first queries do not rewrite every page).

    Raises:
        UsageError: when the store already holds members (the events carry no keys, so a
            second load would store every event twice) or ``chunk`` is not positive.
    """
    if chunk < 1:
        raise UsageError(f"chunk must be >= 1, got {chunk}")
    np = _numpy()
    from membermkt.core.segments._sample import member_hash
    from membermkt.stores.sql._event_rows import EVENT_COLS
    from membermkt.stores.sql._rows import MEMBER_COLS

    store.create_schema()
    t = store.tables
    engine = store.engine
    n = len(pop)
    with engine.begin() as conn:
        if conn.exec_driver_sql(f"SELECT 1 FROM {t.members.name} LIMIT 1").first() is not None:
            raise UsageError(
                f"membermkt.testing.bulk.load needs an empty store; {t.members.name} has rows"
            )
        # secondary indexes are built once after the rows (a sorted build) instead of being
        # maintained row by row — several times faster; DDL is transactional on SQLite
        # and PostgreSQL only, so MySQL/MariaDB keep their indexes
        rebuilt: list[sa.Index] = []
        if store.dialect in ("sqlite", "postgresql"):
            for table in (t.members, t.identities, t.events):
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    index.drop(conn)
                    rebuilt.append(index)
        m = pop.members
        cfg = pop.config
        bday = m["birthday"]
        cols: dict[str, Any] = {
            "id": pop.ids,
            "gender": m["gender"],
            "city": m["city"],
            "province": m["province"],
            "country": np.full(n, "CN", dtype=object),
            "birthday": _nullable(np, bday, bday >= 0),
            "income_band": m["income_band"],
            "tier": np.full(n, None, dtype=object),
            "marketing": np.ones(n, dtype=bool),
            "opted_out": np.full(n, None, dtype=object),
            **{name: pop.state[name] for name in STATE_COLS},
        }
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            ids = pop.ids[lo:hi].tolist()
            part = {c: v[lo:hi].tolist() for c, v in cols.items()}
            part["member_hash"] = [member_hash(i) for i in ids]
            store._insert_many(
                conn,
                t.members,
                MEMBER_COLS,
                list(zip(*(part[c] for c in MEMBER_COLS), strict=True)),
            )
            ext = m["external_userid"][lo:hi].tolist()
            tokens = [
                (f"openid:{cfg.appid}:{o}", i)
                for o, i in zip(m["openid"][lo:hi].tolist(), ids, strict=True)
            ]
            tokens += [
                (f"external_userid:{cfg.corpid}:{x}", i)
                for x, i in zip(ext, ids, strict=True)
                if x is not None
            ]
            store._insert_many(conn, t.identities, ("token", "member_id"), tokens)
            tags = [
                (i, tag)
                for i, joined in zip(ids, m["tags"][lo:hi].tolist(), strict=True)
                if joined
                for tag in joined.split(",")
            ]
            if tags:
                store._insert_many(conn, t.tags, ("member_id", "tag"), tags)
            attrs_rows: list[tuple[Any, ...]] = [
                (i, "member_level", "i", None, lvl, float(lvl))
                for i, lvl in zip(ids, m["member_level"][lo:hi].tolist(), strict=True)
            ]
            attrs_rows += [
                (i, "platform", "s", p, None, None)
                for i, p in zip(ids, m["platform"][lo:hi].tolist(), strict=True)
                if p is not None
            ]
            store._insert_many(
                conn, t.attrs, ("member_id", "name", "kind", "s", "i", "n"), attrs_rows
            )
        e = pop.events
        type_names = np.asarray(TYPES, dtype=object)
        for lo in range(0, pop.n_events, chunk * 10):
            hi = min(pop.n_events, lo + chunk * 10)
            amount = e["amount_fen"][lo:hi]
            outbound = e["outbound"][lo:hi]
            rows = zip(
                [None] * (hi - lo),
                pop.ids[e["member"][lo:hi]].tolist(),
                type_names[e["type"][lo:hi]].tolist(),
                e["at"][lo:hi].tolist(),
                e["props"][lo:hi].tolist(),
                _nullable(np, amount, amount >= 0).tolist(),
                _names(np, EVENT_SOURCES, e["source"][lo:hi]).tolist(),
                _names(np, STAFF, e["staff"][lo:hi]).tolist(),
                np.where(outbound, True, None).tolist(),
                strict=True,
            )
            store._insert_many(conn, t.events, EVENT_COLS, list(rows))
        for index in rebuilt:
            index.create(conn)
    if analyze:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if store.dialect == "sqlite":
                conn.exec_driver_sql("ANALYZE")
            else:
                # PostgreSQL: VACUUM (ANALYZE), what autovacuum does to a freshly loaded
                # table — it also sets the hint bits and the visibility map, so the first
                # reads do not rewrite every page of the load
                verb = "VACUUM (ANALYZE)" if store.dialect == "postgresql" else "ANALYZE TABLE"
                for table in (t.members, t.identities, t.tags, t.attrs, t.events):
                    conn.exec_driver_sql(f"{verb} {table.name}")

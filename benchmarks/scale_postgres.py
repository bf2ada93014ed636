"""Scale benchmark on PostgreSQL: a store of ``--members`` members and ``--events`` events
(the issue's size is 10M / 100M), generated inside the database, then the operations a
merchant runs at that size.

    .venv/bin/python benchmarks/scale_postgres.py                       # 10M / 100M
    .venv/bin/python benchmarks/scale_postgres.py --members 200000 --events 2000000

Generation: no row passes through Python. Events come from ``INSERT ... SELECT`` over
``generate_series`` (faster than ``COPY`` fed from Python, which would spend its time
formatting rows), every value derived from ``hashtextextended(member, seed)`` — seeded and
deterministic, whatever the parallel plan. The members table is then the fold of those
events (subscription, source, last activity, purchase stats) computed with one
``GROUP BY``, plus a hashed profile (gender, city, birthday). Then ``ANALYZE``.

Measured (wall time, this process's peak RSS after each step):

1. generation of events and members (rows per second);
2. ``SqlStore.count()`` of the five-clause benchmark segment vs the same query hand-written
   (ratio; goal ≤ 1.5×);
3. ``SqlStore.select()`` streaming every subscribed member id (ids per second; peak RSS
   growth shows whether memory is bounded);
4. the SQL analytics most reports start with (activity classes, attribution, RFM);
5. with ``--prepare all|city``: campaign ``prepare`` of a mass send from the store into the
   PostgreSQL ledger — the audience read with ``members_of`` (every subscribed member, or
   those in Hangzhou, ~20 %), history from the ledger, the plan, the ledger insert — time,
   members per second and peak RSS growth (memory must stay O(chunk)). Each member gets an
   openid identity (generated in the database) so the plan has an address to send to.

Not measured here (see docs/performance/scale.md and ``benchmarks/ledger_workers.py``): the
multi-worker campaign runner on one ledger.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stores import hand_params, hand_written_sql, segment

PREFIX = "scale_"
"""Table prefix; the member count is appended, so runs of different sizes never clash."""
AS_OF = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
US_DAY = 86_400_000_000


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _step(name: str, t0: float, extra: str = "") -> None:
    print(f"{name:<34} {time.perf_counter() - t0:9.1f} s  peak RSS {_rss_mb():6.0f} MB  {extra}")


class _Percent:
    """``exec_driver_sql`` with ``%`` (the modulo operator) escaped for psycopg."""

    def __init__(self, conn: object) -> None:
        self.conn = conn

    def exec_driver_sql(self, sql: str) -> object:
        return self.conn.exec_driver_sql(sql.replace("%", "%%"))  # type: ignore[attr-defined]


def generate(store: object, members: int, events: int, seed: int) -> None:
    """Events, then members as their fold, straight in PostgreSQL."""
    from membermkt.stores.sql.compile import to_epoch_us

    engine = store._engine  # type: ignore[attr-defined]  # benchmark set-up below the API
    t = store.tables  # type: ignore[attr-defined]
    e, m = t.events.name, t.members.name
    as_of = to_epoch_us(AS_OF)
    per = max(1, events // members)
    h = f"hashtextextended('m' || i::text, {seed})"  # per-member hash
    hk = f"hashtextextended('m' || i::text || ':' || k::text, {seed})"  # per-event hash
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as raw_conn:
        conn = _Percent(raw_conn)
        for table in (e, m):
            conn.exec_driver_sql(f"ALTER TABLE {table} SET UNLOGGED")
        t0 = time.perf_counter()
        # k = 0: the follow (with its source); k > 0: activity, 2 * per - 1 events at most
        conn.exec_driver_sql(
            f"""
            INSERT INTO {e} (key, member_id, type, at, props)
            SELECT NULL, 'm' || lpad(i::text, 9, '0'),
              CASE WHEN k = 0 THEN 'follow'
                   WHEN abs({hk}) % 100 < 40 THEN 'menu_click'
                   WHEN abs({hk}) % 100 < 65 THEN 'view'
                   WHEN abs({hk}) % 100 < 80 THEN 'purchase'
                   WHEN abs({hk}) % 100 < 90 THEN 'message'
                   WHEN abs({hk}) % 100 < 96 THEN 'redpacket_claim'
                   ELSE 'scan' END,
              {as_of} - (abs({h}) % (365 * {US_DAY})) / (k + 1),
              CASE WHEN k = 0 THEN '{{"source":"' ||
                     (ARRAY['parcel','store','platform'])[1 + abs({h}) % 3] || '"}}'
                   WHEN abs({hk}) % 100 < 40 THEN '{{"key":"' ||
                     (ARRAY['A','B','C','D'])[1 + abs({hk} / 7) % 4] || '"}}'
                   WHEN abs({hk}) % 100 < 65 THEN '{{"url":"/p/' || abs({hk} / 7) % 5 ||
                     '","dwell_seconds":' || abs({hk} / 11) % 300 || '}}'
                   WHEN abs({hk}) % 100 < 80 THEN '{{"amount_fen":' ||
                     (990 + abs({hk} / 7) % 29000) || ',"category":"durian"}}'
                   ELSE '{{}}' END
            FROM generate_series(1, {members}) AS i,
                 LATERAL generate_series(0, abs({h}) % (2 * {per} - 1)) AS k
            """
        )
        n = conn.exec_driver_sql(f"SELECT count(*) FROM {e}").scalar()
        _step("generate events", t0, f"{n:,} events")
        t0 = time.perf_counter()
        today = AS_OF.date().toordinal()
        conn.exec_driver_sql(
            f"""
            INSERT INTO {m} (id, member_hash, gender, city, province, country, birthday,
              subscribed, followed_at, source, last_active_at, orders_count,
              orders_total_fen, first_order_at, last_order_at, marketing, last_event_at)
            SELECT member_id, hashtextextended(member_id, 0),
              (ARRAY['female','female','female','male','male'])[1 + abs(hm) % 5],
              (ARRAY['Shanghai','Hangzhou','Beijing','Shenzhen','Chengdu'])[1 + abs(hm / 5) % 5],
              'Zhejiang', 'CN', {today} - 18 * 365 - abs(hm / 25) % (45 * 365),
              true, followed, src, active, orders, total, first_buy, last_buy, true, active
            FROM (
              SELECT member_id, hashtextextended(member_id, {seed}) AS hm,
                min(at) FILTER (WHERE type = 'follow') AS followed,
                min(props::jsonb ->> 'source') FILTER (WHERE type = 'follow') AS src,
                max(at) AS active,
                count(*) FILTER (WHERE type = 'purchase') AS orders,
                coalesce(sum((props::jsonb ->> 'amount_fen')::bigint)
                  FILTER (WHERE type = 'purchase'), 0) AS total,
                min(at) FILTER (WHERE type = 'purchase') AS first_buy,
                max(at) FILTER (WHERE type = 'purchase') AS last_buy
              FROM {e} GROUP BY member_id
            ) AS f
            """
        )
        conn.exec_driver_sql(
            f"INSERT INTO {t.tags.name} (member_id, tag) SELECT id, 'vip' FROM {m} "
            "WHERE orders_total_fen >= 50000"
        )
        _step("fold members (GROUP BY)", t0, f"{members:,} members")
        t0 = time.perf_counter()
        add_identities(conn, store)
        _step("openid identities", t0)
        t0 = time.perf_counter()
        for table in (e, m, t.tags.name, t.identities.name):
            conn.exec_driver_sql(f"ANALYZE {table}")
        _step("analyze", t0)


APPID = "wxscale000000001"


def add_identities(conn: object, store: object) -> None:
    """One openid per member (``openid:<APPID>:o<member id>``), in the database."""
    t = store.tables  # type: ignore[attr-defined]
    conn.exec_driver_sql(  # type: ignore[attr-defined]
        f"INSERT INTO {t.identities.name} (token, member_id) "
        f"SELECT 'openid:{APPID}:o' || id, id FROM {t.members.name}"
    )


def prepare_campaign(store: object, audience: str) -> None:
    """``prepare`` of one mass send over ``audience`` from the store into its ledger."""
    import uuid

    from membermkt.core.campaigns import Campaign, Variant
    from membermkt.engine.campaigns import members_of, prepare
    from membermkt.segments import attr

    t = store.tables  # type: ignore[attr-defined]
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        if conn.exec_driver_sql(f"SELECT 1 FROM {t.identities.name} LIMIT 1").first() is None:
            t0 = time.perf_counter()
            with engine.begin() as tx:
                add_identities(tx, store)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as tx:
                tx.exec_driver_sql(f"ANALYZE {t.identities.name}")
            _step("openid identities (added)", t0)
    seg = attr("subscribed") == True if audience == "all" else attr("city") == "Hangzhou"  # noqa: E712
    campaign = Campaign(
        id=f"scale-{uuid.uuid4().hex[:8]}",
        audience=seg,
        channel="wechat.mass",
        variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "hi"}}),),
        address_namespace=APPID,
    )
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    summary = prepare(store, campaign, members_of(store, campaign, AS_OF), None, AS_OF, chunk=4000)  # type: ignore[arg-type]
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    planned = sum(summary.deliveries.values())
    _step(
        f"prepare ({audience})",
        t0,
        f"{summary.audience:,} members, {planned:,} deliveries, "
        f"{summary.audience / secs:,.0f} members/s wall, {summary.audience / cpu:,.0f}/s CPU "
        f"of this process, RSS growth {_rss_mb() - rss0:.0f} MB",
    )
    with engine.begin() as conn:  # keep the kept tables small for the next run
        conn.exec_driver_sql(f"DELETE FROM {t.deliveries.name} WHERE campaign_id = '{campaign.id}'")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000_000)
    ap.add_argument("--events", type=int, default=100_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the tables (reuse next run)")
    ap.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of both count queries"
    )
    ap.add_argument(
        "--prepare",
        choices=("none", "all", "city"),
        default="none",
        help="also time prepare of a mass send to every subscribed member or to Hangzhou",
    )
    ap.add_argument(
        "--skip-analytics", action="store_true", help="skip count/select/analytics steps"
    )
    ap.add_argument("--pg-url", default=os.environ.get("MEMBERMKT_TEST_POSTGRES_URL", PG_DEFAULT))
    args = ap.parse_args()

    import sqlalchemy as sa

    from membermkt import analytics
    from membermkt.segments import attr
    from membermkt.stores.sql import SqlStore

    prefix = f"{PREFIX}{args.members}_"
    store = SqlStore(args.pg_url, table_prefix=prefix)
    try:
        with store._engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        print(f"PostgreSQL at {args.pg_url} is not reachable ({exc.__class__.__name__}); skipped")
        return
    print(f"PostgreSQL scale benchmark: {args.members:,} members, ~{args.events:,} events")
    loaded = False
    try:
        with store._engine.connect() as conn:
            loaded = (
                conn.exec_driver_sql(f"SELECT count(*) FROM {prefix}members").scalar()
                == args.members
            )
    except sa.exc.SQLAlchemyError:
        loaded = False
    if not loaded:
        store.drop_tables()
        store.create_schema()
        generate(store, args.members, args.events, args.seed)
    try:
        if args.prepare != "none":
            prepare_campaign(store, args.prepare)
        if args.skip_analytics:
            return
        seg = segment()
        sql = sa.text(hand_written_sql(prefix))
        params = hand_params(AS_OF)
        t_store = t_hand = t_nojit = float("inf")
        n_store = n_hand = n_nojit = -1
        for _ in range(args.repeat):  # interleaved, best of --repeat
            t0 = time.perf_counter()
            n_store = store.count(seg, AS_OF)
            t_store = min(t_store, time.perf_counter() - t0)
            t0 = time.perf_counter()
            with store._engine.connect() as conn:
                n_hand = conn.execute(sql, params).scalar_one()
            t_hand = min(t_hand, time.perf_counter() - t0)
            # SqlStore runs segment queries with JIT off (see docs/performance/segments.md): the
            # hand-written query under the same setting, for a like-for-like figure
            t0 = time.perf_counter()
            with store._engine.connect() as conn, conn.begin():
                conn.exec_driver_sql("SET LOCAL jit = off")
                n_nojit = conn.execute(sql, params).scalar_one()
            t_nojit = min(t_nojit, time.perf_counter() - t0)
        assert n_store == n_hand == n_nojit, (n_store, n_hand, n_nojit)
        if args.explain:
            m = store.tables.members
            compiled = sa.select(sa.func.count()).select_from(m).where(store.compile(seg, AS_OF))
            literal = {"literal_binds": True}
            with store._engine.connect() as conn:
                conn.exec_driver_sql("SET jit = off")  # as SqlStore runs segment queries
                for name, query in (
                    ("compiled", compiled),
                    ("hand-written", sql.bindparams(**params)),
                ):
                    text = str(query.compile(store._engine, compile_kwargs=literal))
                    print(f"--- EXPLAIN ANALYZE (JIT off), {name}:")
                    plan = conn.exec_driver_sql("EXPLAIN ANALYZE " + text.replace("%", "%%"))
                    for (line,) in plan:
                        print("   ", line)
        print(f"segment count(): {n_store:,} members (both agree)")
        print(f"  SqlStore.count      {t_store:9.3f} s")
        print(f"  hand-written SQL    {t_hand:9.3f} s  (server defaults)")
        print(f"  hand-written, no JIT {t_nojit:8.3f} s")
        print(f"  ratio count()/hand-written: {t_store / t_hand:.2f}x (goal <= 1.5x)")
        print(f"  ratio count()/hand-written without JIT: {t_store / t_nojit:.2f}x")

        t0 = time.perf_counter()
        rss0 = _rss_mb()
        n = sum(1 for _ in store.select(attr("subscribed") == True, AS_OF))  # noqa: E712
        secs = time.perf_counter() - t0
        _step(
            "select() stream subscribed ids",
            t0,
            f"{n:,} ids, {n / secs:,.0f} ids/s, RSS growth {_rss_mb() - rss0:.0f} MB",
        )
        for name, fn in (
            ("analytics: activity classes", lambda: analytics.activity_counts(store, as_of=AS_OF)),
            ("analytics: attribution", lambda: analytics.attribution(store, as_of=AS_OF)),
            ("analytics: rfm", lambda: analytics.rfm(store, as_of=AS_OF)),
        ):
            t0 = time.perf_counter()
            fn()
            _step(name, t0)
    finally:
        if not args.keep:
            store.drop_tables()
        store.close()


if __name__ == "__main__":
    main()

"""The SQL schema of :class:`~membermkt.stores.sql.SqlStore`, its version and migrations.

Conventions (portable across SQLite, PostgreSQL and MySQL/MariaDB):

* instants are ``BIGINT`` microseconds since the Unix epoch (UTC); dates (birthdays) are
  ``INTEGER`` proleptic Gregorian ordinals (``date.toordinal()``);
* text that segments compare is stored with a byte-order, case-sensitive, no-pad collation
  (``"C"`` on PostgreSQL, ``utf8mb4_nopad_bin`` on MariaDB, ``utf8mb4_0900_bin`` on MySQL,
  SQLite's default ``BINARY``), so ``=``, ``<`` and ``LIKE`` agree with Python;
* money is integer fen;
* custom attributes live in an attribute table (one row per member and name, with the
  value's type class), event properties in a JSON text column;
* every table name carries the store's ``table_prefix``.

The schema is versioned: ``<prefix>schema_version`` holds the version; :data:`MIGRATIONS`
lists forward migrations applied in order on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Tables", "Text", "mysql_binary_collation"]


def mysql_binary_collation(dialect: Dialect) -> str:
    """The byte-order, case-sensitive **no-pad** utf8mb4 collation of MariaDB
    (``utf8mb4_nopad_bin``) or MySQL (``utf8mb4_0900_bin``): the store's text columns use
    it, and so must any expression compared like them — ``utf8mb4_bin`` pads, so ``"a"``
    and ``"a "`` would compare equal."""
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


class Text(TypeDecorator[str]):
    """A ``VARCHAR(length)`` compared byte-wise and case-sensitively on every dialect."""

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.VARCHAR(self.length, collation="C"))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(
                mysql.VARCHAR(
                    self.length, charset="utf8mb4", collation=mysql_binary_collation(dialect)
                )
            )
        return dialect.type_descriptor(sa.String(self.length))


def _long_text() -> TypeEngine[str]:
    return sa.Text().with_variant(
        mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""An auto-increment key (``INTEGER PRIMARY KEY`` is the rowid alias on SQLite)."""

SCHEMA_VERSION: Final = 3
"""The version this code writes and reads."""

# Length limits (the store refuses longer values with a UsageError naming the field).
ID_LEN: Final = 128
TEXT_LEN: Final = 255
TOKEN_LEN: Final = 600
ATTR_TEXT_LEN: Final = 700


class Tables:
    """The tables of one store (names prefixed with ``prefix``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        md = self.metadata = sa.MetaData()
        opts: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
        p = prefix

        self.schema_version = sa.Table(
            f"{p}schema_version", md, sa.Column("version", sa.Integer, nullable=False), **opts
        )
        self.members = sa.Table(
            f"{p}members",
            md,
            sa.Column("id", Text(ID_LEN), primary_key=True),
            sa.Column("member_hash", sa.BigInteger, nullable=False),
            sa.Column("gender", Text(16)),
            sa.Column("city", Text(TEXT_LEN)),
            sa.Column("province", Text(TEXT_LEN)),
            sa.Column("country", Text(TEXT_LEN)),
            sa.Column("birthday", sa.Integer),
            sa.Column("income_band", Text(TEXT_LEN)),
            sa.Column("tier", Text(TEXT_LEN)),
            sa.Column("subscribed", sa.Boolean),
            sa.Column("sub_at", sa.BigInteger),
            sa.Column("sub_tb", Text(TEXT_LEN)),
            sa.Column("followed_at", sa.BigInteger),
            sa.Column("source", Text(TEXT_LEN)),
            sa.Column("source_at", sa.BigInteger),
            sa.Column("source_tb", Text(TOKEN_LEN)),  # rank + event key + source
            sa.Column("last_active_at", sa.BigInteger),
            sa.Column("orders_count", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("orders_total_fen", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("first_order_at", sa.BigInteger),
            sa.Column("last_order_at", sa.BigInteger),
            sa.Column("categories", _long_text()),
            sa.Column("wecom_contact", sa.Boolean),
            sa.Column("contact_at", sa.BigInteger),
            sa.Column("contact_tb", Text(TEXT_LEN)),
            sa.Column("last_event_at", sa.BigInteger),
            sa.Column("relations", _long_text()),  # WeCom relations per staff (JSON)
            sa.Column("marketing", sa.Boolean, nullable=False),
            sa.Column("opted_out", _long_text()),
            sa.Index(f"{p}ix_members_city", "city"),
            sa.Index(f"{p}ix_members_birthday", "birthday"),
            sa.Index(f"{p}ix_members_last_active", "last_active_at"),
            # segments on derived fields read the stored state of members whose cache is
            # fresh and fold the events of the few others (last_event_at > as_of): #18
            sa.Index(f"{p}ix_members_last_event", "last_event_at"),
            **opts,
        )
        self.identities = sa.Table(
            f"{p}identities",
            md,
            sa.Column("token", Text(TOKEN_LEN), primary_key=True),
            sa.Column("member_id", Text(ID_LEN), nullable=False),
            sa.Index(f"{p}ix_identities_member", "member_id"),
            **opts,
        )
        self.merges = sa.Table(
            f"{p}merges",
            md,
            sa.Column("id", Text(64), primary_key=True),
            sa.Column("seq", sa.BigInteger, nullable=False),
            sa.Column("keep_id", Text(ID_LEN), nullable=False),
            sa.Column("drop_id", Text(ID_LEN), nullable=False),
            sa.Column("a", Text(TOKEN_LEN), nullable=False),
            sa.Column("b", Text(TOKEN_LEN), nullable=False),
            sa.Column("evidence", Text(32), nullable=False),
            sa.Column("at", sa.BigInteger, nullable=False),
            sa.Column("by", Text(TEXT_LEN), nullable=False),
            sa.Column("note", Text(TEXT_LEN), nullable=False),
            sa.Column("identities", _long_text(), nullable=False),
            sa.Column("snapshot", _long_text(), nullable=False),
            sa.Column("undone_at", sa.BigInteger),
            sa.Column("undone_by", Text(TEXT_LEN)),
            sa.Index(f"{p}ix_merges_keep", "keep_id"),
            sa.Index(f"{p}ix_merges_drop", "drop_id"),
            **opts,
        )
        self.tags = sa.Table(
            f"{p}tags",
            md,
            sa.Column("member_id", Text(ID_LEN), primary_key=True),
            sa.Column("tag", Text(TEXT_LEN), primary_key=True),
            sa.Index(f"{p}ix_tags_tag", "tag", "member_id"),
            **opts,
        )
        self.attrs = sa.Table(
            f"{p}attributes",
            md,
            sa.Column("member_id", Text(ID_LEN), primary_key=True),
            sa.Column("name", Text(64), primary_key=True),
            # s: str, i: int, f: float, b: bool
            sa.Column("kind", sa.String(1), nullable=False),
            sa.Column("s", Text(ATTR_TEXT_LEN)),
            sa.Column("i", sa.BigInteger),
            sa.Column("n", sa.Float(precision=53)),
            sa.Index(f"{p}ix_attributes_s", "name", "kind", "s"),
            sa.Index(f"{p}ix_attributes_i", "name", "kind", "i"),
            sa.Index(f"{p}ix_attributes_n", "name", "kind", "n"),
            **opts,
        )
        self.events = sa.Table(
            f"{p}events",
            md,
            sa.Column("seq", BigId, primary_key=True, autoincrement=True),
            sa.Column("key", Text(200)),
            sa.Column("member_id", Text(ID_LEN), nullable=False),
            sa.Column("type", Text(64), nullable=False),
            sa.Column("at", sa.BigInteger, nullable=False),
            sa.Column("props", _long_text(), nullable=False),
            # denormalised from props for as-of folds in SQL (purchase amount, acquisition
            # source)
            sa.Column("amount_fen", sa.BigInteger),
            sa.Column("source", Text(TEXT_LEN)),
            sa.Column("staff", Text(TEXT_LEN)),  # contact events: the staff userid
            sa.Column("outbound", sa.Boolean),  # staff-initiated (direction "out")
            sa.Index(f"{p}ux_events_key", "key", unique=True),
            sa.Index(f"{p}ix_events_member", "member_id", "type", "at"),
            **opts,
        )
        self.deliveries = sa.Table(
            f"{p}deliveries",
            md,
            sa.Column("key", Text(TEXT_LEN), primary_key=True),
            sa.Column("campaign_id", Text(TEXT_LEN), nullable=False),
            sa.Column("member_id", Text(ID_LEN), nullable=False),
            sa.Column("channel", Text(TEXT_LEN), nullable=False),
            sa.Column("address", Text(TOKEN_LEN), nullable=False),
            sa.Column("variant", Text(TEXT_LEN), nullable=False),
            sa.Column("payload", _long_text(), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("reason", _long_text()),
            sa.Column("platform_id", Text(TEXT_LEN)),
            sa.Column("updated_at", sa.BigInteger),
            sa.Column("worker", Text(TEXT_LEN)),
            sa.Index(f"{p}ix_deliveries_campaign", "campaign_id", "status", "key"),
            # #12: ledger history per member (caps at hand-off and prepare)
            sa.Index(f"{p}ix_deliveries_member", "member_id", "updated_at"),
            **opts,
        )
        # #12 hand-off batches and call holds: created lazily by the ledger mixin too, so a
        # database at schema version 1 gains them without a migration.
        self.delivery_batches = sa.Table(
            f"{p}delivery_batches",
            md,
            sa.Column("batch_id", Text(64), primary_key=True),
            sa.Column("campaign_id", Text(TEXT_LEN), nullable=False),
            sa.Column("channel", Text(TEXT_LEN), nullable=False),
            sa.Column("keys", _long_text(), nullable=False),
            sa.Column("request_key", Text(TEXT_LEN), nullable=False),
            sa.Column("worker", Text(TEXT_LEN)),
            sa.Column("opened_at", sa.BigInteger, nullable=False),
            sa.Column("updated_at", sa.BigInteger, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Index(f"{p}ix_delivery_batches_open", "campaign_id", "channel", "state"),
            **opts,
        )
        self.job_results = sa.Table(
            f"{p}job_results",
            md,
            sa.Column("key", Text(TEXT_LEN), primary_key=True),
            sa.Column("result", _long_text(), nullable=False),
            sa.Column("recorded_at", sa.BigInteger, nullable=False),
            **opts,
        )
        self.holds = sa.Table(
            f"{p}holds",
            md,
            sa.Column("scope", Text(TEXT_LEN), primary_key=True),
            sa.Column("until_at", sa.BigInteger, nullable=False),
            **opts,
        )
        self.budgets = sa.Table(
            f"{p}budgets",
            md,
            sa.Column("key", Text(TEXT_LEN), primary_key=True),
            sa.Column("budget_limit", sa.BigInteger, nullable=False),
            sa.Column("reserved", sa.BigInteger, nullable=False),
            sa.Column("spent", sa.BigInteger, nullable=False),
            sa.CheckConstraint(
                "reserved >= 0 AND spent >= 0 AND reserved + spent <= budget_limit",
                name=f"{p}ck_budgets_within_limit",
            ),
            **opts,
        )
        self.payouts = sa.Table(
            f"{p}payouts",
            md,
            sa.Column("bill_no", Text(TEXT_LEN), primary_key=True),
            sa.Column("rule_id", Text(TEXT_LEN), nullable=False),
            sa.Column("member_id", Text(ID_LEN), nullable=False),
            sa.Column("address", Text(TOKEN_LEN), nullable=False),
            sa.Column("amount_fen", sa.BigInteger, nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("reservations", _long_text(), nullable=False),
            sa.Column("detail", _long_text()),
            sa.Column("created_at", sa.BigInteger),
            sa.Column("updated_at", sa.BigInteger),
            sa.Index(f"{p}ix_payouts_rule", "rule_id", "status"),
            # claims read one member's intents of one rule (#17)
            sa.Index(f"{p}ix_payouts_member", "rule_id", "member_id"),
            **opts,
        )

    def all_tables(self) -> list[sa.Table]:
        """Every table, in creation order."""
        return list(self.metadata.sorted_tables)


def _v1(conn: Connection, tables: Tables) -> None:
    tables.metadata.create_all(
        conn, tables=[t for t in tables.all_tables() if t is not tables.schema_version]
    )


def _v2(conn: Connection, tables: Tables) -> None:
    # Version 2 added tables (merges) and member columns. Databases created at version 1 by
    # this code already hold every table of its time, so: create what is missing, then add
    # missing nullable columns. Idempotent.
    tables.metadata.create_all(
        conn, tables=[t for t in tables.all_tables() if t is not tables.schema_version]
    )
    inspector = sa.inspect(conn)
    prep = conn.dialect.identifier_preparer
    added: set[tuple[str, str]] = set()
    for table in tables.all_tables():
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            ddl = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {prep.quote(table.name)} ADD COLUMN {prep.quote(col.name)} {ddl}"
            )
            added.add((table.name, col.name))
    if (tables.events.name, "amount_fen") in added:
        _backfill_event_columns(conn, tables)
    if (tables.members.name, "last_event_at") in added:
        ev, m = tables.events, tables.members
        latest = sa.select(sa.func.max(ev.c.at)).where(ev.c.member_id == m.c.id).scalar_subquery()
        conn.execute(sa.update(m).values(last_event_at=latest))


def _v3(conn: Connection, tables: Tables) -> None:
    # Version 3 indexes members.last_event_at (the stale-cache test of segments on derived
    # fields, #18). A database created by version-3 code already has it (create_all in
    # ``_v1``): create it only where missing. Idempotent.
    index = next(ix for ix in tables.members.indexes if ix.name == _last_event_index(tables))
    have = {ix["name"] for ix in sa.inspect(conn).get_indexes(tables.members.name)}
    if index.name not in have:
        index.create(conn)


def _last_event_index(tables: Tables) -> str:
    return f"{tables.prefix}ix_members_last_event"


def _backfill_event_columns(conn: Connection, tables: Tables) -> None:
    from membermkt.stores.sql import _rows as rows

    ev = tables.events
    updates = []
    contact: dict[str, list[Any]] = {}
    for r in conn.execute(sa.select(ev)).mappings():
        e = rows.event_from_row(r)
        _, _, _, _, _, amount, source, staff, outbound = rows.event_row(e)
        if amount is not None or source or staff is not None or outbound:
            updates.append({"s": r["seq"], "a": amount, "src": source, "st": staff, "o": outbound})
        if staff is not None:
            contact.setdefault(e.member_id, []).append(e)
    if updates:
        stmt = (
            sa.update(ev)
            .where(ev.c.seq == sa.bindparam("s"))
            .values(
                amount_fen=sa.bindparam("a"),
                source=sa.bindparam("src"),
                staff=sa.bindparam("st"),
                outbound=sa.bindparam("o"),
            )
        )
        conn.execute(stmt, updates)
    m = tables.members
    for member_id, evs in contact.items():
        # version 1 kept one contact flag per member: refold the relations per staff
        folded = rows.state_row(rows.fold_events(evs))
        conn.execute(
            sa.update(m)
            .where(m.c.id == member_id)
            .values(
                wecom_contact=folded["wecom_contact"],
                contact_at=folded["contact_at"],
                contact_tb=folded["contact_tb"],
                relations=folded["relations"],
            )
        )


MIGRATIONS: Final[tuple[Callable[[Connection, Tables], None], ...]] = (_v1, _v2, _v3)
"""Forward migrations: ``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1``."""

assert len(MIGRATIONS) == SCHEMA_VERSION

"""``SqlStore``: the whole :class:`~membermkt.core.ports.Store` on SQLAlchemy Core.

SQLite (the embedded default, WAL mode), PostgreSQL (``postgresql+psycopg://``) and
MySQL/MariaDB (``mysql+pymysql://``). Segments are compiled to SQL
(:mod:`membermkt.stores.sql.compile`) and evaluated by the database.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from membermkt.core.delivery import Delivery, DeliveryRecord, DeliveryStatus, check_transition
from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.core.ports import BudgetState, PayoutIntent
from membermkt.core.segments import HASH_PRIME, Segment
from membermkt.errors import (
    ConfigError,
    LedgerError,
    StoreError,
    StoreUnavailable,
    UsageError,
)
from membermkt.stores._common import (
    EMPTY_STATE,
    AttributeSchema,
    check_as_of,
    check_delivery_status,
    check_intent,
    check_items,
    check_limit,
    check_members,
    check_now,
    check_payout_status,
    check_sample_args,
    merge_member_values,
    sample_coefficients,
)
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import Expr, compiler_for, to_epoch_us
from membermkt.stores.sql.schema import MIGRATIONS, SCHEMA_VERSION, Tables

__all__ = ["SqlStore"]

T = TypeVar("T")

_PREFIX_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,23}$|^$")
_DIALECTS: Final = {"sqlite", "postgresql", "mysql", "mariadb"}
_EXTRAS: Final = {"psycopg": "postgres", "psycopg2": "postgres", "pymysql": "mysql"}
_IN_CHUNK: Final = 900
_PAGE: Final = 5000
_RETRIES: Final = 8


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _retryable(exc: sa_exc.DBAPIError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in ("40P01", "40001"):
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1213, 1205):  # MySQL deadlock / lock wait timeout
        return True
    return "database is locked" in str(orig)


class SqlStore:
    """Members, events, tags, the delivery ledger, budgets and payout intents in SQL.

    Implements :class:`membermkt.core.ports.Store`. Nothing is done at construction but
    parsing the URL: the schema is created (or migrated) on first use.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///members.db`` (file; WAL mode), ``sqlite://``
            (in memory), ``postgresql+psycopg://user:pw@host/db`` (extra ``postgres``),
            ``mysql+pymysql://user:pw@host/db`` (extra ``mysql``; MySQL 8 or MariaDB 10.6+).
        table_prefix: prefix of every table name (lower-case letters, digits, ``_``), so
            several stores — or other applications — can share one database.
        attributes: optional declared custom attributes, name → ``str``/``int``/``float``/
            ``bool`` (segments comparing them with values of another type raise
            :class:`~membermkt.errors.SegmentError`).
        strict: with ``attributes``, refuse undeclared custom attribute names.
        engine_options: extra keyword arguments for :func:`sqlalchemy.create_engine`.

    Raises:
        ConfigError: for a malformed URL, an unsupported database, a missing driver (install
            the extra) or a bad table prefix.
        UsageError: for an invalid attribute declaration.
    """

    def __init__(
        self,
        url: str | sa.URL,
        *,
        table_prefix: str = "mm_",
        attributes: Mapping[str, type] | None = None,
        strict: bool = False,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(table_prefix, str) or not _PREFIX_RE.match(table_prefix):
            raise ConfigError(
                f"table_prefix must be lower-case letters, digits and _ (≤ 24, starting with a "
                f"letter), got {table_prefix!r}"
            )
        self._schema = AttributeSchema.build(attributes, strict)
        try:
            parsed = sa.make_url(url)
        except (sa_exc.ArgumentError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a database URL: {url!r} ({exc})") from exc
        backend = parsed.get_backend_name()
        if backend not in _DIALECTS:
            raise ConfigError(
                f"unsupported database {backend!r} in {parsed.render_as_string()!r}: use "
                "sqlite:///file.db, postgresql+psycopg://... or mysql+pymysql://..."
            )
        self.url = parsed
        options: dict[str, Any] = dict(engine_options or {})
        # an in-memory SQLite database is one connection shared by every thread: serialise
        self._serial: threading.RLock | None = None
        if backend == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                self._serial = threading.RLock()
                options.setdefault("poolclass", StaticPool)
                options.setdefault("connect_args", {"check_same_thread": False})
        elif backend in ("mysql", "mariadb"):
            if "charset" not in parsed.query:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
            options.setdefault("isolation_level", "READ COMMITTED")
            options.setdefault("pool_pre_ping", True)
        else:
            options.setdefault("isolation_level", "READ COMMITTED")
            options.setdefault("pool_pre_ping", True)
        try:
            self._engine: Engine = sa.create_engine(parsed, **options)
        except sa_exc.NoSuchModuleError as exc:
            raise ConfigError(f"unknown database driver in {parsed.render_as_string()!r}") from exc
        except ModuleNotFoundError as exc:
            extra = _EXTRAS.get(parsed.get_driver_name(), "")
            hint = f": pip install 'membermkt[{extra}]'" if extra else ""
            raise ConfigError(f"the database driver {exc.name!r} is not installed{hint}") from exc
        except (sa_exc.ArgumentError, TypeError) as exc:
            raise ConfigError(
                f"bad database options for {parsed.render_as_string()!r}: {exc}"
            ) from exc
        self.dialect = self._engine.dialect.name
        self.tables = Tables(table_prefix)
        self._compiler = compiler_for(self.dialect)
        self._ready = False
        self._lock = threading.Lock()
        if self.dialect == "sqlite":
            self._install_sqlite_hooks(file_db=parsed.database not in (None, "", ":memory:"))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (to run your own queries next to the store's tables —
        see :attr:`tables` and :meth:`compile`)."""
        return self._engine

    def __repr__(self) -> str:
        return f"SqlStore({self.url.render_as_string()!r}, table_prefix={self.tables.prefix!r})"

    # ------------------------------------------------------------------ plumbing

    def _install_sqlite_hooks(self, *, file_db: bool) -> None:
        @sa_event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            # we issue BEGIN ourselves (pysqlite's implicit transactions are not reliable)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if file_db:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa_event.listens_for(self._engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("membermkt_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def _describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _wrap(self, exc: sa_exc.SQLAlchemyError) -> StoreError:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return StoreUnavailable(f"lost the connection to {self._describe()}: {exc.orig}")
        if isinstance(exc, sa_exc.OperationalError) and "connect" in str(exc.orig).lower():
            return StoreUnavailable(f"cannot reach the database at {self._describe()}: {exc.orig}")
        detail = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        return StoreError(f"database error on {self._describe()}: {detail}")

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"cannot reach the database at {self._describe()}: "
                f"{getattr(exc, 'orig', None) or exc}"
            ) from exc

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        if self._serial is None:
            with self._tx_unserialised(write=write) as conn:
                yield conn
        else:
            with self._serial, self._tx_unserialised(write=write) as conn:
                yield conn

    @contextmanager
    def _tx_unserialised(self, *, write: bool) -> Iterator[Connection]:
        self._ensure_schema()
        conn = self._connect()
        try:
            if write:
                conn.execution_options(membermkt_write=True)
            try:
                with conn.begin():
                    yield conn
            except sa_exc.SQLAlchemyError as exc:
                raise self._wrap(exc) from exc
        finally:
            conn.close()

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction, retrying deadlocks and lost races."""
        for attempt in range(_RETRIES):
            try:
                with self._tx(write=True) as conn:
                    return fn(conn)
            except StoreError as exc:
                cause = exc.__cause__
                last = attempt == _RETRIES - 1
                if last or not isinstance(cause, sa_exc.DBAPIError):
                    raise
                if not (_retryable(cause) or isinstance(cause, sa_exc.IntegrityError)):
                    raise
        raise AssertionError("unreachable")

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            conn = self._connect()
            try:
                conn.execution_options(membermkt_write=True)
                with conn.begin():
                    self._migrate(conn)
            except sa_exc.SQLAlchemyError as exc:
                raise self._wrap(exc) from exc
            finally:
                conn.close()
            self._ready = True

    def _migrate(self, conn: Connection) -> None:
        lock_id = zlib.crc32(f"membermkt:{self.tables.prefix}".encode())
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        elif self.dialect in ("mysql", "mariadb"):
            conn.execute(sa.text("SELECT GET_LOCK(:k, 60)"), {"k": f"membermkt{lock_id}"})
        sv = self.tables.schema_version
        sv.create(conn, checkfirst=True)
        version = conn.execute(sa.select(sv.c.version)).scalar()
        if version is None:
            conn.execute(sa.insert(sv).values(version=0))
            version = 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database schema (version {version}) is newer than this membermkt "
                f"understands ({SCHEMA_VERSION}); upgrade membermkt"
            )
        for v in range(version, SCHEMA_VERSION):
            MIGRATIONS[v](conn, self.tables)
            conn.execute(sa.update(sv).values(version=v + 1))
        if self.dialect in ("mysql", "mariadb"):
            conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": f"membermkt{lock_id}"})

    def create_schema(self) -> None:
        """Create or migrate the schema now (it otherwise happens on first use).

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database's schema is newer than this code.
        """
        self._ensure_schema()

    def schema_version(self) -> int:
        """The schema version recorded in the database.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        with self._tx() as conn:
            return int(conn.execute(sa.select(self.tables.schema_version.c.version)).scalar_one())

    def drop_tables(self) -> None:
        """Drop every table of this store (its ``table_prefix``) — for tests and teardown.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        conn = self._connect()
        try:
            with conn.begin():
                self.tables.metadata.drop_all(conn, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise self._wrap(exc) from exc
        finally:
            conn.close()
        self._ready = False

    def delete_all(self) -> None:
        """Delete every row of this store's tables, keeping the schema (tests, demos).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """

        def run(conn: Connection) -> None:
            for table in reversed(self.tables.all_tables()):
                if table is not self.tables.schema_version:
                    conn.execute(sa.delete(table))

        self._write(run)

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing()
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        return sa.insert(table).prefix_with("IGNORE")

    def _in(
        self, conn: Connection, stmt: Callable[[Sequence[Any]], Any], values: Sequence[Any]
    ) -> list[Any]:
        out: list[Any] = []
        for chunk in _chunks(values, _IN_CHUNK):
            out.extend(conn.execute(stmt(chunk)).mappings().all())
        return out

    # ------------------------------------------------------------------ members

    def _load_members(self, conn: Connection, ids: Sequence[str]) -> dict[str, Member]:
        t = self.tables
        if not ids:
            return {}
        found = self._in(conn, lambda c: sa.select(t.members).where(t.members.c.id.in_(c)), ids)
        if not found:
            return {}
        have = [r["id"] for r in found]
        tags: dict[str, list[str]] = defaultdict(list)
        for r in self._in(conn, lambda c: sa.select(t.tags).where(t.tags.c.member_id.in_(c)), have):
            tags[r["member_id"]].append(r["tag"])
        attrs: dict[str, list[Any]] = defaultdict(list)
        for r in self._in(
            conn, lambda c: sa.select(t.attrs).where(t.attrs.c.member_id.in_(c)), have
        ):
            attrs[r["member_id"]].append(r)
        toks: dict[str, list[str]] = defaultdict(list)
        for r in self._in(
            conn, lambda c: sa.select(t.identities).where(t.identities.c.member_id.in_(c)), have
        ):
            toks[r["member_id"]].append(r["token"])
        return {
            r["id"]: rows.member_from_rows(r, tags[r["id"]], attrs[r["id"]], toks[r["id"]])
            for r in found
        }

    def upsert_members(self, members: Iterable[Member]) -> int:
        """Insert or replace members by id (see :meth:`MemberStore.upsert_members`).

        The stored state is kept when the given member's state is empty; an identity listed
        by the member moves to it from any other member.

        Raises:
            UsageError: for a value that is not a Member, one the attribute schema refuses,
                or text too long for its column.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        batch = check_members(members)
        prepared = []
        for m in batch:
            self._schema.check_member(m)
            prepared.append(
                (
                    m,
                    rows.member_row(m),
                    rows.tag_rows(m),
                    rows.attribute_rows(m),
                    rows.identity_rows(m),
                )
            )
        for chunk in _chunks(prepared, 2000):
            self._write(lambda conn, chunk=chunk: self._upsert_chunk(conn, chunk))  # type: ignore[misc]
        return len(batch)

    def _upsert_chunk(self, conn: Connection, chunk: Sequence[Any]) -> None:
        t = self.tables
        m = t.members
        ids = [item[0].id for item in chunk]
        keep_state = [item[0].id for item in chunk if item[0].state == EMPTY_STATE]
        stored: dict[str, dict[str, Any]] = {}
        if keep_state:
            state_cols = [m.c.id, *(m.c[c] for c in rows.STATE_COLS)]
            for r in self._in(
                conn,
                lambda c: sa.select(*state_cols).where(m.c.id.in_(c)).with_for_update(),
                keep_state,
            ):
                stored[r["id"]] = {c: r[c] for c in rows.STATE_COLS}
        member_rows, tag_rows, attr_rows, ident_rows = [], [], [], []
        for member, row, tags, attrs, idents in chunk:
            if member.id in stored:
                row = {**row, **stored[member.id]}
            member_rows.append(row)
            tag_rows.extend(tags)
            attr_rows.extend(attrs)
            ident_rows.extend(idents)
        for c in _chunks(ids, _IN_CHUNK):
            conn.execute(sa.delete(t.tags).where(t.tags.c.member_id.in_(c)))
            conn.execute(sa.delete(t.attrs).where(t.attrs.c.member_id.in_(c)))
            conn.execute(sa.delete(t.identities).where(t.identities.c.member_id.in_(c)))
        tokens = [r["token"] for r in ident_rows]
        for c in _chunks(tokens, _IN_CHUNK):
            conn.execute(sa.delete(t.identities).where(t.identities.c.token.in_(c)))
        # the same identity listed twice in one batch: the later member wins
        ident_rows = list({r["token"]: r for r in ident_rows}.values())
        self._upsert_rows(conn, m, member_rows)
        for table, dict_rows in (
            (t.tags, tag_rows),
            (t.attrs, attr_rows),
            (t.identities, ident_rows),
        ):
            self._insert_rows(conn, table, dict_rows)

    def get_member(self, member_id: str) -> Member | None:
        """The member with that id, or ``None``.

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        with self._tx() as conn:
            return self._load_members(conn, [member_id]).get(member_id)

    def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        """The known members among ``member_ids``, by id (one round trip per ~900 ids).

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        ids = sorted(set(member_ids))
        with self._tx() as conn:
            return self._load_members(conn, ids)

    def iter_members(self, *, batch_size: int = 1000) -> Iterator[Member]:
        """Every member, by id (read in batches; for export).

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        m = self.tables.members
        last: str | None = None
        while True:
            q = sa.select(m.c.id).order_by(m.c.id).limit(batch_size)
            if last is not None:
                q = q.where(m.c.id > last)
            with self._tx() as conn:
                ids = list(conn.execute(q).scalars())
                loaded = self._load_members(conn, ids)
            for i in ids:
                if i in loaded:
                    yield loaded[i]
            if len(ids) < batch_size:
                return
            last = ids[-1]

    def resolve(self, identity: Identity) -> str | None:
        """The member id owning ``identity``, or ``None``.

        Raises:
            UsageError: when ``identity`` is not an Identity.
            StoreUnavailable: when the database cannot be reached.
        """
        if not isinstance(identity, Identity):
            raise UsageError(f"resolve takes an Identity, got {identity!r}")
        t = self.tables.identities
        with self._tx() as conn:
            got = conn.execute(sa.select(t.c.member_id).where(t.c.token == identity.token)).scalar()
            return None if got is None else str(got)

    def merge_members(self, keep: str, drop: str) -> None:
        """Fold member ``drop`` into ``keep`` (see :meth:`MemberStore.merge_members`).

        Raises:
            UsageError: when ``keep == drop`` or either member is unknown.
            StoreUnavailable: when the database cannot be reached.
        """
        if keep == drop:
            raise UsageError(f"cannot merge member {keep!r} into itself")
        self._write(lambda conn: self._merge(conn, keep, drop))

    def _merge(self, conn: Connection, keep: str, drop: str) -> None:
        t = self.tables
        m = t.members
        conn.execute(
            sa.select(m.c.id)
            .where(m.c.id.in_(sorted([keep, drop])))
            .order_by(m.c.id)
            .with_for_update()
        ).all()
        loaded = self._load_members(conn, [keep, drop])
        k, d = loaded.get(keep), loaded.get(drop)
        if k is None or d is None:
            raise UsageError(f"cannot merge: unknown member {keep if k is None else drop!r}")
        merged = merge_member_values(k, d, k.state.combine(d.state))
        conn.execute(
            sa.update(m)
            .where(m.c.id == keep)
            .values(
                **{
                    c: v
                    for c, v in rows.member_row(merged).items()
                    if c not in ("id", "member_hash")
                }
            )
        )
        conn.execute(
            sa.update(t.identities).where(t.identities.c.member_id == drop).values(member_id=keep)
        )
        new_tags = [{"member_id": keep, "tag": x} for x in sorted(d.tags - k.tags)]
        if new_tags:
            conn.execute(sa.insert(t.tags), new_tags)
        new_attrs = [
            {**r, "member_id": keep}
            for r in rows.attribute_rows(d)
            if r["name"] not in k.attributes
        ]
        if new_attrs:
            conn.execute(sa.insert(t.attrs), new_attrs)
        conn.execute(sa.update(t.events).where(t.events.c.member_id == drop).values(member_id=keep))
        for table in (t.tags, t.attrs):
            conn.execute(sa.delete(table).where(table.c.member_id == drop))
        conn.execute(sa.delete(m).where(m.c.id == drop))

    def tag(self, member_ids: Iterable[str], tag: str) -> int:
        """Add ``tag`` to the known members among ``member_ids``; returns how many changed.

        Raises:
            UsageError: for an empty or too long tag.
            StoreUnavailable: when the database cannot be reached.
        """
        ids = self._tag_args(member_ids, tag)
        t = self.tables

        def run(conn: Connection) -> int:
            known = {
                r["id"]
                for r in self._in(
                    conn, lambda c: sa.select(t.members.c.id).where(t.members.c.id.in_(c)), ids
                )
            }
            have = {
                r["member_id"]
                for r in self._in(
                    conn,
                    lambda c: sa.select(t.tags.c.member_id).where(
                        t.tags.c.tag == tag, t.tags.c.member_id.in_(c)
                    ),
                    ids,
                )
            }
            todo = sorted(known - have)
            if todo:
                conn.execute(
                    self._insert_ignore(t.tags), [{"member_id": i, "tag": tag} for i in todo]
                )
            return len(todo)

        return self._write(run)

    def untag(self, member_ids: Iterable[str], tag: str) -> int:
        """Remove ``tag`` from members; returns how many changed.

        Raises:
            UsageError: for an empty or too long tag.
            StoreUnavailable: when the database cannot be reached.
        """
        ids = self._tag_args(member_ids, tag)
        t = self.tables.tags

        def run(conn: Connection) -> int:
            n = 0
            for c in _chunks(ids, _IN_CHUNK):
                n += conn.execute(sa.delete(t).where(t.c.tag == tag, t.c.member_id.in_(c))).rowcount
            return n

        return self._write(run)

    @staticmethod
    def _tag_args(member_ids: Iterable[str], tag: str) -> list[str]:
        if not isinstance(tag, str) or not tag:
            raise UsageError(f"tag must be a non-empty str, got {tag!r}")
        rows.check_text("tag", tag)
        if isinstance(member_ids, str):
            raise UsageError("member_ids must be a collection of ids, not a single str")
        return sorted(set(member_ids))

    # ------------------------------------------------------------------ events

    def append_events(self, events: Iterable[Event], *, batch_size: int = 5000) -> int:
        """Append events, de-duplicated by key, folding them into member state.

        Each batch is one transaction that locks its members' rows, so concurrent appenders
        (several processes) never lose or duplicate an event.

        Raises:
            UsageError: for a value that is not an Event or a member id too long.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        seen: set[str] = set()
        batch: list[tuple[Event, tuple[Any, ...]]] = []
        for e in events:
            if not isinstance(e, Event):
                raise UsageError(f"append_events takes Event values, got {e!r}")
            key = e.key
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            batch.append((e, rows.event_row(e)))
        total = 0
        for chunk in _chunks(batch, batch_size):
            total += self._write(lambda conn, chunk=chunk: self._append_chunk(conn, chunk))  # type: ignore[misc]
        return total

    def _quote(self, name: str) -> str:
        return str(self._engine.dialect.identifier_preparer.quote(name))

    def _existing(
        self, conn: Connection, table: sa.Table, col: str, values: Sequence[str]
    ) -> list[str]:
        """Which of ``values`` are in ``table.col`` (driver SQL, big IN lists)."""
        out: list[str] = []
        sql = (
            f"SELECT {self._quote(col)} FROM {self._quote(table.name)} WHERE {self._quote(col)} IN "
        )
        for chunk in _chunks(values, 4000):
            ph = ", ".join([self._placeholder] * len(chunk))
            out.extend(r[0] for r in conn.exec_driver_sql(f"{sql}({ph})", tuple(chunk)))
        return out

    def _insert_many(
        self,
        conn: Connection,
        table: sa.Table,
        cols: Sequence[str],
        values: list[tuple[Any, ...]],
        *,
        ignore: bool = False,
    ) -> None:
        """Bulk insert through the driver (executemany; COPY on PostgreSQL)."""
        names = ", ".join(self._quote(c) for c in cols)
        if ignore:
            ph = ", ".join([self._placeholder] * len(cols))
            head, tail = "INSERT", ""
            if self.dialect == "sqlite":
                head = "INSERT OR IGNORE"
            elif self.dialect == "postgresql":
                tail = " ON CONFLICT DO NOTHING"
            else:
                head = "INSERT IGNORE"
            conn.exec_driver_sql(
                f"{head} INTO {self._quote(table.name)} ({names}) VALUES ({ph}){tail}", values
            )
            return
        if self.dialect == "postgresql":
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur:
                copy_sql = f"COPY {self._quote(table.name)} ({names}) FROM STDIN"
                with cur.copy(copy_sql) as copy:
                    for v in values:
                        copy.write_row(v)
            return
        ph = ", ".join([self._placeholder] * len(cols))
        conn.exec_driver_sql(
            f"INSERT INTO {self._quote(table.name)} ({names}) VALUES ({ph})", values
        )

    @property
    def _placeholder(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _append_chunk(
        self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
    ) -> int:
        t = self.tables
        m = t.members
        mids = sorted({e.member_id for e, _ in chunk})
        state_cols = [m.c.id, *(m.c[c] for c in rows.STATE_COLS)]

        def lock(ids: Sequence[str]) -> dict[str, Any]:
            return {
                r["id"]: r
                for r in self._in(
                    conn,
                    lambda c: (
                        sa.select(*state_cols)
                        .where(m.c.id.in_(c))
                        .order_by(m.c.id)
                        .with_for_update()
                    ),
                    ids,
                )
            }

        stored = lock(mids)
        missing = [i for i in mids if i not in stored]
        if missing and self.dialect != "sqlite":
            # other writers may create the same members concurrently: insert-or-ignore the
            # bare rows, then lock them like the others
            self._insert_rows(conn, m, [rows.new_member_row(i) for i in missing], ignore=True)
            stored.update(lock(missing))
            missing = []
        ev = t.events
        existing = set(self._existing(conn, ev, "key", [e.key for e, _ in chunk if e.key]))
        new = [(e, row) for e, row in chunk if e.key is None or e.key not in existing]
        if not new:
            return 0
        self._insert_many(conn, ev, rows.EVENT_COLS, [row for _, row in new])
        per_member: dict[str, list[Event]] = defaultdict(list)
        for e, _ in new:
            per_member[e.member_id].append(e)
        updates = []
        created = []
        for mid, evs in per_member.items():
            folded = rows.fold_events(evs)
            if mid in stored:
                srow = rows.state_row(rows.state_from_row(stored[mid]).combine(folded))
                updates.append((*(srow[c] for c in rows.STATE_COLS), mid))
            else:
                # SQLite: this transaction is the only writer, the member is new
                created.append({**rows.new_member_row(mid), **rows.state_row(folded)})
        if created:
            self._insert_rows(conn, m, created)
        if updates:
            sets = ", ".join(f"{self._quote(c)} = {self._placeholder}" for c in rows.STATE_COLS)
            conn.exec_driver_sql(
                f"UPDATE {self._quote(m.name)} SET {sets} WHERE {self._quote('id')} = "
                f"{self._placeholder}",
                updates,
            )
        return len(new)

    def _upsert_rows(
        self, conn: Connection, table: sa.Table, dict_rows: list[dict[str, Any]]
    ) -> None:
        """Insert rows or replace every non-key column of existing ones (one statement per
        row through the driver's executemany)."""
        if not dict_rows:
            return
        cols: list[str] = list(dict_rows[0])
        keys = {c.name for c in table.primary_key.columns}
        names = ", ".join(self._quote(c) for c in cols)
        ph = ", ".join([self._placeholder] * len(cols))
        head = f"INSERT INTO {self._quote(table.name)} ({names}) VALUES ({ph})"
        others = [c for c in cols if c not in keys]
        if self.dialect in ("mysql", "mariadb"):
            sets = ", ".join(f"{self._quote(c)} = VALUES({self._quote(c)})" for c in others)
            sql = f"{head} ON DUPLICATE KEY UPDATE {sets}"
        else:
            target = ", ".join(self._quote(c) for c in sorted(keys))
            sets = ", ".join(f"{self._quote(c)} = excluded.{self._quote(c)}" for c in others)
            sql = f"{head} ON CONFLICT ({target}) DO UPDATE SET {sets}"
        conn.exec_driver_sql(sql, [tuple(r[c] for c in cols) for r in dict_rows])

    def _insert_rows(
        self,
        conn: Connection,
        table: sa.Table,
        dict_rows: list[dict[str, Any]],
        *,
        ignore: bool = False,
    ) -> None:
        if dict_rows:
            cols: list[str] = list(dict_rows[0])
            self._insert_many(
                conn, table, cols, [tuple(r[c] for c in cols) for r in dict_rows], ignore=ignore
            )

    def events_for(
        self,
        member_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        types: Iterable[str] | None = None,
    ) -> list[Event]:
        """A member's events with ``since < at <= until``, by time.

        Raises:
            UsageError: for a naive bound.
            StoreUnavailable: when the database cannot be reached.
        """
        ev = self.tables.events
        q = sa.select(ev).where(ev.c.member_id == member_id)
        if since is not None:
            q = q.where(ev.c.at > to_epoch_us(check_now(since, "since")))
        if until is not None:
            q = q.where(ev.c.at <= to_epoch_us(check_now(until, "until")))
        if types is not None:
            q = q.where(ev.c.type.in_(sorted(set(types))))
        q = q.order_by(ev.c.at, sa.func.coalesce(ev.c.key, ""), ev.c.seq)
        with self._tx() as conn:
            return [rows.event_from_row(r) for r in conn.execute(q).mappings()]

    def iter_events(self, *, batch_size: int = 10_000) -> Iterator[Event]:
        """Every stored event, in storage order (for export).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        ev = self.tables.events
        last = None
        while True:
            q = sa.select(ev).order_by(ev.c.seq).limit(batch_size)
            if last is not None:
                q = q.where(ev.c.seq > last)
            with self._tx() as conn:
                found = list(conn.execute(q).mappings())
            for r in found:
                yield rows.event_from_row(r)
            if len(found) < batch_size:
                return
            last = found[-1]["seq"]

    # ------------------------------------------------------------------ segments

    def compile(self, segment: Segment, as_of: dt.datetime) -> Expr:
        """The segment as a SQLAlchemy boolean expression over this store's members table
        (to combine with your own queries).

        Raises:
            SegmentError: for an invalid segment or one the attribute schema refuses.
            UsageError: for a naive ``as_of``.
        """
        self._schema.check_segment(segment)
        when = check_as_of(as_of)
        return self._compiler(self.tables, when).process(segment)

    def select(self, segment: Segment, as_of: dt.datetime) -> Iterator[str]:
        """Member ids in the segment as of ``as_of``, sorted by id, streamed in pages.

        Raises:
            SegmentError: for an invalid segment or one the attribute schema refuses.
            UsageError: for a naive ``as_of``.
            StoreUnavailable: when the database cannot be reached.
        """
        expr = self.compile(segment, as_of)
        self._ensure_schema()
        return self._pages(expr)

    def _pages(self, expr: Expr) -> Iterator[str]:
        m = self.tables.members
        last: str | None = None
        while True:
            q = sa.select(m.c.id).where(expr).order_by(m.c.id).limit(_PAGE)
            if last is not None:
                q = q.where(m.c.id > last)
            with self._tx() as conn:
                ids = [str(i) for i in conn.execute(q).scalars()]
            yield from ids
            if len(ids) < _PAGE:
                return
            last = ids[-1]

    def count(self, segment: Segment, as_of: dt.datetime) -> int:
        """How many members are in the segment as of ``as_of`` (one SQL query).

        Raises:
            SegmentError: for an invalid segment or one the attribute schema refuses.
            UsageError: for a naive ``as_of``.
            StoreUnavailable: when the database cannot be reached.
        """
        expr = self.compile(segment, as_of)
        m = self.tables.members
        with self._tx() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(m).where(expr)).scalar_one()
            )

    def sample(
        self, segment: Segment, as_of: dt.datetime, n: int, seed: int | str = 0
    ) -> list[str]:
        """Up to ``n`` member ids of the segment, the same deterministic choice as every
        store for ``seed``, sorted by id.

        Raises:
            SegmentError: for an invalid segment.
            UsageError: for a negative ``n`` or a bad seed.
            StoreUnavailable: when the database cannot be reached.
        """
        size, salt = check_sample_args(n, seed)
        expr = self.compile(segment, as_of)
        if size == 0:
            return []
        a, b = sample_coefficients(salt)
        m = self.tables.members
        rank = (
            sa.literal(a, sa.BigInteger) * m.c.member_hash + sa.literal(b, sa.BigInteger)
        ) % HASH_PRIME
        q = sa.select(m.c.id).where(expr).order_by(rank, m.c.id).limit(size)
        with self._tx() as conn:
            return sorted(str(i) for i in conn.execute(q).scalars())

    # ------------------------------------------------------------------ ledger

    def record_plan(self, deliveries: Iterable[Delivery], *, now: dt.datetime) -> int:
        """Insert deliveries as ``planned`` unless their key exists; returns how many new.

        Raises:
            UsageError: for a value that is not a Delivery, a naive ``now``, or a payload
                that is not JSON-serialisable.
            StoreUnavailable: when the database cannot be reached.
        """
        when = check_now(now)
        batch: dict[str, dict[str, Any]] = {}
        for d in deliveries:
            if not isinstance(d, Delivery):
                raise UsageError(f"record_plan takes Delivery values, got {d!r}")
            batch.setdefault(d.key, rows.delivery_row(d, when))
        t = self.tables.deliveries
        items = list(batch.values())

        def run(conn: Connection, chunk: Sequence[dict[str, Any]]) -> int:
            keys = [r["key"] for r in chunk]
            have = {
                r["key"]
                for r in self._in(conn, lambda c: sa.select(t.c.key).where(t.c.key.in_(c)), keys)
            }
            todo = [r for r in chunk if r["key"] not in have]
            if todo:
                conn.execute(self._insert_ignore(t), todo)
            return len(todo)

        return sum(
            self._write(lambda conn, c=c: run(conn, c))  # type: ignore[misc]
            for c in _chunks(items, 1000)
        )

    def claim(
        self,
        campaign_id: str,
        *,
        worker: str,
        limit: int,
        now: dt.datetime,
        channel: str | None = None,
    ) -> list[DeliveryRecord]:
        """Move up to ``limit`` planned deliveries (by key) to ``sending`` for ``worker``.

        On PostgreSQL and MySQL/MariaDB the rows are picked with ``FOR UPDATE SKIP LOCKED``,
        so concurrent workers never block on or share a delivery; on SQLite the claim is a
        single-writer transaction.

        Raises:
            UsageError: for a negative limit or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise UsageError(f"claim limit must be a non-negative int, got {limit!r}")
        if limit == 0:
            return []
        t = self.tables.deliveries

        def run(conn: Connection) -> list[DeliveryRecord]:
            q = sa.select(t.c.key).where(
                t.c.campaign_id == campaign_id, t.c.status == DeliveryStatus.PLANNED.value
            )
            if channel is not None:
                q = q.where(t.c.channel == channel)
            q = q.order_by(t.c.key).limit(limit)
            if self.dialect != "sqlite":
                q = q.with_for_update(skip_locked=True)
            keys = list(conn.execute(q).scalars())
            if not keys:
                return []
            conn.execute(
                sa.update(t)
                .where(t.c.key.in_(keys))
                .values(
                    status=DeliveryStatus.SENDING.value,
                    attempts=t.c.attempts + 1,
                    worker=worker,
                    updated_at=when,
                )
            )
            got = conn.execute(sa.select(t).where(t.c.key.in_(keys)).order_by(t.c.key))
            return [rows.delivery_record(r) for r in got.mappings()]

        return self._write(run)

    def mark(
        self,
        key: str,
        status: DeliveryStatus,
        *,
        now: dt.datetime,
        reason: str | None = None,
        platform_id: str | None = None,
    ) -> None:
        """Move one delivery to ``status``.

        Raises:
            LedgerError: for an unknown key or a transition the state machine refuses.
            UsageError: for an unknown status or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        new = check_delivery_status(status)
        t = self.tables.deliveries

        def run(conn: Connection) -> None:
            r = conn.execute(
                sa.select(t.c.status, t.c.worker).where(t.c.key == key).with_for_update()
            ).first()
            if r is None:
                raise LedgerError(f"unknown delivery {key!r}")
            check_transition(key, DeliveryStatus(r.status), new)
            values: dict[str, Any] = {"status": new.value, "updated_at": when}
            if new is not DeliveryStatus.SENDING:
                values["worker"] = None
            if reason is not None:
                values["reason"] = reason
            if platform_id is not None:
                values["platform_id"] = platform_id
            conn.execute(sa.update(t).where(t.c.key == key).values(**values))

        self._write(run)

    def stale(self, campaign_id: str, *, older_than: dt.datetime) -> list[DeliveryRecord]:
        """Deliveries left ``sending`` since before ``older_than``, by key.

        Raises:
            UsageError: for a naive ``older_than``.
            StoreUnavailable: when the database cannot be reached.
        """
        cutoff = to_epoch_us(check_now(older_than, "older_than"))
        t = self.tables.deliveries
        q = (
            sa.select(t)
            .where(
                t.c.campaign_id == campaign_id,
                t.c.status == DeliveryStatus.SENDING.value,
                t.c.updated_at < cutoff,
            )
            .order_by(t.c.key)
        )
        with self._tx() as conn:
            return [rows.delivery_record(r) for r in conn.execute(q).mappings()]

    def deliveries(
        self, campaign_id: str, *, status: DeliveryStatus | None = None
    ) -> Iterator[DeliveryRecord]:
        """The campaign's deliveries (optionally of one status), by key, read in pages.

        Raises:
            UsageError: for an unknown status.
            StoreUnavailable: when the database cannot be reached.
        """
        wanted = None if status is None else check_delivery_status(status)
        self._ensure_schema()
        return self._delivery_pages(campaign_id, wanted)

    def _delivery_pages(
        self, campaign_id: str, wanted: DeliveryStatus | None
    ) -> Iterator[DeliveryRecord]:
        t = self.tables.deliveries
        last: str | None = None
        while True:
            q = sa.select(t).where(t.c.campaign_id == campaign_id)
            if wanted is not None:
                q = q.where(t.c.status == wanted.value)
            if last is not None:
                q = q.where(t.c.key > last)
            q = q.order_by(t.c.key).limit(_PAGE)
            with self._tx() as conn:
                found = [rows.delivery_record(r) for r in conn.execute(q).mappings()]
            yield from found
            if len(found) < _PAGE:
                return
            last = found[-1].key

    def status_counts(self, campaign_id: str) -> Mapping[str, int]:
        """Number of deliveries per status value (every status present, zeros included).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.deliveries
        counts = {s.value: 0 for s in DeliveryStatus}
        q = (
            sa.select(t.c.status, sa.func.count())
            .where(t.c.campaign_id == campaign_id)
            .group_by(t.c.status)
        )
        with self._tx() as conn:
            for status, n in conn.execute(q):
                counts[str(status)] = int(n)
        return counts

    # ------------------------------------------------------------------ budgets

    def ensure_budget(self, key: str, *, limit: int) -> None:
        """Create the budget row if absent (an existing row keeps its limit).

        Raises:
            UsageError: for an empty key or a negative limit.
            StoreUnavailable: when the database cannot be reached.
        """
        if not isinstance(key, str) or not key:
            raise UsageError(f"budget key must be a non-empty str, got {key!r}")
        rows.check_text("budget key", key)
        lim = check_limit(limit)
        t = self.tables.budgets
        self._write(
            lambda conn: conn.execute(
                self._insert_ignore(t).values(key=key, budget_limit=lim, reserved=0, spent=0)
            )
        )

    def _known(self, conn: Connection, keys: Iterable[str]) -> None:
        t = self.tables.budgets
        wanted = sorted(keys)
        have = {
            r["key"]
            for r in self._in(conn, lambda c: sa.select(t.c.key).where(t.c.key.in_(c)), wanted)
        }
        for k in wanted:
            if k not in have:
                raise UsageError(f"unknown budget {k!r}; create it with ensure_budget")

    def reserve(self, items: Sequence[tuple[str, int]]) -> bool:
        """Reserve every ``(key, amount)`` or none, in one transaction of conditional
        updates (``reserved + spent + amount <= limit``).

        Returns:
            ``False`` (and nothing reserved) when any budget would exceed its limit.

        Raises:
            UsageError: for an unknown budget or a malformed item.
            StoreUnavailable: when the database cannot be reached.
        """
        wanted = check_items(items)
        t = self.tables.budgets

        class _Refused(Exception):
            pass

        def run(conn: Connection) -> bool:
            self._known(conn, wanted)
            for key in sorted(wanted):
                amount = wanted[key]
                res = conn.execute(
                    sa.update(t)
                    .where(t.c.key == key, t.c.reserved + t.c.spent + amount <= t.c.budget_limit)
                    .values(reserved=t.c.reserved + amount)
                )
                if res.rowcount != 1:
                    raise _Refused
            return True

        try:
            return self._write(run)
        except _Refused:
            return False

    def release(self, items: Sequence[tuple[str, int]]) -> None:
        """Give reserved amounts back.

        Raises:
            UsageError: for an unknown budget or more than is reserved.
            StoreUnavailable: when the database cannot be reached.
        """
        self._move(items, settle=False)

    def settle(self, items: Sequence[tuple[str, int]]) -> None:
        """Turn reserved amounts into spent.

        Raises:
            UsageError: for an unknown budget or more than is reserved.
            StoreUnavailable: when the database cannot be reached.
        """
        self._move(items, settle=True)

    def _move(self, items: Sequence[tuple[str, int]], *, settle: bool) -> None:
        wanted = check_items(items)
        t = self.tables.budgets

        def run(conn: Connection) -> None:
            self._known(conn, wanted)
            for key in sorted(wanted):
                amount = wanted[key]
                values: dict[str, Any] = {"reserved": t.c.reserved - amount}
                if settle:
                    values["spent"] = t.c.spent + amount
                res = conn.execute(
                    sa.update(t).where(t.c.key == key, t.c.reserved >= amount).values(**values)
                )
                if res.rowcount != 1:
                    raise UsageError(
                        f"budget {key!r}: cannot {'settle' if settle else 'release'} {amount}, "
                        "more than is reserved"
                    )

        self._write(run)

    def budget(self, key: str) -> BudgetState | None:
        """The budget row, or ``None``.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.budgets
        with self._tx() as conn:
            r = conn.execute(sa.select(t).where(t.c.key == key)).mappings().first()
        if r is None:
            return None
        return BudgetState(
            key=r["key"],
            limit=int(r["budget_limit"]),
            reserved=int(r["reserved"]),
            spent=int(r["spent"]),
        )

    # ------------------------------------------------------------------ payouts

    def record_intent(self, intent: PayoutIntent) -> PayoutIntent:
        """Insert the intent unless its bill number exists; return the stored one.

        Raises:
            UsageError: for an invalid intent.
            StoreUnavailable: when the database cannot be reached.
        """
        row = rows.intent_row(check_intent(intent))
        t = self.tables.payouts

        def run(conn: Connection) -> PayoutIntent:
            conn.execute(self._insert_ignore(t).values(**row))
            got = conn.execute(sa.select(t).where(t.c.bill_no == intent.bill_no)).mappings()
            return rows.intent_from_row(got.one())

        return self._write(run)

    def update_intent(
        self, bill_no: str, *, status: str, now: dt.datetime, detail: str | None = None
    ) -> None:
        """Change an intent's status (and detail, when given).

        Raises:
            LedgerError: for an unknown bill number.
            UsageError: for an unknown status or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        st = check_payout_status(status)
        when = to_epoch_us(check_now(now))
        t = self.tables.payouts
        values: dict[str, Any] = {"status": st, "updated_at": when}
        if detail is not None:
            values["detail"] = detail

        def run(conn: Connection) -> None:
            res = conn.execute(sa.update(t).where(t.c.bill_no == bill_no).values(**values))
            if res.rowcount != 1:
                raise LedgerError(f"unknown payout intent {bill_no!r}")

        self._write(run)

    def intents(
        self, *, rule_id: str | None = None, status: str | None = None
    ) -> list[PayoutIntent]:
        """Intents (optionally of one rule / status), by bill number.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.payouts
        q = sa.select(t).order_by(t.c.bill_no)
        if rule_id is not None:
            q = q.where(t.c.rule_id == rule_id)
        if status is not None:
            q = q.where(t.c.status == status)
        with self._tx() as conn:
            return [rows.intent_from_row(r) for r in conn.execute(q).mappings()]

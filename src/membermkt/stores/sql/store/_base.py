"""The shared plumbing of :class:`~membermkt.stores.sql.SqlStore`: the engine, connections,
transactions (with deadlock retries), error wrapping and schema create / migrate / drop."""

from __future__ import annotations

import re
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from membermkt.errors import ConfigError, StoreError, StoreUnavailable
from membermkt.security.phone_policy import PhonePolicy, configured_protector
from membermkt.security.phones import PhoneProtector
from membermkt.stores._common import AttributeSchema
from membermkt.stores.sql.compile import compiler_for
from membermkt.stores.sql.schema import MIGRATIONS, SCHEMA_VERSION, Tables

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


class _Base:
    """Engine, connections, transactions and schema management shared by every mixin of
    :class:`~membermkt.stores.sql.SqlStore` (its constructor arguments are documented there).
    """

    def __init__(
        self,
        url: str | sa.URL,
        *,
        table_prefix: str = "mm_",
        attributes: Mapping[str, type] | None = None,
        strict: bool = False,
        engine_options: Mapping[str, Any] | None = None,
        phones: PhoneProtector | None = None,
        insecure_demo: bool = False,
    ) -> None:
        self.phones: PhoneProtector | None = (
            phones if phones is not None else configured_protector()
        )
        self._phone_policy = PhonePolicy(self.phones, insecure_demo=insecure_demo, where="SqlStore")
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
    def insecure_demo(self) -> bool:
        """Whether this store keeps phone digests without a key (see ``insecure_demo``)."""
        return self._phone_policy.insecure_demo

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

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        # The DB-API's own base error (PEP 249): some drivers raise it where SQLAlchemy does
        # not wrap it (psycopg refuses a NUL byte while adapting executemany parameters).
        dbapi = getattr(self._engine.dialect, "loaded_dbapi", None) or getattr(
            self._engine.dialect, "dbapi", None
        )
        base = getattr(dbapi, "Error", None)
        if isinstance(base, type) and issubclass(base, BaseException):
            return (sa_exc.SQLAlchemyError, base)
        return (sa_exc.SQLAlchemyError,)

    def _operation(self) -> str:
        # The public store method being run (the outermost frame of this store whose name
        # is public), so every StoreError names the operation that failed.
        frame = sys._getframe(1)
        found = "a database operation"
        while frame is not None:
            if frame.f_locals.get("self") is self and not frame.f_code.co_name.startswith("_"):
                found = frame.f_code.co_name
            frame = frame.f_back  # type: ignore[assignment]
        return found

    def _wrap(self, exc: BaseException) -> StoreError:
        op = self._operation()
        orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return StoreUnavailable(f"{op}: lost the connection to {self._describe()}: {orig}")
        if isinstance(exc, sa_exc.OperationalError) and "connect" in str(orig).lower():
            return StoreUnavailable(
                f"{op}: cannot reach the database at {self._describe()}: {orig}"
            )
        return StoreError(f"{op}: database error on {self._describe()}: {orig}")

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

    def _index_lookups(self, conn: Connection) -> None:
        """Tell PostgreSQL to answer this transaction's lookups through indexes.

        The read hot paths of ``prepare`` look rows up by an indexed column, 4,000 values
        at a time (members by id, identities/tags/attributes and ledger history by member
        id). With stale statistics — a table that grew since it was last analysed, as a
        ledger does within one large ``prepare``, or identities bulk-loaded a moment ago —
        the planner believes the table is tiny and scans it whole for every chunk, which
        made ``prepare`` quadratic: 1 s a chunk at 2M ledger rows, found by the 10M-member
        benchmark (#18). ``enable_seqscan = off`` only prices sequential scans out of the
        plans of this transaction; for these IN-list lookups an index scan is always the
        right plan.
        """
        if self.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")

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
            except self._driver_errors() as exc:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

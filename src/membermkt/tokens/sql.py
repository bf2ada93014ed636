"""SQL token caches (SQLAlchemy Core): SQLite, PostgreSQL, MySQL/MariaDB.

Two small tables, ``<prefix>tokens`` (key, token, expires_at) and, for SQLite only,
``<prefix>token_locks``. The refresh lock is a real cross-process lock on every backend:

* PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a dedicated connection;
* MySQL/MariaDB: ``GET_LOCK(name, timeout)`` on a dedicated connection;
* SQLite (and anything else): a lock row inserted under the database's write lock, with a
  lease so that a crashed holder cannot block refreshes forever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from membermkt.core.ports import TokenEntry
from membermkt.errors import StoreError, UsageError
from membermkt.tokens._lease import LeaseRenewer

__all__ = ["AsyncSqlTokenCache", "SqlTokenCache"]


def _engine(url_or_engine: str | Engine) -> Engine:
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    if not isinstance(url_or_engine, str) or not url_or_engine:
        raise UsageError("SqlTokenCache needs a database URL or a SQLAlchemy Engine")
    kwargs: dict[str, Any] = {}
    if url_or_engine.startswith("sqlite"):
        # Several processes write the same file: wait for the write lock instead of failing.
        kwargs["connect_args"] = {"timeout": 30}
    return sa.create_engine(url_or_engine, **kwargs)


class SqlTokenCache:
    """A ``TokenCache`` in a SQL database shared by several processes.

    Args:
        url_or_engine: a SQLAlchemy URL or ``Engine``.
        table_prefix: prefix of the cache's tables (one per application/test).
        lease: seconds an SQLite lock row lives if its holder dies.
        create: create the tables if missing (default ``True``).

    Raises:
        UsageError: for a bad URL or prefix.
        StoreError: when the database cannot be reached or the tables cannot be created.
    """

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        table_prefix: str = "membermkt_",
        lease: float = 30.0,
        create: bool = True,
    ) -> None:
        if not table_prefix.replace("_", "").isalnum():
            raise UsageError(f"table_prefix must be letters, digits and _, got {table_prefix!r}")
        self.engine = _engine(url_or_engine)
        self._own_engine = not isinstance(url_or_engine, Engine)
        self._dialect = self.engine.dialect.name
        self._lease = lease
        md = sa.MetaData()
        self.tokens = sa.Table(
            f"{table_prefix}tokens",
            md,
            sa.Column("key", sa.String(191), primary_key=True),
            sa.Column("token", sa.String(1024), nullable=False),
            sa.Column("expires_at", sa.Double, nullable=False),
        )
        self.locks = sa.Table(
            f"{table_prefix}token_locks",
            md,
            sa.Column("key", sa.String(191), primary_key=True),
            sa.Column("holder", sa.String(64), nullable=False),
            sa.Column("until", sa.Double, nullable=False),
        )
        self._prefix = table_prefix
        self._metadata = md
        if create:
            try:
                md.create_all(self.engine)
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"SqlTokenCache: cannot create tables: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqlTokenCache({self._dialect}, prefix={self._prefix!r})"

    def close(self) -> None:
        """Release pooled connections (when the cache created its own engine)."""
        if self._own_engine:
            self.engine.dispose()

    def drop_tables(self) -> None:
        """Drop the cache's tables (tests, uninstall).

        Raises:
            StoreError: when the database fails.
        """
        try:
            self._metadata.drop_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"SqlTokenCache: cannot drop tables: {exc}") from exc

    def get(self, key: str) -> TokenEntry | None:
        """The cached entry, or ``None``.

        Raises:
            StoreError: when the database fails.
        """
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(self.tokens.c.token, self.tokens.c.expires_at).where(
                        self.tokens.c.key == key
                    )
                ).first()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"SqlTokenCache.get failed: {exc}") from exc
        if row is None:
            return None
        return TokenEntry(row[0], dt.datetime.fromtimestamp(row[1], dt.UTC))

    def set(self, key: str, entry: TokenEntry) -> None:
        """Store an entry (insert or replace).

        Raises:
            StoreError: when the database fails.
        """
        values = {"token": entry.token, "expires_at": entry.expires_at.timestamp()}
        try:
            with self.engine.begin() as conn:
                n = conn.execute(
                    sa.update(self.tokens).where(self.tokens.c.key == key).values(**values)
                ).rowcount
                if not n:
                    try:
                        with conn.begin_nested():
                            conn.execute(sa.insert(self.tokens).values(key=key, **values))
                    except sa.exc.IntegrityError:
                        conn.execute(
                            sa.update(self.tokens).where(self.tokens.c.key == key).values(**values)
                        )
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"SqlTokenCache.set failed: {exc}") from exc

    def expire_if(self, key: str, token: str) -> bool:
        """Delete the entry only if it still holds ``token``.

        Raises:
            StoreError: when the database fails.
        """
        try:
            with self.engine.begin() as conn:
                n = conn.execute(
                    sa.delete(self.tokens).where(
                        self.tokens.c.key == key, self.tokens.c.token == token
                    )
                ).rowcount
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"SqlTokenCache.expire_if failed: {exc}") from exc
        return bool(n)

    @contextmanager
    def lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the cross-process refresh lock of ``key``.

        Raises:
            StoreError: when the lock is not acquired within ``timeout`` seconds or the
                database fails.
        """
        name = f"{self._prefix}{key}"
        try:
            if self._dialect == "postgresql":
                with self._pg_lock(name, timeout):
                    yield
            elif self._dialect in ("mysql", "mariadb"):
                with self._mysql_lock(name, timeout):
                    yield
            else:
                with self._row_lock(key, timeout):
                    yield
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"SqlTokenCache.lock failed: {exc}") from exc

    @contextmanager
    def _pg_lock(self, name: str, timeout: float) -> Iterator[None]:
        lock_id = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            _poll(
                lambda: bool(
                    conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(:i)"), {"i": lock_id}
                    ).scalar()
                ),
                timeout,
                name,
            )
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:i)"), {"i": lock_id})

    @contextmanager
    def _mysql_lock(self, name: str, timeout: float) -> Iterator[None]:
        lock_name = "mm:" + hashlib.sha256(name.encode()).hexdigest()[:48]
        with self.engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:n, :t)"), {"n": lock_name, "t": max(0, int(timeout))}
            ).scalar()
            if got != 1:
                raise StoreError(f"token lock {name!r} not acquired within {timeout} s")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": lock_name})

    @contextmanager
    def _row_lock(self, key: str, timeout: float) -> Iterator[None]:
        holder = secrets.token_hex(16)

        def try_take() -> bool:
            now = time.time()
            with self.engine.begin() as conn:
                if self._dialect == "sqlite":
                    # Take SQLite's write lock first so the check-and-insert is atomic.
                    conn.exec_driver_sql("UPDATE " + self.locks.name + " SET until = until WHERE 0")
                conn.execute(
                    sa.delete(self.locks).where(self.locks.c.key == key, self.locks.c.until < now)
                )
                exists = conn.execute(
                    sa.select(self.locks.c.holder).where(self.locks.c.key == key)
                ).first()
                if exists is not None:
                    return False
                conn.execute(
                    sa.insert(self.locks).values(key=key, holder=holder, until=now + self._lease)
                )
                return True

        def attempt() -> bool:
            try:
                return try_take()
            except sa.exc.IntegrityError:
                return False

        _poll(attempt, timeout, key)

        def renew() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(self.locks)
                    .where(self.locks.c.key == key, self.locks.c.holder == holder)
                    .values(until=time.time() + self._lease)
                )

        renewer = LeaseRenewer(renew, self._lease)
        try:
            yield
        finally:
            renewer.stop()
            with self.engine.begin() as conn:
                conn.execute(
                    sa.delete(self.locks).where(
                        self.locks.c.key == key, self.locks.c.holder == holder
                    )
                )


def _poll(take: Any, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not take():
        if time.monotonic() >= deadline:
            raise StoreError(f"token lock {name!r} not acquired within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class AsyncSqlTokenCache:
    """The async twin of :class:`SqlTokenCache`: the same tables and locks, each operation
    run in a worker thread (no async database driver needed).

    Raises:
        UsageError: for a bad URL or prefix.
        StoreError: when the database cannot be reached.
    """

    def __init__(self, url_or_engine: str | Engine, **kwargs: Any) -> None:
        self.sync = SqlTokenCache(url_or_engine, **kwargs)

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    async def get(self, key: str) -> TokenEntry | None:
        return await asyncio.to_thread(self.sync.get, key)

    async def set(self, key: str, entry: TokenEntry) -> None:
        await asyncio.to_thread(self.sync.set, key, entry)

    async def expire_if(self, key: str, token: str) -> bool:
        return await asyncio.to_thread(self.sync.expire_if, key, token)

    @asynccontextmanager
    async def lock(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        cm = self.sync.lock(key, timeout=timeout)
        await asyncio.to_thread(cm.__enter__)
        try:
            yield
        finally:
            await asyncio.to_thread(cm.__exit__, None, None, None)

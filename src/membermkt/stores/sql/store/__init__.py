"""``SqlStore``: the whole :class:`~membermkt.core.ports.Store` on SQLAlchemy Core.

SQLite (the embedded default, WAL mode), PostgreSQL (``postgresql+psycopg://``) and
MySQL/MariaDB (``mysql+pymysql://``). Segments are compiled to SQL
(:mod:`membermkt.stores.sql.compile`) and evaluated by the database.
"""

from __future__ import annotations

from membermkt.stores.export_sql import SqlExport
from membermkt.stores.sql.store._batches import _BatchesMixin
from membermkt.stores.sql.store._budgets import _BudgetsMixin
from membermkt.stores.sql.store._events import _EventsMixin
from membermkt.stores.sql.store._ingest import _IngestMixin
from membermkt.stores.sql.store._ledger import _LedgerMixin
from membermkt.stores.sql.store._links import _LinksMixin
from membermkt.stores.sql.store._members import _MembersMixin
from membermkt.stores.sql.store._payouts import _PayoutsMixin
from membermkt.stores.sql.store._segments import _SegmentsMixin

__all__ = ["SqlStore"]


class SqlStore(
    _IngestMixin,
    _LinksMixin,
    _MembersMixin,
    _EventsMixin,
    _SegmentsMixin,
    _LedgerMixin,
    _BatchesMixin,
    _BudgetsMixin,
    _PayoutsMixin,
    SqlExport,
):
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
        phones: the phone key ring (:class:`~membermkt.security.phones.PhoneProtector`);
            default: ``MEMBERMKT_PHONE_KEYS`` from the environment when set. Kept as
            :attr:`phones` for the flows that index, encrypt or decrypt numbers.
        insecure_demo: keep phone identities without a key (unkeyed digests): for
            throwaway demos and test databases only.

    A phone identity is stored only when its namespace (key id) is in ``phones``' ring, or
    with ``insecure_demo=True``; anything else raises
    :class:`~membermkt.errors.PhoneKeyRequired` before a row is written
    (:mod:`membermkt.security.phone_policy`, ``docs/security.md``).

    Raises:
        ConfigError: for a malformed URL, an unsupported database, a missing driver (install
            the extra), a bad table prefix, or a malformed ``MEMBERMKT_PHONE_KEYS``.
        UsageError: for an invalid attribute declaration.
    """

"""Export a store into another SQL database (the merchant's own CRM) as a flat schema.

:func:`export_sql` writes four plain tables (names prefixed with ``table_prefix``) through
SQLAlchemy, so any database SQLAlchemy reaches can receive them:

* ``members``: one row per member — profile, consent and every derived field as plain
  columns (times as timezone-aware UTC timestamps, money as integer fen);
* ``member_identities``: (member_id, kind, namespace, value) — phone values are digests;
* ``member_tags``: (member_id, tag);
* ``events``: (member_id, type, at, key, properties as JSON text).

Existing tables of those names are replaced. With ``as_of``, the derived fields are the
state as of that time (folded from the events at or before it, on every store) and only
those events are copied (:mod:`membermkt.stores._as_of`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import sqlalchemy as sa

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.errors import ConfigError, StoreError, UsageError
from membermkt.stores._as_of import events_as_of, members_as_of
from membermkt.stores._common import check_as_of

__all__ = ["ExportCounts", "SqlExport", "export_sql"]


class _Exportable(Protocol):
    def iter_members(self) -> Iterator[Member]: ...

    def iter_events(self) -> Iterator[Event]: ...

    def events_for(self, member_id: str, *, until: dt.datetime | None = None) -> list[Event]: ...


ExportCounts = dict[str, int]
"""Rows written per table."""


def _tables(prefix: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData()
    ts = sa.DateTime(timezone=True)
    s = sa.String(255)
    members = sa.Table(
        f"{prefix}members",
        md,
        sa.Column("id", sa.String(128), primary_key=True),
        *(sa.Column(c, s) for c in ("gender", "city", "province", "country")),
        sa.Column("birthday", sa.Date),
        sa.Column("income_band", s),
        sa.Column("tier", s),
        sa.Column("marketing", sa.Boolean),
        sa.Column("opted_out_channels", sa.Text),
        sa.Column("attributes", sa.Text),
        sa.Column("subscribed", sa.Boolean),
        sa.Column("followed_at", ts),
        sa.Column("source", s),
        sa.Column("last_active_at", ts),
        sa.Column("orders_count", sa.BigInteger),
        sa.Column("orders_total_fen", sa.BigInteger),
        sa.Column("first_order_at", ts),
        sa.Column("last_order_at", ts),
        sa.Column("wecom_contact", sa.Boolean),
        sa.Column("wecom_staff", sa.Text),
    )
    identities = sa.Table(
        f"{prefix}member_identities",
        md,
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
    )
    tags = sa.Table(
        f"{prefix}member_tags",
        md,
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("tag", s, nullable=False),
    )
    events = sa.Table(
        f"{prefix}events",
        md,
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("key", sa.String(200)),
        sa.Column("properties", sa.Text, nullable=False),
    )
    return md, {
        "members": members,
        "member_identities": identities,
        "member_tags": tags,
        "events": events,
    }


def _dump(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def _member_row(m: Member) -> dict[str, Any]:
    p, st = m.profile, m.state
    return {
        "id": m.id,
        "gender": p.gender,
        "city": p.city,
        "province": p.province,
        "country": p.country,
        "birthday": p.birthday,
        "income_band": p.income_band,
        "tier": p.tier,
        "marketing": m.consent.marketing,
        "opted_out_channels": _dump(sorted(m.consent.opted_out_channels)),
        "attributes": _dump(m.attributes.to_dict()),
        "subscribed": st.subscribed,
        "followed_at": st.followed_at,
        "source": st.source,
        "last_active_at": st.last_active_at,
        "orders_count": st.purchases.count,
        "orders_total_fen": st.purchases.total_fen,
        "first_order_at": st.purchases.first_at,
        "last_order_at": st.purchases.last_at,
        "wecom_contact": st.wecom_contact,
        "wecom_staff": _dump(list(st.live_staff)),
    }


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def export_sql(
    store: _Exportable,
    url: str | sa.Engine,
    *,
    table_prefix: str = "",
    batch_size: int = 1000,
    as_of: dt.datetime | None = None,
) -> ExportCounts:
    """Copy every member and event of ``store`` into the database at ``url``.

    Args:
        store: any store with ``iter_members``, ``iter_events`` and ``events_for``
            (``InMemoryStore``, ``SqlStore``).
        url: a SQLAlchemy URL (or an engine) of the target database.
        table_prefix: prefix of the four table names.
        batch_size: rows per insert.
        as_of: export the members' derived state as of this (timezone-aware) time and only
            the events at or before it; ``None`` (default): the stored state and every
            event.

    Returns:
        Rows written per table.

    Raises:
        UsageError: for a bad ``table_prefix``, ``batch_size`` or a naive ``as_of``.
        ConfigError: for a URL SQLAlchemy cannot use.
        StoreError: when the target database fails.
    """
    if not isinstance(table_prefix, str) or not all(c.isalnum() or c == "_" for c in table_prefix):
        raise UsageError(f"table_prefix must hold letters, digits and '_', got {table_prefix!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive int, got {batch_size!r}")
    if as_of is not None:
        as_of = check_as_of(as_of)
    try:
        engine = url if isinstance(url, sa.Engine) else sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"cannot use export URL: {exc}") from exc
    md, t = _tables(table_prefix)
    counts = dict.fromkeys(t, 0)

    def member_rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for m in members_as_of(store, as_of):
            yield "members", _member_row(m)
            for i in m.identities:
                yield (
                    "member_identities",
                    {
                        "member_id": m.id,
                        "kind": i.kind.value,
                        "namespace": i.namespace,
                        "value": i.value,
                    },
                )
            for tag in sorted(m.tags):
                yield "member_tags", {"member_id": m.id, "tag": tag}

    try:
        with engine.begin() as conn:
            md.drop_all(conn, checkfirst=True)
            md.create_all(conn)
            pending: dict[str, list[dict[str, Any]]] = {k: [] for k in t}
            for name, row in member_rows():
                pending[name].append(row)
                if len(pending[name]) >= batch_size:
                    conn.execute(sa.insert(t[name]), pending[name])
                    counts[name] += len(pending[name])
                    pending[name] = []
            for name, rows in pending.items():
                if rows:
                    conn.execute(sa.insert(t[name]), rows)
                    counts[name] += len(rows)
            events = (
                {
                    "member_id": e.member_id,
                    "type": e.type,
                    "at": e.at_utc,
                    "key": e.key,
                    "properties": _dump(e.properties.to_dict()),
                }
                for e in events_as_of(store, as_of)
            )
            for batch in _batches(events, batch_size):
                conn.execute(sa.insert(t["events"]), batch)
                counts["events"] += len(batch)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"export to SQL failed: {exc}") from exc
    finally:
        if not isinstance(url, sa.Engine):
            engine.dispose()
    return counts


class SqlExport:
    """``store.export_sql(url)``: the method form of :func:`export_sql` on the stores."""

    def export_sql(
        self,
        url: str | sa.Engine,
        *,
        table_prefix: str = "",
        batch_size: int = 1000,
        as_of: dt.datetime | None = None,
    ) -> ExportCounts:
        """Copy every member and event into the database at ``url`` (see
        :func:`membermkt.stores.export_sql.export_sql`; ``as_of``: the state as of that
        time and the events up to it).

        Raises:
            UsageError: for a bad argument.
            ConfigError: for a URL SQLAlchemy cannot use.
            StoreError: when the target database fails.
        """
        return export_sql(
            self,  # type: ignore[arg-type]
            url,
            table_prefix=table_prefix,
            batch_size=batch_size,
            as_of=as_of,
        )

"""Segments evaluated by the database: compile, select, count and sample."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.segments import HASH_PRIME, Segment
from membermkt.stores._common import check_as_of, check_sample_args, sample_coefficients
from membermkt.stores.sql.compile import Expr
from membermkt.stores.sql.store._base import _PAGE, _Base


class _SegmentsMixin(_Base):
    """Segment queries compiled to SQL (:mod:`membermkt.stores.sql.compile`)."""

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

    @contextmanager
    def _segment_tx(self) -> Iterator[Connection]:
        """A read transaction for a compiled segment query.

        On PostgreSQL it turns JIT compilation off for the transaction (``SET LOCAL jit =
        off``). JIT is chosen from the plan's *estimated* cost, and the planner prices the
        as-of fold subplans of derived fields as if they ran for every candidate row,
        although they run only for members whose stored state is stale (usually none). At
        100k members that estimate crossed ``jit_optimize_above_cost``: 0.31 s of which
        0.27 s was LLVM compiling, against 0.034 s with JIT off (#18, see
        docs/performance/segments.md).
        """
        with self._tx() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL jit = off")
            yield conn

    def _pages(self, expr: Expr) -> Iterator[str]:
        m = self.tables.members
        last: str | None = None
        while True:
            q = sa.select(m.c.id).where(expr).order_by(m.c.id).limit(_PAGE)
            if last is not None:
                q = q.where(m.c.id > last)
            with self._segment_tx() as conn:
                ids = [str(i) for i in conn.execute(q).scalars().all()]  # one fetch a page
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
        with self._segment_tx() as conn:
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
        with self._segment_tx() as conn:
            return sorted(str(i) for i in conn.execute(q).scalars())

"""Synthetic members and events generated column-wise with numpy, for data at scale.

:func:`membermkt.testing.synthetic.generate` builds one validated-equivalent
:class:`~membermkt.Member` and its :class:`~membermkt.Event` values at a time (about 50 µs
of one core per member: fine up to ~100k members, the demo's source). This module draws the
same kind of population — the same sources, menu habits, pages, categories, WeCom clerks —
as **columns**: every random choice is one numpy call over all members or all events, the
members' folded state is computed with grouped reductions over the sorted event columns,
and :func:`load` writes the columns straight into a fresh
:class:`~membermkt.stores.sql.SqlStore` (``COPY`` on PostgreSQL, ``executemany`` through the
driver elsewhere) without building a ``Member`` or ``Event`` per row. For notebooks and
DuckDB, :meth:`BulkPopulation.frames` gives the two tables as pandas data frames.

>>> from membermkt.testing.bulk import generate_columns  # doctest: +SKIP
>>> pop = generate_columns(1_000_000, seed=7)            # doctest: +SKIP
>>> len(pop), pop.n_events                               # doctest: +SKIP

Seeded and deterministic: the same seed and size give the same columns (numpy's PCG64
generator; numpy documents that a ``Generator``'s stream may change between numpy
releases, so the same seed is only promised the same data under the same numpy version).
It is a different population from :func:`~membermkt.testing.synthetic.generate` with the
same seed (the draws are made in another order).

What it does not make: phone identities (a store keeping phones needs their key ring; use
``synthetic.generate`` for those stories), event keys (events are keyed ``None``, so
loading the same population twice would store every event twice: :func:`load` refuses a
store that already holds members), and custom event types.

Needs numpy (installed with the ``pandas`` or ``duckdb`` extra).
"""

from membermkt.testing.bulk._draw import generate_columns
from membermkt.testing.bulk._load import load
from membermkt.testing.bulk._model import (
    EVENT_SOURCES,
    STAFF,
    TYPES,
    BulkConfig,
    BulkPopulation,
)

__all__ = [
    "EVENT_SOURCES",
    "STAFF",
    "TYPES",
    "BulkConfig",
    "BulkPopulation",
    "generate_columns",
    "load",
]

"""SQL compilation of the membership ``latest`` leaf
(:class:`~membermkt.core.membership.leaves.Latest`), registered for every SQL dialect.

``latest(among, event, scope, where, window)`` becomes::

    EXISTS (SELECT 1 FROM events e
            WHERE e.member_id = m.id AND e.type = :event AND e.at <= :as_of
              AND <scope and where on e> AND <window on e.at>
              AND NOT EXISTS (SELECT 1 FROM events f
                              WHERE f.member_id = m.id AND f.type IN (:among)
                                AND f.at <= :as_of AND <scope on f>
                                AND (f.at > e.at OR (f.at = e.at AND f.type IN (:later)))))

where ``:later`` are the types after ``event`` in ``among`` (they win a tie). With
``match``, an ``f`` of another type than ``event`` also needs an ``event``-type row ``g`` of
the member at or before it with the same string ``match`` property (and ``scope``). Never NULL,
so ``NOT`` keeps two-valued logic. Event properties are matched with the dialect's
``property_equals`` (the same matching as ``did``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from membermkt.core.compiler import compiles
from membermkt.core.membership.leaves import Latest
from membermkt.stores.sql.compile import Expr, SqlCompiler

__all__ = ["compile_latest"]


@compiles(Latest, "sql")
def compile_latest(compiler: SqlCompiler, node: Latest, path: str) -> Expr:
    """The correlated ``EXISTS … NOT EXISTS`` of a :class:`Latest` leaf."""
    events = compiler.t.events
    e = events.alias("lat_e")
    f = events.alias("lat_f")
    m = compiler.m
    as_of = compiler.as_of_us
    e_where: list[Any] = [e.c.member_id == m.c.id, e.c.type == node.event, e.c.at <= as_of]
    f_where: list[Any] = [
        f.c.member_id == m.c.id,
        compiler.type_in(f.c.type, node.among),
        f.c.at <= as_of,
    ]
    for name, value in node.scope:
        e_where.append(compiler.property_equals(e.c.props, name, value))
        f_where.append(compiler.property_equals(f.c.props, name, value))
    for name, value in node.where:
        e_where.append(compiler.property_equals(e.c.props, name, value))
    if node.newer_than is not None:
        e_where.append(e.c.at > as_of - node.newer_than * 1_000_000)
    if node.older_than is not None:
        e_where.append(e.c.at <= as_of - node.older_than * 1_000_000)
    if node.match is not None:
        # another type counts only for a value the member's ``event`` events carry at or
        # before it (a redemption of an entitlement the member was granted)
        g = events.alias("lat_g")
        g_where: list[Any] = [
            g.c.member_id == m.c.id,
            g.c.type == node.event,
            g.c.at <= f.c.at,
            compiler.property_string(g.c.props, node.match)
            == compiler.property_string(f.c.props, node.match),
        ]
        for name, value in node.scope:
            g_where.append(compiler.property_equals(g.c.props, name, value))
        granted = sa.exists().where(*g_where).correlate(m, f)
        f_where.append(sa.or_(f.c.type == node.event, granted))
    later = node.among[node.rank + 1 :]
    newer = f.c.at > e.c.at
    if later:
        newer = sa.or_(newer, sa.and_(f.c.at == e.c.at, compiler.type_in(f.c.type, later)))
    f_where.append(newer)
    beaten = sa.exists().where(*f_where).correlate(m, e)
    return sa.exists().where(*e_where, sa.not_(beaten)).correlate(m)

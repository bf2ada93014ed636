"""Snapshot tests of the segment → SQL compiler: a change to generated SQL shows in review.

Each leaf compiles to a never-NULL expression (presence guard, EXISTS or COUNT), so NOT is
plain NOT; strings match exactly per dialect; time is a bound epoch-microsecond parameter.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from membermkt.core.segments import Segment
from membermkt.errors import SegmentError
from membermkt.segments import ago, attr, did, sample, tag
from membermkt.stores.sql.compile import compile_segment, compiler_for
from membermkt.stores.sql.schema import Tables

T = Tables("mm_")
AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
}


def sql(segment: Segment, dialect: str) -> str:
    expr = compile_segment(segment, T, AS_OF, dialect)
    q = sa.select(T.members.c.id).where(expr)
    text = str(q.compile(dialect=DIALECTS[dialect], compile_kwargs={"literal_binds": True}))
    return " ".join(text.split()).removeprefix("SELECT mm_members.id FROM mm_members WHERE ")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_negated_comparison_keeps_the_presence_guard(dialect: str) -> None:
    assert sql(~(attr("city") == "Hangzhou"), dialect) == (
        "NOT (mm_members.city IS NOT NULL AND mm_members.city = 'Hangzhou')"
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_relative_time_is_a_bound_instant(dialect: str) -> None:
    out = sql(attr("last_active_at") >= ago(days=30), dialect)
    # the stored column answers while no event is later than as_of (bound, never now()),
    # at the top of the WHERE clause so its index serves (#18) ...
    assert out.startswith(
        "(mm_members.last_active_at IS NOT NULL "
        "AND mm_members.last_active_at >= 1769731200000000 "
        "OR mm_members.last_event_at IS NOT NULL "
        "AND mm_members.last_event_at > 1772323200000000) "
        "AND (mm_members.last_event_at IS NULL OR mm_members.last_event_at <= 1772323200000000 "
        "OR coalesce((SELECT max(mm_events.at)"
    )
    # ... else a fold of the events up to as_of, with the same bound instant, run once
    assert "mm_events.at <= 1772323200000000" in out
    assert out.count("SELECT max(mm_events.at)") == 1
    assert ">= 1769731200000000, " in out
    assert "now()" not in out.lower()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_age_becomes_a_birthday_range(dialect: str) -> None:
    # 2026-03-01 minus 30 years = 1996-03-01 (ordinal 728719); 31 years → 1995-03-01
    assert sql(attr("age") == 30, dialect) == (
        "mm_members.birthday IS NOT NULL AND mm_members.birthday <= 728719 AND "
        "mm_members.birthday IS NOT NULL AND mm_members.birthday > 728353"
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_custom_attribute_in_matches_by_type_class(dialect: str) -> None:
    assert sql(attr("level").isin([3, "3"]), dialect) == (
        "EXISTS (SELECT * FROM mm_attributes WHERE mm_attributes.member_id = mm_members.id "
        "AND mm_attributes.name = 'level' AND (mm_attributes.kind = 'i' AND mm_attributes.i "
        "IN (3) OR mm_attributes.kind = 'f' AND mm_attributes.n IN (3) OR mm_attributes.kind "
        "= 's' AND mm_attributes.s IN ('3')))"
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tags_and_sample(dialect: str) -> None:
    pct = "%%" if dialect != "sqlite" else "%"
    assert sql(tag("vip") & sample(0.1, "c1"), dialect) == (
        "(EXISTS (SELECT * FROM mm_tags WHERE mm_tags.member_id = mm_members.id AND "
        "mm_tags.tag = 'vip')) AND ((546930946 * mm_members.member_hash + 2102279892) "
        f"{pct} 2147483647) {pct} 10000 < 1000"
    )


DID = did("purchase", where={"category": "durian"}, at_least=2, within=dt.timedelta(days=30))
DID_HEAD = (
    "(SELECT count(*) AS count_1 FROM mm_events WHERE mm_events.member_id = mm_members.id "
    "AND mm_events.type = 'purchase' AND mm_events.at <= 1772323200000000 AND "
    "mm_events.at > 1769731200000000 AND "
)


@pytest.mark.parametrize(
    ("dialect", "props"),
    [
        (
            "sqlite",
            "json_type(mm_events.props, '$.\"category\"') = 'text' AND "
            "json_extract(mm_events.props, '$.\"category\"') = 'durian'",
        ),
        (
            "postgresql",
            '(CAST(mm_events.props AS JSONB) @> CAST(\'{"category": "durian"}\' AS JSONB))',
        ),
        (
            "mysql",
            "json_extract(mm_events.props, '$.\"category\"') IS NOT NULL AND "
            "json_type(json_extract(mm_events.props, '$.\"category\"')) = 'STRING' AND "
            "CAST(json_unquote(json_extract(mm_events.props, '$.\"category\"')) AS BINARY) = "
            "CAST('durian' AS BINARY)",
        ),
    ],
)
def test_did_is_a_correlated_count(dialect: str, props: str) -> None:
    assert sql(DID, dialect) == DID_HEAD + props + ") >= 2"


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("sqlite", "mm_members.city IS NOT NULL AND substr(mm_members.city, 1, 4) = 'Hang'"),
        (
            "postgresql",
            "mm_members.city IS NOT NULL AND (mm_members.city LIKE 'Hang' || '%%' ESCAPE '/')",
        ),
        (
            "mysql",
            "mm_members.city IS NOT NULL AND "
            "(mm_members.city LIKE concat('Hang', '%%') ESCAPE '/')",
        ),
    ],
)
def test_startswith_is_case_sensitive_per_dialect(dialect: str, expected: str) -> None:
    assert sql(attr("city").startswith("Hang"), dialect) == expected


def test_unknown_dialect_is_a_segment_error() -> None:
    with pytest.raises(SegmentError, match="oracle"):
        compiler_for("oracle")

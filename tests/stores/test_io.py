"""Import/export: CSV and DataFrames; bad rows are reported, good rows are never lost."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Consent, Member, Profile
from membermkt.errors import UsageError
from membermkt.stores import InMemoryStore
from membermkt.stores.io import (
    events_from_dataframe,
    events_to_dataframe,
    export_events_csv,
    export_members_csv,
    import_events_csv,
    import_members_csv,
    members_from_dataframe,
    members_to_dataframe,
)
from membermkt.testing.phones import TEST_PHONES

from .conftest import make_store

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
MEMBERS = [
    Member(
        "m1",
        Profile(gender="female", city="杭州", birthday=dt.date(1990, 2, 28), tier="gold"),
        {"vip", "a,b"},
        {"level": 3, "score": 2.5, "nick": '小"王"', "flag": True, "code": "3"},
        [Identity.openid("wxapp", "o1"), Identity.unionid("u:1")],
        consent=Consent(marketing=False, opted_out_channels={"wechat.mass"}),
    ),
    Member("m2"),
]
EVENTS = [
    Event("m1", "purchase", T0, {"amount_fen": 1990, "category": "durian"}, key="k1"),
    Event("m1", "follow", T0 - dt.timedelta(days=1), {"source": "parcel"}, key="k2"),
    Event("m2", "view", T0.astimezone(dt.timezone(dt.timedelta(hours=8))), {"url": "/a"}),
]


def _stores() -> list[object]:
    return [InMemoryStore(), make_store("sqlite")]


@pytest.mark.parametrize("source_kind", ["memory", "sqlite"])
def test_csv_round_trip_between_stores(source_kind: str, tmp_path: Path) -> None:
    """Export from one store, import into the other: the same members and events."""
    src, dst = _stores() if source_kind == "memory" else _stores()[::-1]
    src.upsert_members(MEMBERS)  # type: ignore[attr-defined]
    src.append_events(EVENTS)  # type: ignore[attr-defined]
    assert export_members_csv(src, tmp_path / "m.csv") == 2  # type: ignore[arg-type]
    assert export_events_csv(src, tmp_path / "e.csv") == 3  # type: ignore[arg-type]
    rep_e = import_events_csv(dst, tmp_path / "e.csv")  # type: ignore[arg-type]
    rep_m = import_members_csv(dst, tmp_path / "m.csv")  # type: ignore[arg-type]
    assert (rep_m.read, rep_m.written, rep_m.ok) == (2, 2, True)
    assert (rep_e.read, rep_e.written, rep_e.ok) == (3, 3, True)
    for m in MEMBERS:
        assert dst.get_member(m.id) == src.get_member(m.id)  # type: ignore[attr-defined]
    got = dst.get_member("m1")  # type: ignore[attr-defined]
    assert got.attributes["code"] == "3"
    assert got.attributes["level"] == 3
    assert got.attributes["flag"] is True
    assert dst.events_for("m1") == src.events_for("m1")  # type: ignore[attr-defined]
    # importing the events again stores nothing new (keys de-duplicate)
    assert import_events_csv(dst, tmp_path / "e.csv").written == 1  # type: ignore[arg-type]


def test_bad_rows_are_reported_and_good_rows_kept() -> None:
    """Each bad row is reported with its line number and reason; every good row lands."""
    text = (
        "id,gender,city,birthday,tags,attributes\n"
        'a,female,Hangzhou,1990-01-02,"[""vip""]","{""level"": 2}"\n'
        "b,alien,Hangzhou,,,\n"
        ",female,,,,\n"
        "c,male,,1990-13-40,,\n"
        "d,,,,not json,\n"
        'e,,,,,"{""city"": 1}"\n'
        "f,male,Beijing,,,\n"
    )
    store = make_store("sqlite")
    rep = import_members_csv(store, io.StringIO(text))
    assert rep.read == 7
    assert rep.written == 2
    assert [e.row for e in rep.errors] == [3, 4, 5, 6, 7]
    reasons = [e.reason for e in rep.errors]
    assert "gender" in reasons[0]
    assert "id" in reasons[1]
    assert "birthday" in reasons[2]
    assert "tags" in reasons[3]
    assert "city" in reasons[4]
    assert store.get_member("a").attributes == {"level": 2}  # type: ignore[union-attr]
    assert store.get_member("f").profile.city == "Beijing"  # type: ignore[union-attr]


def test_rows_the_store_refuses_are_isolated() -> None:
    """A row valid for the core but refused by the store (too long) fails alone."""
    store = make_store("sqlite")
    rows = "".join(f"m{i},,{'x' * 300 if i == 3 else 'ok'}\n" for i in range(6))
    rep = import_members_csv(store, io.StringIO("id,gender,city\n" + rows))
    assert rep.written == 5
    assert [e.row for e in rep.errors] == [5]
    assert "too long" in rep.errors[0].reason


def test_bad_event_rows_and_missing_columns() -> None:
    """Naive times and bad JSON are row errors; a missing required column is a UsageError."""
    store = InMemoryStore()
    text = (
        "member_id,type,at,key,properties\n"
        "m1,view,2026-03-01T12:00:00+08:00,k1,{}\n"
        "m1,view,2026-03-01T12:00:00,k2,{}\n"
        'm1,purchase,2026-03-01T12:00:00Z,k3,"{""amount_fen"": -1}"\n'
        "m1,view,yesterday,k4,{}\n"
    )
    rep = import_events_csv(store, io.StringIO(text))
    assert rep.written == 1
    assert [e.row for e in rep.errors] == [3, 4, 5]
    assert "offset" in rep.errors[0].reason
    with pytest.raises(UsageError, match="member_id"):
        import_events_csv(store, io.StringIO("type,at\nview,2026-01-01T00:00:00Z\n"))


def test_dataframe_round_trip() -> None:
    """members/events to a DataFrame and back into another store: nothing changes."""
    src, dst = InMemoryStore(), make_store("sqlite")
    src.upsert_members(MEMBERS)
    src.append_events(EVENTS)
    mdf = members_to_dataframe(src)
    edf = events_to_dataframe(src)
    assert list(mdf["id"]) == ["m1", "m2"]
    # nested values are JSON text, so DataFrame.to_sql works (#14)
    assert json.loads(mdf.loc[0, "attributes"]) == MEMBERS[0].attributes
    assert isinstance(edf.loc[0, "properties"], str)
    assert isinstance(edf.loc[0, "at"], pd.Timestamp)
    assert events_from_dataframe(dst, edf).written == 3
    rep = members_from_dataframe(dst, mdf)
    assert rep.ok
    assert rep.written == 2
    for m in MEMBERS:
        assert dst.get_member(m.id) == src.get_member(m.id)
    bad = pd.DataFrame({"id": ["x", None], "gender": ["female", "male"]}, index=[10, 11])
    rep = members_from_dataframe(dst, bad)
    assert [e.row for e in rep.errors] == [11]


def test_dataframes_go_to_sql(tmp_path: Path) -> None:
    """``to_sql`` accepts the exported frames (no list/dict cells)."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    src = InMemoryStore()
    src.upsert_members(MEMBERS)
    src.append_events(EVENTS)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    assert members_to_dataframe(src).to_sql("members", engine, index=False) == 2
    assert events_to_dataframe(src).to_sql("events", engine, index=False) == 3
    engine.dispose()


def test_csv_export_neutralises_formulas_and_imports_them_back(tmp_path: Path) -> None:
    src = InMemoryStore()
    evil = Member("=HYPERLINK(1)", Profile(city="+cmd|' /C calc'!A0"), tags={"@x", "-y"})
    src.upsert_members([evil])
    src.append_events([Event("=HYPERLINK(1)", "view", T0, {"url": "=1+1"})])
    export_members_csv(src, tmp_path / "m.csv")
    export_events_csv(src, tmp_path / "e.csv")
    text = (tmp_path / "m.csv").read_text() + (tmp_path / "e.csv").read_text()
    for line in text.splitlines()[1:]:
        for cell in next(csv.reader([line])):
            assert not cell.startswith(("=", "+", "-", "@")), cell
    dst = InMemoryStore()
    import_members_csv(dst, tmp_path / "m.csv")
    import_events_csv(dst, tmp_path / "e.csv")
    got = dst.get_member("=HYPERLINK(1)")
    assert got is not None
    assert got.profile.city == "+cmd|' /C calc'!A0"
    assert got.tags == {"@x", "-y"}
    assert dst.events_for("=HYPERLINK(1)")[0].properties["url"] == "=1+1"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_export_sql_flattens_into_another_database(backend: str, tmp_path: Path) -> None:
    from membermkt.stores.export_sql import export_sql

    from .conftest import POSTGRES_URL, unique_prefix

    if backend == "postgresql" and not POSTGRES_URL:
        pytest.skip("MEMBERMKT_TEST_POSTGRES_URL not set")
    url = POSTGRES_URL if backend == "postgresql" else f"sqlite:///{tmp_path / 'crm.db'}"
    assert url is not None
    src = InMemoryStore()
    src.upsert_members(MEMBERS)
    src.append_events(EVENTS)
    prefix = unique_prefix()
    counts = src.export_sql(url, table_prefix=prefix)
    assert counts["members"] == 2
    assert counts["events"] == 3
    assert counts["member_identities"] == sum(len(m.identities) for m in MEMBERS)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ids = list(
                conn.execute(sa.text(f"SELECT id FROM {prefix}members ORDER BY id")).scalars()
            )
            assert ids == ["m1", "m2"]
            n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {prefix}member_tags")).scalar()
            assert n == sum(len(m.tags) for m in MEMBERS)
        # exporting again replaces the tables
        assert export_sql(src, url, table_prefix=prefix)["members"] == 2
        with engine.begin() as conn:
            for t in ("members", "member_identities", "member_tags", "events"):
                conn.execute(sa.text(f"DROP TABLE {prefix}{t}"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_import_never_moves_an_identity_silently(kind: str) -> None:
    phone = TEST_PHONES.identity("13800138000")
    store: Any = InMemoryStore() if kind == "memory" else make_store("sqlite")
    store.upsert_members([Member("buyer", identities=[phone], tags={"tmall"})])
    text = 'id,identities\nfollower,"' + json.dumps([phone.token]).replace('"', '""') + '"\n'
    rep = import_members_csv(store, io.StringIO(text))
    assert not rep.ok
    assert rep.errors[0].row == 2
    assert "belongs to member 'buyer'" in rep.errors[0].reason
    assert store.resolve(phone) == "buyer"
    assert store.get_member("follower") is None
    openid = Identity.openid("wxapp", "o1")
    both = json.dumps([phone.token, openid.token]).replace('"', '""')
    rep = import_members_csv(
        store, io.StringIO(f'id,identities\nfollower,"{both}"\n'), on_shared_identity="merge"
    )
    assert rep.ok
    assert store.resolve(phone) == store.resolve(openid) == "buyer"
    (rec,) = store.merges()
    assert rec.link.by == "import"
    with pytest.raises(UsageError, match="on_shared_identity"):
        import_members_csv(store, io.StringIO(text), on_shared_identity="move")

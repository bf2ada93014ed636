"""SqlStore keeps phone identities only under a configured key (or ``insecure_demo``); the
demo's local key file is made once and re-read."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.errors import ConfigError, PhoneKeyRequired
from membermkt.security.phone_policy import (
    configured_protector,
    load_or_create_key_file,
    read_key_file,
)
from membermkt.security.phones import ENV_VAR, PhoneKey, PhoneProtector
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
K1 = PhoneKey("k1", bytes(range(32)))
K2 = PhoneKey("k2", bytes(range(1, 33)))
NUMBER = "138 0013 8000"
OPENID = Identity.openid("wxapp", "o-1")


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _count(store: SqlStore) -> int:
    return sum(1 for _ in store.iter_members())


def test_without_a_key_phone_identities_are_refused_and_nothing_is_written() -> None:
    store = SqlStore("sqlite://")
    assert store.phones is None
    keyed = PhoneProtector(K1).identity(NUMBER)
    for phone in (Identity.phone(NUMBER), keyed):
        with pytest.raises(PhoneKeyRequired, match="MEMBERMKT_PHONE_KEYS") as exc:
            store.upsert_members([Member("ok"), Member("m1", identities=[OPENID, phone])])
        assert exc.value.namespace == phone.namespace
        assert "insecure_demo" in str(exc.value)
        assert NUMBER.replace(" ", "") not in str(exc.value)
        with pytest.raises(PhoneKeyRequired):
            store.link(OPENID, phone, "verified_phone", T0, by="test")
    assert _count(store) == 0
    assert store.resolve(OPENID) is None
    # members without phones are unaffected
    store.upsert_members([Member("m2", identities=[OPENID])])
    assert store.resolve(OPENID) == "m2"


def test_with_a_key_only_identities_under_the_ring_are_kept() -> None:
    ring = PhoneProtector([K2, K1])
    store = SqlStore("sqlite://", phones=ring)
    assert store.phones is ring
    old = PhoneProtector(K1).identity(NUMBER)
    new = ring.identity(NUMBER)
    store.upsert_members([Member("a", identities=[old]), Member("b", identities=[new])])
    assert store.resolve(old) == "a"
    assert store.resolve(new) == "b"
    with pytest.raises(PhoneKeyRequired, match="unkeyed digest") as exc:
        store.upsert_members([Member("c", identities=[Identity.phone(NUMBER)])])
    assert exc.value.namespace == ""
    other = PhoneProtector(PhoneKey("k9", bytes(32))).identity(NUMBER)
    with pytest.raises(PhoneKeyRequired, match="'k9'"):
        store.link(OPENID, other, "verified_phone", T0, by="test")
    assert store.get_member("c") is None
    out = store.link(OPENID, new, "verified_phone", T0, by="test")
    assert out.member_id == "b"


def test_the_ring_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, f"{K1.serialize()}")
    store = SqlStore("sqlite://")
    assert store.phones is not None
    assert store.phones.key_ids == ("k1",)
    phone = store.phones.identity(NUMBER)
    store.upsert_members([Member("m1", identities=[phone])])
    assert store.resolve(PhoneProtector(K1).identity(NUMBER)) == "m1"
    monkeypatch.setenv(ENV_VAR, "k1:not base64!")
    with pytest.raises(ConfigError, match="not base64"):
        SqlStore("sqlite://")
    assert configured_protector({}) is None


def test_insecure_demo_keeps_unkeyed_digests() -> None:
    store = SqlStore("sqlite://", insecure_demo=True)
    assert store.insecure_demo
    store.upsert_members([Member("m1", identities=[Identity.phone(NUMBER)])])
    assert store.resolve(Identity.phone(NUMBER)) == "m1"
    with pytest.raises(ConfigError, match="insecure_demo must be a bool"):
        SqlStore("sqlite://", insecure_demo="yes")  # type: ignore[arg-type]


def test_the_memory_store_stays_permissive() -> None:
    store = InMemoryStore()
    store.upsert_members([Member("m1", identities=[Identity.phone(NUMBER)])])
    assert store.resolve(Identity.phone(NUMBER)) == "m1"


def test_key_file_is_made_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "phone.key"
    first = load_or_create_key_file(path)
    assert first.key_id == "demo"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_key_file(path)
    assert again == first
    assert PhoneProtector(again).digest(NUMBER) == PhoneProtector(first).digest(NUMBER)
    other = load_or_create_key_file(tmp_path / "other.key")
    assert other.secret != first.secret
    ring = read_key_file(path)
    assert ring.key_ids == ("demo",)
    two = tmp_path / "ring.key"
    two.write_text(f"{K2.serialize()}\n{K1.serialize()}\n", encoding="ascii")
    assert read_key_file(two).key_ids == ("k2", "k1")
    with pytest.raises(ConfigError, match="cannot read"):
        read_key_file(tmp_path / "missing.key")
    empty = tmp_path / "empty.key"
    empty.write_text("\n", encoding="ascii")
    with pytest.raises(ConfigError, match="holds no key"):
        read_key_file(empty)
    bad = tmp_path / "bad.key"
    bad.write_text("demo:c2VjcmV0", encoding="ascii")
    with pytest.raises(ConfigError, match="32 bytes") as exc:
        load_or_create_key_file(bad)
    assert "c2VjcmV0" not in str(exc.value)


def test_ingest_push_refuses_an_unkeyed_phone() -> None:
    store = SqlStore("sqlite://")
    with pytest.raises(PhoneKeyRequired):
        store.ingest_push(Identity.phone(NUMBER), lambda mid: [])
    assert _count(store) == 0

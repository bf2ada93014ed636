"""Phones at rest: keyed blind index, encrypted number, rotation by re-indexing."""

from __future__ import annotations

import hashlib

import pytest

from membermkt.core.identity import Identity, IdentityKind, normalize_phone, phone_digest
from membermkt.core.members import Member
from membermkt.errors import ConfigError, DecryptError, UsageError
from membermkt.security.phones import (
    PHONE_ATTRIBUTE,
    PhoneKey,
    PhoneProtector,
    reindex_store,
)
from membermkt.stores.memory import InMemoryStore

K1 = PhoneKey("k1", bytes(range(32)))
K2 = PhoneKey("k2", bytes(range(32, 64)))
NUMBER = "138 0013 8000"


def test_keyed_digest_is_not_reproducible_without_the_key():
    p = PhoneProtector(K1)
    ident = p.identity(NUMBER)
    assert ident.kind is IdentityKind.PHONE
    assert ident.namespace == "k1"  # keyed and unkeyed digests never share a namespace
    normalized = normalize_phone(NUMBER).encode()
    # not the unkeyed digest, not HMAC with the raw secret, not another key's digest
    assert ident.value != hashlib.sha256(normalized).hexdigest()
    assert ident.value != phone_digest(NUMBER)
    assert ident.value != phone_digest(NUMBER, key=K1.secret.hex())
    assert ident.value != PhoneProtector(K2).digest(NUMBER)
    assert ident != Identity.phone(NUMBER)
    # enumeration without the key: every candidate near the number, hashed unkeyed or
    # with a wrong key, misses the stored digest
    wrong = PhoneProtector(PhoneKey("k1", bytes(32)))
    for n in range(13800137990, 13800138010):
        assert hashlib.sha256(normalize_phone(str(n)).encode()).hexdigest() != ident.value
        assert wrong.digest(str(n)) != ident.value
    # with the key it is stable across formattings
    assert p.identity("+86 138-0013-8000") == ident
    assert p.identity("13800138000") == ident


def test_encrypted_number_round_trips_and_is_authenticated():
    p = PhoneProtector([K1, K2])
    token = p.encrypt(NUMBER)
    assert token.startswith("v1:k1:")
    assert "13800138000" not in token
    assert p.decrypt(token) == "8613800138000"
    assert p.encrypt(NUMBER) != token  # fresh nonce each time
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptError):
        p.decrypt(tampered)
    with pytest.raises(DecryptError):  # the key id is bound: relabelled ciphertext fails
        p.decrypt(token.replace("v1:k1:", "v1:k2:"))
    with pytest.raises(DecryptError):
        PhoneProtector(K2).decrypt(token)  # k1 not in the ring
    with pytest.raises(DecryptError):
        p.decrypt("garbage")


def test_rotation_reindexes_members():
    old = PhoneProtector(K1)
    store = InMemoryStore()
    m = old.protect(Member("m1", identities=(Identity.openid("wx1", "o1"),)), NUMBER)
    store.upsert_members([m, Member("m2")])
    assert store.resolve(old.identity(NUMBER)) == "m1"

    rotated = PhoneProtector([K2, K1])  # new key in front, old kept to decrypt
    assert reindex_store(store, rotated) == 1
    assert store.resolve(rotated.identity(NUMBER)) == "m1"
    assert store.resolve(old.identity(NUMBER)) is None  # the old index is gone
    member = store.get_member("m1")
    assert member.attributes[PHONE_ATTRIBUTE].startswith("v1:k2:")
    assert Identity.openid("wx1", "o1") in member.identities
    # the old key can now be dropped
    assert PhoneProtector(K2).phone_of(member) == "8613800138000"
    assert reindex_store(store, rotated) == 0  # idempotent


def test_keys_from_the_environment_and_no_secret_in_reprs():
    env = {"MEMBERMKT_PHONE_KEYS": f"{K2.serialize()}, {K1.serialize()}"}
    p = PhoneProtector.from_env(env)
    assert p.current == "k2"
    assert K1.serialize().split(":")[1] not in repr(p) + repr(K1)
    with pytest.raises(ConfigError):
        PhoneProtector.from_env({})
    with pytest.raises(ConfigError) as info:
        PhoneKey.parse("k3:not-base64!!")
    assert "not-base64" not in str(info.value)
    with pytest.raises(ConfigError):
        PhoneKey("bad:id", bytes(32))


def test_errors_never_echo_the_number():
    with pytest.raises(UsageError) as info:
        normalize_phone("138001380001234567")
    assert "138001380001234567" not in str(info.value)
    with pytest.raises(UsageError) as info:
        PhoneProtector(K1).identity("call 13800138000x")
    assert "13800138000" not in str(info.value)

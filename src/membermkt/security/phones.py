"""Phone numbers at rest: a keyed blind index for lookups plus the encrypted number.

A phone identity must let the store find and join a member by phone without the store
holding anything an attacker could reverse — an unkeyed SHA-256 of a mainland mobile
number is reversed by enumerating the ~10⁹ numbers in about a core-hour. So:

* **Blind index** — :meth:`PhoneProtector.identity` is ``HMAC-SHA256(index_key, number)``
  (the number normalised first), in a phone :class:`~membermkt.core.identity.Identity`
  whose *namespace is the key id*: digests under two keys (or a keyed and an unkeyed one)
  can never be mistaken for one another.
* **Encrypted number** — :meth:`PhoneProtector.encrypt` seals the normalised number with
  AES-256-GCM (random 96-bit nonce; the key id as associated data, so a ciphertext names
  and is bound to its key). Channels that must dial or
  text (SMS) call :meth:`PhoneProtector.decrypt`. :meth:`PhoneProtector.protect` puts both
  on a member (identity + the ``phone_enc`` attribute).

Keys come from configuration or the environment (:meth:`PhoneProtector.from_env`:
``MEMBERMKT_PHONE_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"``, the first is
current). Both working keys are derived from one 32-byte secret with HKDF-SHA256, so one
secret per key id is all there is to manage.

Rotation: add a new key in front, keep the old one in the ring, and re-index
(:meth:`PhoneProtector.reindex` per member, :func:`reindex_store` for a store): each
member's number is decrypted with its old key, then indexed and encrypted under the
current one; afterwards the old key can be removed. See ``docs/security.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from membermkt.core.identity import Identity, IdentityKind, normalize_phone
from membermkt.core.members import Member
from membermkt.errors import ConfigError, DecryptError, UsageError

__all__ = [
    "ENV_VAR",
    "PHONE_ATTRIBUTE",
    "PhoneKey",
    "PhoneProtector",
    "reindex_store",
]

ENV_VAR = "MEMBERMKT_PHONE_KEYS"
"""The environment variable :meth:`PhoneProtector.from_env` reads."""

PHONE_ATTRIBUTE = "phone_enc"
"""The member attribute holding the encrypted number (``v1:<key id>:<base64>``)."""

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_VERSION = "v1"


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


@attrs.frozen(slots=True)
class PhoneKey:
    """One phone key: an id and the 32-byte secret both working keys derive from.

    Attributes:
        key_id: a short name (``[A-Za-z0-9_-]{1,32}``), kept as the phone identities'
            namespace and in each ciphertext.
        secret: 32 random bytes (never shown in reprs).

    Raises:
        ConfigError: for a bad key id or a secret that is not 32 bytes.
    """

    key_id: str
    secret: bytes = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise ConfigError("a phone key id must be 1-32 characters of [A-Za-z0-9_-]")
        if not isinstance(self.secret, bytes) or len(self.secret) != 32:
            raise ConfigError(f"phone key {self.key_id!r}: the secret must be 32 bytes")

    @classmethod
    def generate(cls, key_id: str) -> PhoneKey:
        """A new key with a fresh random secret (``os.urandom``)."""
        return cls(key_id, os.urandom(32))

    @classmethod
    def parse(cls, text: str) -> PhoneKey:
        """Parse ``"<key id>:<base64 secret>"`` (the form :meth:`serialize` writes).

        Raises:
            ConfigError: for anything else (the message never contains the secret).
        """
        key_id, sep, b64 = text.strip().partition(":")
        if not sep:
            raise ConfigError("a phone key must be written '<key id>:<base64 secret>'")
        try:
            secret = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"phone key {key_id!r}: the secret is not base64") from None
        return cls(key_id, secret)

    def serialize(self) -> str:
        """``"<key id>:<base64 secret>"`` — store it like any other secret."""
        return f"{self.key_id}:{base64.b64encode(self.secret).decode('ascii')}"

    @property
    def index_key(self) -> bytes:
        """The HMAC key of the blind index."""
        return _derive(self.secret, b"membermkt phone blind index v1")

    @property
    def encryption_key(self) -> bytes:
        """The AES-256-GCM key of the encrypted number."""
        return _derive(self.secret, b"membermkt phone encryption v1")


class _Store(Protocol):
    def iter_members(self) -> Iterable[Member]: ...

    def upsert_members(self, members: Iterable[Member]) -> int: ...


class PhoneProtector:
    """Blind-indexes and encrypts phone numbers with a ring of :class:`PhoneKey` values.

    Args:
        keys: the key ring; the first key is current (new identities and ciphertexts use
            it), the others are kept to decrypt and re-index older data.

    Raises:
        ConfigError: without keys, or with two keys of one id.
    """

    def __init__(self, keys: PhoneKey | Sequence[PhoneKey]) -> None:
        ring = [keys] if isinstance(keys, PhoneKey) else list(keys)
        if not ring:
            raise ConfigError("PhoneProtector needs at least one PhoneKey")
        self._keys: dict[str, tuple[bytes, AESGCM]] = {}
        for key in ring:
            if not isinstance(key, PhoneKey):
                raise ConfigError(f"expected PhoneKey values, got {type(key).__name__}")
            if key.key_id in self._keys:
                raise ConfigError(f"two phone keys with id {key.key_id!r}")
            self._keys[key.key_id] = (key.index_key, AESGCM(key.encryption_key))
        self.current = ring[0].key_id

    def __repr__(self) -> str:
        return f"PhoneProtector(current={self.current!r}, keys={list(self._keys)})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the ring's keys, current first."""
        return tuple(self._keys)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, var: str = ENV_VAR
    ) -> PhoneProtector:
        """Keys from ``var`` (default ``MEMBERMKT_PHONE_KEYS``): comma-separated
        ``<key id>:<base64 secret>`` entries, current first.

        Raises:
            ConfigError: when the variable is missing or malformed.
        """
        source = os.environ if env is None else env
        raw = source.get(var, "")
        if not raw.strip():
            raise ConfigError(
                f"${var} is not set: phone numbers need a key "
                "(generate one with PhoneKey.generate('k1').serialize())"
            )
        return cls([PhoneKey.parse(part) for part in raw.split(",") if part.strip()])

    # ------------------------------------------------------------------ blind index

    def digest(self, number: str, *, key_id: str | None = None) -> str:
        """The blind index (hex HMAC-SHA256) of ``number`` under ``key_id`` (default:
        current).

        Raises:
            UsageError: when ``number`` is not a phone number (the number is not echoed),
                or the key id is unknown.
        """
        index_key, _ = self._key(key_id or self.current)
        normalized = normalize_phone(number).encode("ascii")
        return hmac.new(index_key, normalized, hashlib.sha256).hexdigest()

    def identity(self, number: str, *, key_id: str | None = None) -> Identity:
        """The phone :class:`Identity` of ``number``: the blind index, namespace = key id."""
        kid = key_id or self.current
        return Identity(IdentityKind.PHONE, self.digest(number, key_id=kid), kid)

    # ------------------------------------------------------------------ encryption

    def encrypt(self, number: str) -> str:
        """``number`` (normalised) sealed under the current key: ``v1:<key id>:<base64>``.

        Raises:
            UsageError: when ``number`` is not a phone number.
        """
        normalized = normalize_phone(number)
        _, aead = self._key(self.current)
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, normalized.encode("ascii"), self._aad(self.current))
        return f"{_VERSION}:{self.current}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, token: str) -> str:
        """The normalised number inside a ciphertext from :meth:`encrypt`.

        Raises:
            DecryptError: when the token is malformed, its key is not in the ring, or it
                fails authentication (tampered, or moved to another identity).
        """
        parts = token.split(":", 2) if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != _VERSION:
            raise DecryptError("not a membermkt phone ciphertext (v1:<key id>:<base64>)")
        _, kid, b64 = parts
        if kid not in self._keys:
            raise DecryptError(f"phone ciphertext under unknown key {kid!r}")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptError("phone ciphertext is not base64") from None
        if len(raw) < 12 + 16:
            raise DecryptError("phone ciphertext is too short")
        _, aead = self._keys[kid]
        try:
            plain = aead.decrypt(raw[:12], raw[12:], self._aad(kid))
        except InvalidTag:
            raise DecryptError(
                "phone ciphertext failed authentication (wrong key or tampered)"
            ) from None
        return plain.decode("ascii")

    @staticmethod
    def _aad(kid: str) -> bytes:
        return f"membermkt phone {_VERSION}:{kid}".encode()

    def _key(self, kid: str) -> tuple[bytes, AESGCM]:
        try:
            return self._keys[kid]
        except KeyError:
            raise UsageError(f"no phone key {kid!r} in the ring") from None

    # ------------------------------------------------------------------ members

    def protect(self, member: Member, number: str) -> Member:
        """``member`` with the phone identity of ``number`` (current key) and its
        ciphertext in the ``phone_enc`` attribute; phone identities under other keys are
        dropped."""
        identity = self.identity(number)
        kept = tuple(i for i in member.identities if i.kind is not IdentityKind.PHONE)
        attributes = {**dict(member.attributes), PHONE_ATTRIBUTE: self.encrypt(number)}
        return attrs.evolve(member, identities=(*kept, identity), attributes=attributes)

    def phone_of(self, member: Member) -> str | None:
        """The member's number (normalised), decrypted; ``None`` when it has none.

        Raises:
            DecryptError: when the stored ciphertext cannot be opened with the ring.
        """
        token = member.attributes.get(PHONE_ATTRIBUTE)
        return None if not isinstance(token, str) else self.decrypt(token)

    def reindex(self, member: Member) -> Member:
        """``member`` re-indexed and re-encrypted under the current key (unchanged when it
        has no encrypted number or is already current).

        Raises:
            DecryptError: when its ciphertext's key is not in the ring.
        """
        token = member.attributes.get(PHONE_ATTRIBUTE)
        if not isinstance(token, str):
            return member
        phones = [i for i in member.identities if i.kind is IdentityKind.PHONE]
        if token.startswith(f"{_VERSION}:{self.current}:") and all(
            i.namespace == self.current for i in phones
        ):
            return member
        return self.protect(member, self.decrypt(token))


def reindex_store(store: _Store, protector: PhoneProtector, *, batch: int = 1000) -> int:
    """Re-index every member with an encrypted number under the protector's current key.

    Returns:
        How many members were rewritten.
    """
    changed = 0
    pending: list[Member] = []
    for member in list(store.iter_members()):
        new = protector.reindex(member)
        if new is not member:
            pending.append(new)
        if len(pending) >= batch:
            changed += store.upsert_members(pending)
            pending = []
    if pending:
        changed += store.upsert_members(pending)
    return changed

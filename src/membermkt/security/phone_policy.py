"""Which phone identities a persistent store may keep, and the demo's local key file.

A store that keeps members on disk (:class:`~membermkt.stores.sql.SqlStore`) refuses to
store a phone identity unless:

* it has a phone key ring (``SqlStore(url, phones=PhoneProtector(...))``, or
  ``MEMBERMKT_PHONE_KEYS`` in the environment) **and** the identity's namespace — its key id
  — is one of the ring's key ids (so an unkeyed SHA-256 digest, namespace ``""``, is refused
  even then); or
* it was built with ``insecure_demo=True`` (a throwaway demo or test database: any phone
  digest, unkeyed ones included, is kept).

:class:`~membermkt.stores.memory.InMemoryStore` does not apply this rule: it keeps nothing
at rest (everything dies with the process), and the pure identity tests run on it with
plain digests.

The demo does not use ``insecure_demo``: :func:`load_or_create_key_file` makes a random key
once, next to the demo's database, and re-reads it on re-runs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from membermkt.core.identity import Identity, IdentityKind
from membermkt.errors import ConfigError, PhoneKeyRequired
from membermkt.security.phones import ENV_VAR, PhoneKey, PhoneProtector

__all__ = [
    "PhonePolicy",
    "configured_protector",
    "load_or_create_key_file",
    "read_key_file",
]


def configured_protector(env: Mapping[str, str] | None = None) -> PhoneProtector | None:
    """The key ring in ``MEMBERMKT_PHONE_KEYS`` (see :meth:`PhoneProtector.from_env`), or
    ``None`` when the variable is unset or empty.

    Raises:
        ConfigError: when the variable is set but malformed.
    """
    source = os.environ if env is None else env
    if not source.get(ENV_VAR, "").strip():
        return None
    return PhoneProtector.from_env(source)


class PhonePolicy:
    """The rule a persistent store applies to the phone identities it is asked to keep.

    Args:
        phones: the store's key ring (``None``: none configured).
        insecure_demo: keep any phone digest (demos and throwaway databases only).
        where: what is asking, for the error messages (e.g. ``"SqlStore"``).
    """

    __slots__ = ("_ids", "insecure_demo", "phones", "where")

    def __init__(
        self, phones: PhoneProtector | None, *, insecure_demo: bool = False, where: str
    ) -> None:
        if phones is not None and not isinstance(phones, PhoneProtector):
            raise ConfigError(f"phones must be a PhoneProtector, got {type(phones).__name__}")
        if not isinstance(insecure_demo, bool):
            raise ConfigError(f"insecure_demo must be a bool, got {insecure_demo!r}")
        self.phones = phones
        self.insecure_demo = insecure_demo
        self.where = where
        self._ids = frozenset(phones.key_ids) if phones is not None else frozenset()

    def __repr__(self) -> str:
        return f"PhonePolicy(keys={sorted(self._ids)}, insecure_demo={self.insecure_demo})"

    def check(self, identities: Iterable[Identity]) -> None:
        """Refuse a phone identity this store may not keep (other kinds pass).

        Raises:
            PhoneKeyRequired: naming what to configure.
        """
        if self.insecure_demo:
            return
        for ident in identities:
            if ident.kind is not IdentityKind.PHONE or ident.namespace in self._ids:
                continue
            if self.phones is None:
                raise PhoneKeyRequired(
                    f"{self.where} keeps phone identities only under a phone key: set "
                    f"${ENV_VAR} (a key from PhoneKey.generate('k1').serialize()) or pass "
                    f"{self.where}(..., phones=PhoneProtector(...)), and make phone "
                    "identities with protector.identity(number); insecure_demo=True keeps "
                    "unkeyed digests (throwaway demos only) — see docs/security.md",
                    namespace=ident.namespace,
                )
            what = "an unkeyed digest" if not ident.namespace else f"key {ident.namespace!r}"
            raise PhoneKeyRequired(
                f"{self.where} refuses a phone identity under {what}: its phone key ring is "
                f"{sorted(self._ids)}; make phone identities with store.phones.identity("
                "number) (or add that key to the ring) — see docs/security.md",
                namespace=ident.namespace,
            )


def load_or_create_key_file(path: str | os.PathLike[str], *, key_id: str = "demo") -> PhoneKey:
    """The phone key kept in ``path``: read it, or create it once (``secrets``, mode 0600).

    For local demos and development databases: the key sits next to the data it protects,
    which keeps a copied database unreadable only if the key file is not copied with it.
    Production keys belong in a secret store (``MEMBERMKT_PHONE_KEYS``).

    Raises:
        ConfigError: when the file exists but does not hold a key (the key is not echoed).
    """
    p = Path(path)
    if p.exists():
        try:
            text = p.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the phone key file {p}: {exc}") from None
        return PhoneKey.parse(text)
    key = PhoneKey(key_id, secrets.token_bytes(32))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.serialize() + "\n")
    return key


def read_key_file(path: str | os.PathLike[str]) -> PhoneProtector:
    """The key ring in ``path``: one ``<key id>:<base64 secret>`` per line (or separated by
    commas, as in ``MEMBERMKT_PHONE_KEYS``), current key first.

    Raises:
        ConfigError: when the file is missing, unreadable or holds no valid key (the keys
            are never echoed).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the phone key file {p}: {exc}") from None
    entries = [e for line in text.splitlines() for e in line.split(",") if e.strip()]
    if not entries:
        raise ConfigError(f"the phone key file {p} holds no key")
    return PhoneProtector([PhoneKey.parse(e) for e in entries])

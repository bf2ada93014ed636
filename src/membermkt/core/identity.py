"""Identities: the keys by which platforms know a person, and the identity graph.

A person may be known as an official-account openid (one per appid), a unionid (one per
Open Platform account), a WeCom external_userid (one per corp) and a phone number. membermkt
keeps one :class:`~membermkt.core.members.Member` per person and attaches these as
:class:`Identity` values. Phone numbers are never stored raw: :func:`phone_digest` turns a
number into a keyed SHA-256 digest, so a claim "this phone bought that order" can be checked
without keeping the number.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable

import attrs

from membermkt.errors import UsageError

__all__ = [
    "Identity",
    "IdentityKind",
    "IdentityMerge",
    "member_id_for",
    "merge_plan",
    "normalize_phone",
    "phone_digest",
]


class IdentityKind(enum.StrEnum):
    """The kinds of identity membermkt understands."""

    OPENID = "openid"
    """Official-account openid; ``namespace`` is the appid."""
    UNIONID = "unionid"
    """Open Platform unionid; ``namespace`` is empty (or the Open Platform account id)."""
    EXTERNAL_USERID = "external_userid"
    """WeCom external contact id; ``namespace`` is the corpid."""
    PHONE = "phone"
    """A phone digest from :func:`phone_digest`; ``namespace`` names the digest key."""


_NAMESPACED = {IdentityKind.OPENID, IdentityKind.EXTERNAL_USERID}
_PHONE_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def _check_value(instance: Identity, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"Identity.value must be a non-empty str, got {value!r}")
    if len(value) > 256:
        raise UsageError(f"Identity.value is too long ({len(value)} > 256 characters)")


def _to_kind(value: str) -> IdentityKind:
    try:
        return IdentityKind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in IdentityKind)
        raise UsageError(f"unknown identity kind {value!r} (expected one of: {kinds})") from None


@attrs.frozen(slots=True)
class Identity:
    """One platform identity of a person.

    Args:
        kind: an :class:`IdentityKind` (or its string value).
        value: the identifier (openid, unionid, external_userid, or a phone digest).
        namespace: the appid for openids, the corpid for external_userids; empty otherwise.

    Raises:
        UsageError: on an empty value, a missing namespace for a namespaced kind, or a
            phone identity whose value is not a digest (raw phone numbers are refused).
    """

    kind: IdentityKind = attrs.field(converter=_to_kind)
    value: str = attrs.field(validator=_check_value)
    namespace: str = attrs.field(default="")

    def __attrs_post_init__(self) -> None:
        if self.kind in _NAMESPACED and not self.namespace:
            raise UsageError(
                f"a {self.kind.value} identity needs a namespace "
                f"({'appid' if self.kind is IdentityKind.OPENID else 'corpid'})"
            )
        if self.kind is IdentityKind.PHONE and not _PHONE_DIGEST_RE.match(self.value):
            raise UsageError(
                "a phone identity holds a digest, never a raw number: "
                "use Identity.phone(number) or phone_digest(number)"
            )

    @classmethod
    def openid(cls, appid: str, openid: str) -> Identity:
        """An official-account openid within ``appid``."""
        return cls(IdentityKind.OPENID, openid, appid)

    @classmethod
    def unionid(cls, unionid: str) -> Identity:
        """An Open Platform unionid."""
        return cls(IdentityKind.UNIONID, unionid)

    @classmethod
    def external_userid(cls, corpid: str, external_userid: str) -> Identity:
        """A WeCom external contact id within ``corpid``."""
        return cls(IdentityKind.EXTERNAL_USERID, external_userid, corpid)

    @classmethod
    def phone(cls, number: str, *, key: str = "") -> Identity:
        """A phone identity: the number is normalised and digested, never kept raw."""
        return cls(IdentityKind.PHONE, phone_digest(number, key=key), "")

    @property
    def token(self) -> str:
        """A single-string form ``kind:namespace:value`` (used as a lookup key by stores)."""
        return f"{self.kind.value}:{self.namespace}:{self.value}"

    @classmethod
    def from_token(cls, token: str) -> Identity:
        """Parse :attr:`token` back into an :class:`Identity`.

        Raises:
            UsageError: when the token is not ``kind:namespace:value``.
        """
        parts = token.split(":", 2)
        if len(parts) != 3:
            raise UsageError(f"not an identity token (kind:namespace:value): {token!r}")
        try:
            kind = IdentityKind(parts[0])
        except ValueError:
            raise UsageError(f"unknown identity kind {parts[0]!r} in token {token!r}") from None
        return cls(kind, parts[2], parts[1])


_NON_DIGITS = re.compile(r"[\s\-()+.]")


def normalize_phone(number: str) -> str:
    """Normalise a phone number to digits with a country code.

    Mainland-China numbers (11 digits starting with 1) get ``86`` prepended; a leading ``+``
    or ``00`` is dropped. Spaces, dashes, dots and brackets are ignored.

    Raises:
        UsageError: if what remains is not 6–15 digits.
    """
    if not isinstance(number, str):
        raise UsageError(f"phone number must be a str, got {type(number).__name__}")
    s = number.strip()
    if s.startswith("00"):
        s = s[2:]
    s = _NON_DIGITS.sub("", s)
    if not s.isdigit() or not 6 <= len(s) <= 15:
        raise UsageError(f"not a phone number: {number!r}")
    if len(s) == 11 and s.startswith("1"):
        s = "86" + s
    return s


def phone_digest(number: str, *, key: str = "") -> str:
    """A keyed SHA-256 hex digest of the normalised phone number.

    The same number (in any common formatting) always gives the same digest for the same
    ``key``; use a secret key per merchant so digests cannot be reversed by enumeration.
    """
    normalized = normalize_phone(number).encode()
    if key:
        return hmac.new(key.encode(), normalized, hashlib.sha256).hexdigest()
    return hashlib.sha256(normalized).hexdigest()


@attrs.frozen(slots=True)
class IdentityMerge:
    """A decision that two members are one person.

    Attributes:
        keep: the surviving member id (the older / smaller id, deterministic).
        drop: the member id folded into ``keep``.
        because: the identity that proved it.
    """

    keep: str
    drop: str
    because: Identity


def merge_plan(
    owners: Iterable[tuple[Identity, str]], new_member_id: str
) -> tuple[str, tuple[IdentityMerge, ...]]:
    """Decide which member a set of identities belongs to.

    Args:
        owners: pairs (identity, member id) already known for the incoming identities.
        new_member_id: the id to use when no identity is known yet.

    Returns:
        The member id that owns all the identities and the merges needed (each existing
        member other than the survivor is merged into it). The survivor is the smallest
        existing member id, so the decision does not depend on arrival order.
    """
    seen: dict[str, Identity] = {}
    for identity, member_id in owners:
        seen.setdefault(member_id, identity)
    if not seen:
        return new_member_id, ()
    keep = min(seen)
    merges = tuple(
        IdentityMerge(keep=keep, drop=mid, because=ident)
        for mid, ident in sorted(seen.items())
        if mid != keep
    )
    return keep, merges


def member_id_for(identity: Identity) -> str:
    """The deterministic member id given to a person first seen through ``identity``.

    Deterministic so that two processes seeing the same new follower at once create the same
    member instead of two: ``"m" + first 24 hex chars of sha256(identity.token)``.
    """
    return "m" + hashlib.sha256(identity.token.encode()).hexdigest()[:24]

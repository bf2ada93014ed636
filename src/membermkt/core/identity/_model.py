"""The :class:`Identity` value: one key by which a platform knows a person."""

from __future__ import annotations

import enum
import re

import attrs

from membermkt.core.identity._phone import phone_digest
from membermkt.errors import UsageError

__all__ = ["SINGULAR_KINDS", "Identity", "IdentityKind"]


class IdentityKind(enum.StrEnum):
    """The kinds of identity membermkt understands."""

    OPENID = "openid"
    """Official-account openid; ``namespace`` is the appid."""
    UNIONID = "unionid"
    """Open Platform unionid; ``namespace`` is empty (or the Open Platform account id)."""
    EXTERNAL_USERID = "external_userid"
    """WeCom external contact id; ``namespace`` is the corpid."""
    PHONE = "phone"
    """A phone digest from :func:`phone_digest`; ``namespace`` names the digest key (its key
    id; empty for the unkeyed/default key), so digests under two keys never collide."""
    MINIPROGRAM_OPENID = "miniprogram_openid"
    """Mini-program openid; ``namespace`` is the mini-program's appid."""
    PLATFORM_BUYER = "platform_buyer"
    """A marketplace buyer id (Tmall/Taobao, JD, Pinduoduo, Douyin, ...); ``namespace`` names
    the platform (lowercase, e.g. ``"tmall"``, ``"jd"``)."""


_NAMESPACED = {
    IdentityKind.OPENID: "appid",
    IdentityKind.EXTERNAL_USERID: "corpid",
    IdentityKind.MINIPROGRAM_OPENID: "mini-program appid",
    IdentityKind.PLATFORM_BUYER: "platform name",
}

SINGULAR_KINDS: frozenset[IdentityKind] = frozenset(
    {
        IdentityKind.OPENID,
        IdentityKind.UNIONID,
        IdentityKind.EXTERNAL_USERID,
        IdentityKind.MINIPROGRAM_OPENID,
    }
)
"""Kinds a person holds at most one of per namespace: two different unionids (or two openids
of one appid) on one member would mean two people, so a link that would join them is refused.
Phones and marketplace buyer ids are not singular (a person may have several)."""
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
        if not isinstance(self.namespace, str) or len(self.namespace) > 128:
            raise UsageError(
                f"Identity.namespace must be a str of at most 128 characters, "
                f"got {self.namespace!r}"
            )
        if ":" in self.namespace:
            raise UsageError(f"Identity.namespace may not contain ':', got {self.namespace!r}")
        needed = _NAMESPACED.get(self.kind)
        if needed is not None and not self.namespace:
            raise UsageError(f"a {self.kind.value} identity needs a namespace ({needed})")
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
    def miniprogram_openid(cls, appid: str, openid: str) -> Identity:
        """A mini-program openid within the mini-program's ``appid``."""
        return cls(IdentityKind.MINIPROGRAM_OPENID, openid, appid)

    @classmethod
    def platform_buyer(cls, platform: str, buyer_id: str) -> Identity:
        """A marketplace buyer id (``platform`` such as ``"tmall"`` or ``"jd"``)."""
        if not isinstance(platform, str) or platform != platform.strip().lower() or not platform:
            raise UsageError(f"platform must be a lowercase name such as 'tmall', got {platform!r}")
        return cls(IdentityKind.PLATFORM_BUYER, buyer_id, platform)

    @classmethod
    def phone(cls, number: str, *, key: str = "", key_id: str = "") -> Identity:
        """A phone identity: the number is normalised and digested, never kept raw.

        Args:
            number: the phone number in any common formatting.
            key: the secret digest key (empty: unkeyed SHA-256).
            key_id: the name of that key, kept as the identity's namespace.
        """
        return cls(IdentityKind.PHONE, phone_digest(number, key=key), key_id)

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

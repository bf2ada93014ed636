"""Links between identities: the evidence that two identities are one person, and the rules.

A :class:`Link` says "``a`` and ``b`` are the same person, because of ``evidence``, as of
``at``, decided by ``by``". :func:`check_link` applies the rules:

============================  ==========================================================
evidence                      pairs it may join
============================  ==========================================================
``unionid``                   a unionid with an openid, mini-program openid or
                              external_userid the platform reported it for
``verified_phone``            a phone (digest) with any non-phone identity, after the
                              number was verified (SMS code, WeChat phone authorisation)
``wecom_pairing``             an external_userid with a unionid or an official-account
                              openid (WeCom's own id conversion or contact details)
``order_phone``               a marketplace buyer id with the phone of its order
``operator``                  any pair; ``by`` must name the person deciding
``claimed``                   any pair, but only *attaches* an identity nobody holds:
                              it never merges two members (a typed, unverified phone)
============================  ==========================================================
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import attrs

from membermkt.core.identity._model import Identity, IdentityKind
from membermkt.errors import IdentityConflict, UsageError

__all__ = ["Evidence", "Link", "check_link", "link"]


class Evidence(enum.StrEnum):
    """Why two identities are believed to be one person."""

    UNIONID = "unionid"
    VERIFIED_PHONE = "verified_phone"
    WECOM_PAIRING = "wecom_pairing"
    ORDER_PHONE = "order_phone"
    OPERATOR = "operator"
    CLAIMED = "claimed"

    @property
    def merges(self) -> bool:
        """Whether this evidence may merge two existing members (all but ``claimed``)."""
        return self is not Evidence.CLAIMED


_K = IdentityKind
_PLATFORM_IDS = frozenset({_K.OPENID, _K.MINIPROGRAM_OPENID, _K.EXTERNAL_USERID})


def _pair_ok(evidence: Evidence, a: IdentityKind, b: IdentityKind) -> bool:
    pair = {a, b}
    if evidence is Evidence.UNIONID:
        return _K.UNIONID in pair and len(pair) == 2 and (pair - {_K.UNIONID}) <= _PLATFORM_IDS
    if evidence is Evidence.VERIFIED_PHONE:
        return _K.PHONE in pair and len(pair) == 2
    if evidence is Evidence.WECOM_PAIRING:
        return _K.EXTERNAL_USERID in pair and bool(pair & {_K.UNIONID, _K.OPENID})
    if evidence is Evidence.ORDER_PHONE:
        return pair == {_K.PLATFORM_BUYER, _K.PHONE}
    return True  # operator, claimed


def _to_evidence(value: Any) -> Evidence:
    try:
        return Evidence(value)
    except ValueError:
        known = ", ".join(e.value for e in Evidence)
        raise UsageError(f"unknown link evidence {value!r} (expected one of: {known})") from None


def _check_identity(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Identity):
        raise UsageError(f"Link.{attribute.name} must be an Identity, got {value!r}")


def _check_at(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise UsageError(f"Link.at must be a timezone-aware datetime, got {value!r}")


def _check_by(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 128:
        raise UsageError(f"Link.by must be a str of at most 128 characters, got {value!r}")


@attrs.frozen(slots=True)
class Link:
    """A claim that two identities are one person.

    Args:
        a, b: the two identities (order does not matter for the outcome).
        evidence: an :class:`Evidence` (or its value).
        at: when the evidence was obtained (timezone-aware).
        by: who or what decided (a flow name such as ``"wechat.user_info"``, or an operator).
        note: free text for the audit trail.

    Raises:
        UsageError: on an invalid field.
    """

    a: Identity = attrs.field(validator=_check_identity)
    b: Identity = attrs.field(validator=_check_identity)
    evidence: Evidence = attrs.field(converter=_to_evidence)
    at: dt.datetime = attrs.field(validator=_check_at)
    by: str = attrs.field(default="", validator=_check_by)
    note: str = attrs.field(default="", validator=_check_by)

    @property
    def pair(self) -> tuple[Identity, Identity]:
        """``(a, b)`` in token order (the order-free form of the link)."""
        return (self.a, self.b) if self.a.token <= self.b.token else (self.b, self.a)


def check_link(candidate: Link) -> Link:
    """Apply the rules to a link (see the module table).

    Returns:
        The link, unchanged, when the evidence supports the pair.

    Raises:
        IdentityConflict: when the evidence does not support joining these kinds, an
            operator link names nobody in ``by``, or both sides are the same identity.
    """
    if candidate.a == candidate.b:
        raise IdentityConflict(f"cannot link {candidate.a.token!r} to itself")
    if not _pair_ok(candidate.evidence, candidate.a.kind, candidate.b.kind):
        raise IdentityConflict(
            f"evidence {candidate.evidence.value!r} cannot link a {candidate.a.kind.value} "
            f"to a {candidate.b.kind.value}"
        )
    if candidate.evidence is Evidence.OPERATOR and not candidate.by:
        raise IdentityConflict("an operator link must name the operator in 'by'")
    return candidate


def link(
    a: Identity,
    b: Identity,
    evidence: Evidence | str,
    at: dt.datetime,
    *,
    by: str = "",
    note: str = "",
) -> Link:
    """Build and check a :class:`Link` (see :func:`check_link`).

    Raises:
        UsageError: on an invalid argument.
        IdentityConflict: when the rules refuse the link.
    """
    return check_link(Link(a, b, _to_evidence(evidence), at, by, note))

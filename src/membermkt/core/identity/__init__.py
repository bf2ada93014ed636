"""Identities and the identity graph.

A person may be known as an official-account openid (one per appid), a mini-program openid
(one per mini-program), a unionid (one per Open Platform account), a WeCom external_userid
(one per corp), marketplace buyer ids (Tmall, JD, ...) and phone numbers. membermkt keeps one
:class:`~membermkt.core.members.Member` per person and attaches these as :class:`Identity`
values. Phone numbers are never stored raw: :func:`phone_digest` turns a number into a keyed
SHA-256 digest.

Two identities become one person only through a :func:`link` with :class:`Evidence` that the
rules accept (:func:`check_link`): a unionid the platform reported, a verified phone, a WeCom
unionid/external_userid pairing, a marketplace order's phone, or an operator's decision. Every
merge is recorded as a :class:`MergeRecord` (who, why, when) and can be undone (split).
:class:`IdentityGraph` is the pure reference model the stores are tested against.
"""

from membermkt.core.identity._graph import IdentityGraph, LinkOutcome, MergeRecord
from membermkt.core.identity._links import Evidence, Link, check_link, link
from membermkt.core.identity._model import SINGULAR_KINDS, Identity, IdentityKind
from membermkt.core.identity._phone import normalize_phone, phone_digest
from membermkt.core.identity._plan import IdentityMerge, member_id_for, merge_plan

__all__ = [
    "SINGULAR_KINDS",
    "Evidence",
    "Identity",
    "IdentityGraph",
    "IdentityKind",
    "IdentityMerge",
    "Link",
    "LinkOutcome",
    "MergeRecord",
    "check_link",
    "link",
    "member_id_for",
    "merge_plan",
    "normalize_phone",
    "phone_digest",
]

"""Feeding the identity graph from WeCom: a customer's ``external_userid`` (per corp) and, for
WeChat users, their ``unionid`` — the key that ties them to the official account's followers.

:func:`link_contact` attaches both identities to one member, merging members that turn out to
be the same person (the survivor is chosen by :func:`~membermkt.core.identity.merge_plan`,
so the result does not depend on arrival order). :func:`sync_contacts` does it for every
customer of some staff members (``batch/get_by_user``, paged).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from membermkt.channels.wecom.api.contacts import ExternalContact
from membermkt.channels.wecom.client import WeCom
from membermkt.core.identity import Identity, member_id_for, merge_plan
from membermkt.core.members import Member, MemberState

__all__ = ["ContactSyncReport", "contact_identities", "link_contact", "sync_contacts"]


class _Store(Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def get_member(self, member_id: str) -> Member | None: ...

    def upsert_members(self, members: Iterable[Member]) -> int: ...

    def merge_members(self, keep: str, drop: str) -> None: ...


def contact_identities(corpid: str, contact: ExternalContact) -> tuple[Identity, ...]:
    """The customer's identities: ``external_userid`` in ``corpid`` and the ``unionid``
    WeCom reports for WeChat users (absent for WeCom users and unbound apps)."""
    out = [Identity.external_userid(corpid, contact.external_userid)]
    if contact.unionid:
        out.append(Identity.unionid(contact.unionid))
    return tuple(out)


def link_contact(store: _Store, corpid: str, contact: ExternalContact) -> tuple[str, int]:
    """Attach the customer's identities to one member (created when none is known).

    Returns:
        ``(member_id, merges)``: the surviving member and how many members were merged in.

    Raises:
        StoreError: when the store fails.
    """
    ids = contact_identities(corpid, contact)
    owners = [(i, mid) for i in ids if (mid := store.resolve(i)) is not None]
    keep, merges = merge_plan(owners, member_id_for(ids[0]))
    for m in merges:
        store.merge_members(m.keep, m.drop)
    member = store.get_member(keep) or Member(keep)
    if not all(i in member.identities for i in ids):
        store.upsert_members(
            [attrs.evolve(member, identities=(*member.identities, *ids), state=MemberState())]
        )
    return keep, len(merges)


@attrs.frozen(slots=True, kw_only=True)
class ContactSyncReport:
    """What :func:`sync_contacts` did."""

    customers: int
    with_unionid: int
    merges: int


def sync_contacts(client: WeCom, store: _Store, userids: Sequence[str]) -> ContactSyncReport:
    """Link every customer of the staff members (see :func:`link_contact`).

    Raises:
        PlatformError: when WeCom refuses a page.
        TransportError: when WeCom cannot be reached.
        StoreError: when the store fails.
    """
    seen: dict[str, ExternalContact] = {}
    for contact, _ in client.contacts_of_staff(userids):
        seen.setdefault(contact.external_userid, contact)
    merges = 0
    for contact in seen.values():
        merges += link_contact(store, client.corpid, contact)[1]
    return ContactSyncReport(
        customers=len(seen),
        with_unionid=sum(1 for c in seen.values() if c.unionid),
        merges=merges,
    )

"""Feeding the identity graph from WeCom: a customer's ``external_userid`` (per corp) and, for
WeChat users, their ``unionid`` — the key that ties them to the official account's followers.

:func:`link_contact` links both identities with ``store.link(..., "unionid", ...)``, merging
members that turn out to be the same person (the smaller member id survives, so the result
does not depend on arrival order; the merge is in the store's audit trail and can be split).
:func:`sync_contacts` does it for every customer of some staff members
(``batch/get_by_user``, paged); the callback handler does it for new contacts through a
:class:`~membermkt.channels.wecom.enrich.ContactEnricher` (``externalcontact/get``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from membermkt.channels._ingest import ingest
from membermkt.channels.wecom.api.contacts import ExternalContact
from membermkt.channels.wecom.client import WeCom
from membermkt.core.events import Event
from membermkt.core.identity import Evidence, Identity
from membermkt.core.members import Member
from membermkt.core.ports import IdentityLinks
from membermkt.errors import IdentityConflict

__all__ = ["ContactSyncReport", "contact_identities", "link_contact", "sync_contacts"]

log = logging.getLogger(__name__)

BY_SYNC = "wecom.sync_contacts"


class _Store(IdentityLinks, Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def upsert_members(self, members: Iterable[Member]) -> int: ...

    def append_events(self, events: Iterable[Event]) -> int: ...


def contact_identities(corpid: str, contact: ExternalContact) -> tuple[Identity, ...]:
    """The customer's identities: ``external_userid`` in ``corpid`` and the ``unionid``
    WeCom reports for WeChat users (absent for WeCom users and unbound apps)."""
    out = [Identity.external_userid(corpid, contact.external_userid)]
    if contact.unionid:
        out.append(Identity.unionid(contact.unionid))
    return tuple(out)


def link_contact(
    store: _Store,
    corpid: str,
    contact: ExternalContact,
    *,
    at: dt.datetime | None = None,
    by: str = BY_SYNC,
) -> tuple[str, int]:
    """Attach the customer's identities to one member: the ``external_userid`` (a member is
    created for it when nobody holds it) linked to the ``unionid`` WeCom reports
    (``store.link(external_userid, unionid, "unionid", at, by=by)``) — merging with the
    member that already holds the unionid (e.g. the official-account follower), recorded in
    the store's merge audit trail. Nothing is ever moved between members.

    Args:
        store: a store with ``link`` (``InMemoryStore``, ``SqlStore``).
        corpid: the corp.
        contact: the customer (``externalcontact/get`` or ``batch/get_by_user``).
        at: the time stamped on the link (default: now, UTC).
        by: who links, for the audit trail.

    Returns:
        ``(member_id, merges)``: the member holding the customer's identities afterwards and
        how many members were merged (0 or 1).

    Raises:
        IdentityConflict: when the link is refused (e.g. the unionid's member already holds
            another external_userid of this corp: two people).
        StoreError: when the store fails.
    """
    ext, *rest = contact_identities(corpid, contact)
    if not rest:
        got = ingest(store, ext, lambda mid: ())
        return got.member_id, 0
    when = at if at is not None else dt.datetime.now(dt.UTC)
    out = store.link(ext, rest[0], Evidence.UNIONID, when, by=by)
    return out.member_id, int(out.merge is not None)


@attrs.frozen(slots=True, kw_only=True)
class ContactSyncReport:
    """What :func:`sync_contacts` did (``conflicts``: external_userids not linked because
    the link was refused; see :func:`link_contact`)."""

    customers: int
    with_unionid: int
    merges: int
    conflicts: tuple[str, ...] = ()


def sync_contacts(
    client: WeCom, store: _Store, userids: Sequence[str], *, at: dt.datetime | None = None
) -> ContactSyncReport:
    """Link every customer of the staff members by unionid (see :func:`link_contact`).

    Raises:
        PlatformError: when WeCom refuses a page.
        TransportError: when WeCom cannot be reached.
        StoreError: when the store fails.
    """
    seen: dict[str, ExternalContact] = {}
    for contact, _ in client.contacts_of_staff(userids):
        seen.setdefault(contact.external_userid, contact)
    when = at if at is not None else dt.datetime.now(dt.UTC)
    merges = 0
    conflicts: list[str] = []
    for contact in seen.values():
        try:
            merges += link_contact(store, client.corpid, contact, at=when)[1]
        except IdentityConflict as exc:
            log.warning("%s: not linking %s: %s", BY_SYNC, contact.external_userid, exc)
            conflicts.append(contact.external_userid)
    return ContactSyncReport(
        customers=len(seen),
        with_unionid=sum(1 for c in seen.values() if c.unionid),
        merges=merges,
        conflicts=tuple(conflicts),
    )

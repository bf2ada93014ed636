"""Where an SMS goes: the member's real number, decrypted at send time.

A campaign on a phone channel (``address_kind="phone"``) addresses each member by their
phone identity — a keyed blind index, useless to a carrier. :class:`StoreNumbers` turns a
batch of deliveries into numbers: it loads the members, checks that the planned address is
still the member's phone identity, and decrypts the number the store keeps encrypted in
``phone_enc`` (:mod:`membermkt.security.phones`). The number lives only in the request to
the gateway: never in the ledger, a log or an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from membermkt.core.delivery import Delivery
from membermkt.core.identity import IdentityKind
from membermkt.core.members import Member
from membermkt.errors import DecryptError
from membermkt.security.phones import PhoneProtector

__all__ = ["Number", "NumberLookup", "StoreNumbers"]


@attrs.frozen(slots=True)
class Number:
    """A delivery's recipient: the E.164 number (``"+86…"``), or why there is none."""

    to: str | None
    reason: str = ""


class NumberLookup(Protocol):
    """``lookup(batch)`` → one :class:`Number` per delivery key."""

    def __call__(self, batch: Sequence[Delivery]) -> Mapping[str, Number]: ...


class _Members(Protocol):
    def get_members(self, member_ids: Any) -> dict[str, Member]: ...


class StoreNumbers:
    """Numbers of deliveries' members, decrypted from the store.

    Args:
        store: any store with ``get_members`` (``SqlStore``, ``InMemoryStore``).
        phones: the key ring the numbers were encrypted under (``PhoneProtector.from_env()``
            or the store's ``phones``).
    """

    def __init__(self, store: _Members, phones: PhoneProtector) -> None:
        self.store = store
        self.phones = phones

    def __repr__(self) -> str:
        return f"StoreNumbers({self.phones!r})"

    def __call__(self, batch: Sequence[Delivery]) -> dict[str, Number]:
        members = self.store.get_members({d.member_id for d in batch})
        return {d.key: self._number(d, members.get(d.member_id)) for d in batch}

    def _number(self, d: Delivery, member: Member | None) -> Number:
        if member is None:
            return Number(None, "member gone")
        phones = {i.value for i in member.identities if i.kind is IdentityKind.PHONE}
        if d.address not in phones:
            return Number(None, "phone changed since planning")
        try:
            number = self.phones.phone_of(member)
        except DecryptError:
            return Number(None, "phone number cannot be decrypted with this key ring")
        if number is None:
            return Number(None, "no phone number on file")
        # the number must be the one the planned address indexes (not a stale ciphertext)
        if not any(self.phones.digest(number, key_id=k) == d.address for k in self._ids()):
            return Number(None, "phone number does not match the address")
        return Number("+" + number)

    def _ids(self) -> tuple[str, ...]:
        return self.phones.key_ids

"""Joining: the ``member_joined`` event (channel, form, consent, gift) and the membership
fold as of a time.

A *member* is a follower, contact or buyer who **joined**: gave details (phone, birthday,
city...) with explicit consent, usually in exchange for a gift or a service, through a form
or an OAuth page. Joining is an event, so ``is_member``, ``joined_at`` and ``join_source``
are folds of events at or before ``as_of`` like every derived field, and segments see them
through :func:`~membermkt.core.membership.leaves.is_member` and friends.

The fold here (:func:`membership_as_of`) and the ``latest`` leaf agree by construction: the
latest of ``member_joined`` / ``member_left`` at or before ``as_of`` wins, ties going to
``member_left``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from membermkt.core.events import Event
from membermkt.core.membership.leaves import MEMBER_JOINED, MEMBER_LEFT
from membermkt.errors import UsageError

__all__ = [
    "CONSENT_FIELDS",
    "JoinOffer",
    "Membership",
    "joined_event",
    "left_event",
    "membership_as_of",
]

CONSENT_FIELDS: Final = frozenset({"phone", "birthday", "city", "name", "marketing"})
"""Details a joining form may ask for; each one needs its own explicit consent."""

_SOURCE_RE: Final = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@attrs.frozen(slots=True, kw_only=True)
class Membership:
    """A member's membership as of a time.

    Attributes:
        is_member: joined and not left since.
        joined_at: when the current membership started (``None`` when not a member).
        join_source: the channel/partner of the current membership (``source`` property).
        form: the form or page used to join.
        gift: what was given in exchange (a product or service id), if anything.
        consent: the details the member consented to share.
    """

    is_member: bool = False
    joined_at: dt.datetime | None = None
    join_source: str | None = None
    form: str | None = None
    gift: str | None = None
    consent: frozenset[str] = frozenset()


def joined_event(
    member_id: str,
    at: dt.datetime,
    *,
    source: str,
    channel: str,
    form: str,
    consent: Iterable[str],
    gift: str | None = None,
    sequence: int = 1,
) -> Event:
    """The ``member_joined`` event of one joining (key ``member_joined:<member>:<sequence>``,
    so a re-submitted form joins once).

    Args:
        member_id: who joins.
        at: when (aware).
        source: the acquisition source/partner credited with the member (e.g. ``"store-qr"``,
            ``"partner:gym"``).
        channel: where the form was shown (``"wechat.oauth"``, ``"wecom.sidebar"``...).
        form: the form/page id (its version).
        consent: the details the member explicitly agreed to share (subset of
            :data:`CONSENT_FIELDS`); at least one, since joining *is* the exchange of details.
        gift: what the member got in exchange (``"trial-bottle"``), if anything.
        sequence: 1 for a first joining, 2 for a re-joining after leaving, ...

    Raises:
        UsageError: for an empty or unknown consent, a malformed source, a bad sequence.
    """
    given = frozenset(consent)
    unknown = given - CONSENT_FIELDS
    if not given or unknown:
        raise UsageError(
            f"joined_event: consent must be a non-empty subset of {sorted(CONSENT_FIELDS)}, "
            f"got {sorted(given)}"
        )
    if not isinstance(source, str) or not _SOURCE_RE.match(source):
        raise UsageError(f"joined_event: source must match {_SOURCE_RE.pattern}, got {source!r}")
    for name, value in (("channel", channel), ("form", form)):
        if not isinstance(value, str) or not value:
            raise UsageError(f"joined_event: {name} must be a non-empty str, got {value!r}")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise UsageError(f"joined_event: sequence must be a positive int, got {sequence!r}")
    props: dict[str, str | int | float | bool] = {
        "source": source,
        "channel": channel,
        "form": form,
        "consent": ",".join(sorted(given)),
    }
    if gift:
        props["gift"] = gift
    return Event(
        member_id=member_id,
        type=MEMBER_JOINED,
        at=at,
        properties=props,
        key=f"{MEMBER_JOINED}:{member_id}:{sequence}",
    )


def _names(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise UsageError(f"expected a collection of names, got the string {value!r}")
    return frozenset(value)


@attrs.frozen(slots=True, kw_only=True)
class JoinOffer:
    """What a joining page offers and records: a gift or service in exchange for details.

    Attributes:
        source: the acquisition source/partner credited (``joined_event(source=...)``).
        form: the form/page id (and version).
        gift: what the member gets, if anything (``"trial-bottle"``).
        consent: the details the page asks consent for.
        channel: where the page runs.
        invite_only: only members with a ``member_invited`` event for ``form`` may join.
    """

    source: str
    form: str
    gift: str | None = None
    consent: frozenset[str] = attrs.field(
        default=frozenset({"phone", "marketing"}), converter=_names
    )
    channel: str = "wechat.oauth"
    invite_only: bool = False

    def event(self, member_id: str, at: dt.datetime, *, sequence: int = 1) -> Event:
        """The ``member_joined`` event of ``member_id`` joining through this offer."""
        return joined_event(
            member_id,
            at,
            source=self.source,
            channel=self.channel,
            form=self.form,
            consent=self.consent,
            gift=self.gift,
            sequence=sequence,
        )


def left_event(member_id: str, at: dt.datetime, *, reason: str, sequence: int = 1) -> Event:
    """The ``member_left`` event ending membership number ``sequence``.

    Raises:
        UsageError: for an empty reason.
    """
    if not isinstance(reason, str) or not reason:
        raise UsageError("left_event: reason must be a non-empty str")
    return Event(
        member_id=member_id,
        type=MEMBER_LEFT,
        at=at,
        properties={"reason": reason},
        key=f"{MEMBER_LEFT}:{member_id}:{sequence}",
    )


def membership_as_of(events: Iterable[Event], as_of: dt.datetime) -> Membership:
    """The membership folded from ``events`` (any order) at or before ``as_of``.

    The latest ``member_joined`` / ``member_left`` decides (a leave wins a tie); among
    several joinings at that same latest instant, the one with the smallest key is reported.
    """
    best: tuple[dt.datetime, int] | None = None
    winners: list[Event] = []
    for ev in events:
        if ev.type not in (MEMBER_JOINED, MEMBER_LEFT) or ev.at > as_of:
            continue
        rank = (ev.at, 1 if ev.type == MEMBER_LEFT else 0)
        if best is None or rank > best:
            best, winners = rank, [ev]
        elif rank == best:
            winners.append(ev)
    if best is None or best[1] == 1:
        return Membership()
    ev = min(winners, key=lambda e: (e.key or "", sorted(e.properties.items())))
    return Membership(
        is_member=True,
        joined_at=ev.at,
        join_source=_str(ev.properties, "source"),
        form=_str(ev.properties, "form"),
        gift=_str(ev.properties, "gift"),
        consent=frozenset(c for c in str(ev.properties.get("consent", "")).split(",") if c),
    )


def _str(props: Mapping[str, object], name: str) -> str | None:
    v = props.get(name)
    return v if isinstance(v, str) else None

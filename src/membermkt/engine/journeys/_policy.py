"""The hand-off policy of journey sends (#12: policy is checked again at send time).

A journey plans its side effects when a member reaches a step; the runner hands them to
the channel later (the next :meth:`~membermkt.engine.journeys.JourneyEngine.dispatch`). In
between the member may have opted out, unfollowed or left the WeCom relation, quiet hours
may have begun in their zone, and other campaigns — or this journey — may have used the
frequency caps. :class:`JourneyPolicy` re-checks each delivery right before its batch is
written, with the same rules as a campaign (:func:`membermkt.core.campaigns.handoff_skip`);
a delivery that no longer qualifies ends ``skipped(reason)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from membermkt.core.accounts import AccountType
from membermkt.core.campaigns import Campaign, QuietHours, Variant, handoff_skip
from membermkt.core.delivery import DeliveryRecord
from membermkt.core.ports import LedgerHistory, MemberStore
from membermkt.core.quotas import Cap, PastSend
from membermkt.core.segments import TRUE
from membermkt.engine.handoff import ledger_history
from membermkt.errors import UsageError

__all__ = ["JourneyPolicy", "journey_send_rules"]


def journey_send_rules(
    journey_id: str,
    channel: str,
    *,
    address_kind: str,
    address_namespace: str = "",
    quiet_hours: QuietHours | None = None,
    caps: Iterable[Cap] = (),
    account_type: AccountType | str = AccountType.SERVICE,
) -> Campaign:
    """The rules a journey's sends on ``channel`` obey, as a
    :class:`~membermkt.core.campaigns.Campaign` value (only its policy fields are used:
    channel, address, quiet hours, caps, and the platform rules of the channel on this
    account type — subscription / contact status, the 4-per-month mass cap, WeCom's
    per-customer caps).

    Raises:
        UsageError: for an invalid field (a bad cap, quiet hours or account type).
    """
    return Campaign(
        id=journey_id,
        audience=TRUE,
        channel=channel,
        variants=(Variant(name="default", content={}),),
        caps=tuple(caps),
        quiet_hours=quiet_hours,
        address_kind=address_kind,
        address_namespace=address_namespace,
        account_type=account_type,
    )


class JourneyPolicy:
    """:class:`~membermkt.engine.runner.HandOffPolicy` of a journey's sends on one channel.

    Checks, per delivery, at hand-off: the member still exists, consent
    (``marketing`` and per-channel opt-outs), the subscription / contact status the
    channel's platform rules require, the address is still the member's, quiet hours in the
    member's zone, the frequency caps and the platform's receive caps. Caps count every
    send in the ledger — other campaigns and *this journey's* earlier steps and entries
    (unlike a campaign, a journey sends to a member more than once), in-doubt ones included,
    and the deliveries of the same batch approved before.

    Args:
        rules: the journey's rules on this channel (:func:`journey_send_rules`).
        members: the store members are read from (one ``get_members`` per batch); its
            ledger history (``past_sends``) feeds the caps.

    Raises:
        UsageError: when ``members`` cannot read members, or keeps no history while the
            rules have caps.
    """

    def __init__(self, rules: Campaign, members: MemberStore) -> None:
        if not hasattr(members, "get_members"):
            raise UsageError(f"{members!r} cannot read members (needs get_members)")
        self.rules = rules
        self.members = members
        self._ledger = members if isinstance(members, LedgerHistory) else None
        if self._ledger is None and (rules.caps or rules.platform_rules.caps):
            raise UsageError(
                f"journey {rules.id!r} on {rules.channel!r} has caps but {members!r} keeps "
                "no send history (past_sends)"
            )

    def __repr__(self) -> str:
        return f"JourneyPolicy({self.rules.id!r}, {self.rules.channel!r})"

    def check(self, records: Sequence[DeliveryRecord], now: dt.datetime) -> dict[str, str]:
        """Skip reasons (``"no_consent"``, ``"quiet_hours"``, ``"frequency_cap:<cap>"``, ...)
        by delivery key, for the deliveries that no longer qualify at ``now``."""
        ids = list(dict.fromkeys(r.delivery.member_id for r in records))
        found = self.members.get_members(ids)
        sends: dict[str, list[PastSend]] = {}
        if self._ledger is not None:
            past = ledger_history(self._ledger, ids, now)
            sends = {mid: list(v) for mid, v in past.items()}
        out: dict[str, str] = {}
        for r in records:
            d = r.delivery
            mine = sends.setdefault(d.member_id, [])
            why = handoff_skip(self.rules, found.get(d.member_id), d.address, mine, now)
            if why is None:
                # a later delivery of the same batch to this member sees this one
                mine.append(
                    PastSend(
                        member_id=d.member_id, channel=d.channel, at=now, campaign_id=d.campaign_id
                    )
                )
                continue
            reason, detail = why
            out[r.key] = f"{reason.value}:{detail}" if detail else reason.value
        return out

"""``wecom.group`` — mass messages to customer groups through the staff's assistant (客户群群发).

``add_msg_template`` with ``chat_type=group`` (reference §3.4): ``sender`` is required, and
``chat_id_list`` names at most 2000 customer groups. As for ``wecom.mass``, **nothing is sent
until the sender confirms** in the WeCom client (the task goes to the groups' owner), so an
accepted delivery is ``pending_confirmation`` (``SendOutcome.PENDING``, ``platform_id`` =
the ``msgid``), and :func:`pull_group_results` later reads the per-group results
(``get_groupmsg_task`` → ``get_groupmsg_send_result``, whose rows carry ``chat_id`` and no
``external_userid`` for group messages) back into the ledger: status 1 → sent; 2 and 3 →
failed; 0 stays pending. ``add_msg_template`` has no idempotency key: an ambiguous transport
failure is ``unknown`` and never re-sent.

A delivery's **address is the group's chat_id** and its payload ``{"text": str?,
"attachments": [...]?, "sender": userid?}`` (text ≤ 4000 bytes, ≤ 9 attachments); the
channel's ``sender`` is the default. Deliveries with the same content and sender go out as
one call of ≤ 2000 groups. A group is not a person: :func:`plan_group_send` plans a
``wecom.group`` :class:`~membermkt.core.campaigns.Campaign` as one delivery per group
(``member_id`` = :func:`group_recipient_id`, so the ledger's history counts each group's
own receive cap), from a list of groups (e.g.
:func:`~membermkt.channels.wecom.groups.fetch_group_chats`), with the campaign's variants,
holdout, caps and schedule.

Unconfirmed (the reference does not say, marked in the code): how WeCom answers a group the
sender does not own (the emulator puts it in ``fail_list``), and whether status 2 ("not a
friend") is what a dismissed group gets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.channel import _check_channel
from membermkt.channels.wecom._send_common import (
    Ledger,
    LedgerMark,
    PullReport,
    Task,
    apull_results,
    asend_tasks,
    marks_for,
    pull_results,
    send_tasks,
    tasks,
)
from membermkt.channels.wecom.api import mass
from membermkt.channels.wecom.api.groupchat import GroupChat
from membermkt.channels.wecom.api.mass import CustomerResult, MsgTemplate, SendStatus
from membermkt.channels.wecom.client import AsyncWeCom, WeCom
from membermkt.core.campaigns import (
    HOLDOUT,
    Campaign,
    Skip,
    SkipReason,
    check,
    delivery_key,
)
from membermkt.core.delivery import (
    ChannelCapabilities,
    Delivery,
    DeliveryRecord,
    SendResult,
)
from membermkt.core.members import Member
from membermkt.core.ports import LedgerHistory
from membermkt.core.quotas import (
    DEFAULT_RULES,
    WECOM_GROUP_DAILY,
    WECOM_GROUP_DAYS_IN_MONTH,
    WECOM_GROUP_LEGACY_MONTHLY,
    WECOM_GROUP_WEEKLY,
    ChannelRules,
    HistoryLike,
    history_lookup,
)
from membermkt.errors import UsageError

__all__ = [
    "GROUP_ADDRESS_KIND",
    "GROUP_CAPS",
    "GROUP_RULES",
    "AsyncWeComGroupChannel",
    "GroupSendPolicy",
    "WeComGroupChannel",
    "apull_group_results",
    "group_ledger_marks",
    "group_recipient_id",
    "group_rules",
    "plan_group_send",
    "pull_group_results",
]

GROUP_CAPS: Final = {
    "days_in_month": WECOM_GROUP_DAYS_IN_MONTH,
    "4_per_month": WECOM_GROUP_LEGACY_MONTHLY,
    "7_per_week": WECOM_GROUP_WEEKLY,
    "1_per_day": WECOM_GROUP_DAILY,
}
"""The receive-cap settings per customer group (reference §3.4: the cap is "per customer /
customer group"; same conflict and admin options as :data:`~.channel.MASS_CAPS`)."""

GROUP_RULES = (
    "add_msg_template chat_type=group: sender required, ≤ 2000 chat_id_list groups, "
    "≤ 9 attachments, text ≤ 4000 bytes",
    "the sender (the groups' owner) must confirm in the WeCom client (pending_confirmation)",
    "per-group receive cap across all mass messages of the corp (configurable)",
)

GROUP_ADDRESS_KIND: Final = "chat_id"
"""The address kind of ``wecom.group`` deliveries (a customer group's ``chat_id``)."""
_RECIPIENT_PREFIX = "wecom_chat:"


def group_rules(cap: str = "days_in_month") -> ChannelRules:
    """The ``wecom.group`` platform rules with the chosen per-group receive cap.

    Raises:
        UsageError: for an unknown cap name (see :data:`GROUP_CAPS`).
    """
    if cap not in GROUP_CAPS:
        raise UsageError(f"unknown WeCom group cap {cap!r}; choose from {sorted(GROUP_CAPS)}")
    return attrs.evolve(DEFAULT_RULES["wecom.group"], caps=(GROUP_CAPS[cap],))


def group_recipient_id(corpid: str, chat_id: str) -> str:
    """The ledger's recipient id of a customer group (``member_id`` of its deliveries), so
    past sends — and so the receive cap — are counted per group."""
    if not corpid or not chat_id:
        raise UsageError("group_recipient_id needs a corpid and a chat_id")
    return f"{_RECIPIENT_PREFIX}{corpid}:{chat_id}"


def plan_group_send(
    campaign: Campaign,
    corpid: str,
    chats: Iterable[GroupChat],
    *,
    as_of: dt.datetime,
    history: HistoryLike = None,
    sender: str | None = None,
) -> tuple[list[Delivery], list[Skip]]:
    """One delivery per customer group for a ``wecom.group`` campaign, or a skip (pure).

    The groups are ``chats`` (e.g. from
    :func:`~membermkt.channels.wecom.groups.fetch_group_chats`), not the campaign's audience
    (a segment of members). The campaign is checked first (:func:`~membermkt.core.campaigns.
    check`: content limits, no per-member fields). Then, per group, in this order:
    outside the campaign's schedule (``outside_schedule``); no owner and no ``sender``, or
    a group ``sender`` does not own — the task goes to the groups' owner, reference §3.4
    (``no_address``); the campaign's frequency caps (``frequency_cap``) and the platform's
    per-group receive cap (``platform_quota``), counted from ``history`` keyed by
    :func:`group_recipient_id` (e.g. ``store.past_sends(...)``); the holdout
    (``holdout``); then the variant, by the same keyed hash as members. Each delivery's
    payload carries its ``sender`` (the owner unless ``sender`` is given).

    Raises:
        UsageError: for a naive ``as_of``, a campaign whose ``address_kind`` is not
            ``"chat_id"`` (or whose namespace is another corp), or a campaign the platform
            would refuse.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"plan_group_send(as_of=...) must be timezone-aware, got {as_of!r}")
    if campaign.address_kind != GROUP_ADDRESS_KIND:
        raise UsageError(
            f"campaign {campaign.id!r} addresses {campaign.address_kind!r}; a group send "
            f"addresses groups: Campaign(address_kind={GROUP_ADDRESS_KIND!r}, ...)"
        )
    check(campaign, capabilities=_capabilities(corpid))
    rules = campaign.platform_rules
    sends_of = history_lookup(history)
    in_schedule = campaign.schedule is None or campaign.schedule.contains(as_of)
    variants = {v.name: v for v in campaign.variants}
    deliveries: list[Delivery] = []
    skips: list[Skip] = []
    seen: set[str] = set()
    for chat in chats:
        if chat.chat_id in seen:
            continue
        seen.add(chat.chat_id)
        rid = group_recipient_id(corpid, chat.chat_id)
        if not in_schedule:
            skips.append(Skip(member_id=rid, reason=SkipReason.OUTSIDE_SCHEDULE))
            continue
        who = sender or chat.owner
        if not who:
            skips.append(Skip(member_id=rid, reason=SkipReason.NO_ADDRESS, detail="no owner"))
            continue
        if chat.owner is not None and who != chat.owner:
            skips.append(
                Skip(member_id=rid, reason=SkipReason.NO_ADDRESS, detail=f"owner {chat.owner}")
            )
            continue
        # rule: wecom.group_cap -- each group's own sends, keyed by its recipient id
        sends = sends_of(rid)
        cap = next((c for c in campaign.caps if not c.allows(sends, as_of, campaign.channel)), None)
        if cap is not None:
            skips.append(Skip(member_id=rid, reason=SkipReason.FREQUENCY_CAP, detail=cap.label))
            continue
        cap = next((c for c in rules.caps if not c.allows(sends, as_of, rules.channel)), None)
        if cap is not None:
            skips.append(Skip(member_id=rid, reason=SkipReason.PLATFORM_QUOTA, detail=cap.label))
            continue
        vname = campaign.variant_for(rid)
        if vname == HOLDOUT:
            skips.append(Skip(member_id=rid, reason=SkipReason.HOLDOUT, variant=HOLDOUT))
            continue
        payload = variants[vname].render(Member(rid))
        deliveries.append(
            Delivery(
                key=delivery_key(campaign.id, rid),
                campaign_id=campaign.id,
                member_id=rid,
                channel=campaign.channel,
                address=chat.chat_id,
                variant=vname,
                payload={**payload, "sender": who},
            )
        )
    return deliveries, skips


_LOOKBACK = dt.timedelta(days=400)  # as membermkt.engine.handoff.LOOKBACK


class GroupSendPolicy:
    """The hand-off policy of a ``wecom.group`` campaign (a
    :class:`~membermkt.engine.runner.HandOffPolicy`: ``CampaignRunner(..., policy=...)``).

    Groups are not members, so the member checks of
    :class:`~membermkt.engine.handoff.CampaignPolicy` do not apply; right before hand-off
    this re-checks what can have changed since the plan: the schedule's end, the campaign's
    frequency caps and the per-group receive cap, over every other campaign's sends to the
    group (in-doubt ones included) — from the ledger by default.

    Args:
        campaign: the ``wecom.group`` campaign.
        ledger: the ledger whose ``past_sends`` is the history (a store).
        history: explicit past sends instead of the ledger's.

    Raises:
        UsageError: with neither a ledger nor a history while the campaign has caps.
    """

    def __init__(
        self,
        campaign: Campaign,
        ledger: LedgerHistory | None = None,
        *,
        history: HistoryLike = None,
    ) -> None:
        self.campaign = campaign
        self._ledger = ledger if history is None else None
        self._history = history
        if (
            self._ledger is None
            and history is None
            and (campaign.caps or campaign.platform_rules.caps)
        ):
            raise UsageError(
                f"campaign {campaign.id!r} has caps: pass the ledger or history= to GroupSendPolicy"
            )

    def __repr__(self) -> str:
        return f"GroupSendPolicy({self.campaign.id!r})"

    def check(self, records: Sequence[DeliveryRecord], now: dt.datetime) -> dict[str, str]:
        """Skip reasons by delivery key for the groups that no longer qualify at ``now``
        (``"outside_schedule:schedule ended"``, ``"frequency_cap:<cap>"``,
        ``"platform_quota:<cap>"``)."""
        if not isinstance(now, dt.datetime) or now.utcoffset() is None:
            raise UsageError(f"GroupSendPolicy.check(now=...) must be timezone-aware, got {now!r}")
        campaign = self.campaign
        ids = list(dict.fromkeys(r.delivery.member_id for r in records))
        if self._ledger is not None:
            sends_of = history_lookup(
                self._ledger.past_sends(ids, since=now - _LOOKBACK, exclude_campaign=campaign.id)
            )
        else:
            sends_of = history_lookup(self._history)
        schedule = campaign.schedule
        ended = schedule is not None and schedule.end is not None and now >= schedule.end
        rules = campaign.platform_rules
        out: dict[str, str] = {}
        for r in records:
            if ended:
                out[r.key] = f"{SkipReason.OUTSIDE_SCHEDULE.value}:schedule ended"
                continue
            sends = sends_of(r.delivery.member_id)
            cap = next(
                (c for c in campaign.caps if not c.allows(sends, now, campaign.channel)), None
            )
            if cap is not None:
                out[r.key] = f"{SkipReason.FREQUENCY_CAP.value}:{cap.label}"
                continue
            cap = next((c for c in rules.caps if not c.allows(sends, now, rules.channel)), None)
            if cap is not None:
                out[r.key] = f"{SkipReason.PLATFORM_QUOTA.value}:{cap.label}"
        return out


# ----------------------------------------------------------------------------- channel


# reference §3.4: sender is required for chat_type=group
_NO_SENDER = "a wecom.group delivery needs a sender (payload or channel)"


def _call(b: Task) -> ApiCall[MsgTemplate]:
    return mass.add_msg_template(
        chat_type="group",
        chat_ids=[d.address for d in b.deliveries],
        sender=b.sender,
        text=b.text,
        attachments=b.attachments,
    )


def _capabilities(corpid: str) -> ChannelCapabilities:
    return ChannelCapabilities(
        max_batch_size=mass.CHATS_MAX,
        idempotent=False,
        address_kind=GROUP_ADDRESS_KIND,
        address_namespace=corpid,
        rules=GROUP_RULES,
    )


class WeComGroupChannel:
    """``wecom.group``: customer-group mass send, pending until the sender confirms
    (module docs).

    Args:
        client: the corp's :class:`WeCom` client.
        sender: the default sending staff member (payload ``sender`` overrides); WeCom
            requires one per group message.
        name: the channel name.
    """

    def __init__(self, client: WeCom, *, sender: str | None = None, name: str = "wecom.group"):
        self.client = client
        self.sender = sender
        self.name = name
        self.capabilities = _capabilities(client.corpid)
        self.batch_call = True  # one add_msg_template per batch: hand whole batches off

    def __repr__(self) -> str:
        return f"WeComGroupChannel({self.client.corpid!r}, sender={self.sender!r})"

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """Create the group mass-send tasks; one result per delivery, in order
        (``pending`` for accepted groups).

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        _check_channel(batch, self.name)
        planned = tasks(batch, self.sender, per_call=mass.CHATS_MAX, no_sender=_NO_SENDER)
        return send_tasks(self.client.call, batch, planned, _call)


class AsyncWeComGroupChannel:
    """The async twin of :class:`WeComGroupChannel`."""

    def __init__(self, client: AsyncWeCom, *, sender: str | None = None, name: str = "wecom.group"):
        self.client = client
        self.sender = sender
        self.name = name
        self.capabilities = _capabilities(client.corpid)
        self.batch_call = True

    def __repr__(self) -> str:
        return f"AsyncWeComGroupChannel({self.client.corpid!r}, sender={self.sender!r})"

    async def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """See :meth:`WeComGroupChannel.send`.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        _check_channel(batch, self.name)
        planned = tasks(batch, self.sender, per_call=mass.CHATS_MAX, no_sender=_NO_SENDER)
        return await asend_tasks(self.client.call, batch, planned, _call)


# ----------------------------------------------------------------------------- results

# status 2 is documented as "the customer is not a friend"; for a group the reference says
# nothing (unconfirmed: the emulator uses it for a dismissed group or one that changed owner)
_REASON = {SendStatus.NOT_FRIEND: "group_unavailable", SendStatus.CAP_REACHED: "receive_cap"}


def group_ledger_marks(
    pending: Iterable[DeliveryRecord], results: Iterable[CustomerResult]
) -> list[LedgerMark]:
    """Map WeCom's per-group results onto pending ``wecom.group`` deliveries (pure).

    A pending delivery (address = chat_id) becomes ``sent`` on status 1, ``failed`` on 2
    (``wecom:group_unavailable``) or 3 (``wecom:receive_cap``), and stays pending on 0 or
    without a row. Rows without a ``chat_id`` (customer messages) are ignored.
    """
    by_chat: dict[str, list[int]] = {}
    for r in results:
        if r.chat_id:
            by_chat.setdefault(r.chat_id, []).append(r.status)
    return marks_for(pending, by_chat, _REASON)


def pull_group_results(
    client: WeCom, ledger: Ledger, campaign_id: str, *, now: dt.datetime
) -> PullReport:
    """Read the results of every pending ``wecom.group`` delivery of a campaign and mark the
    ledger (``pending_confirmation → sent | failed``). Run it periodically.

    Raises:
        PlatformError: when WeCom refuses a result query.
        TransportError: when WeCom cannot be reached.
        LedgerError: when the ledger refuses a transition.
    """
    return pull_results(client.mass_results, ledger, campaign_id, group_ledger_marks, now)


async def apull_group_results(
    client: AsyncWeCom, ledger: Ledger, campaign_id: str, *, now: dt.datetime
) -> PullReport:
    """The async twin of :func:`pull_group_results` (the ledger calls are sync).

    Raises:
        PlatformError: when WeCom refuses a result query.
        TransportError: when WeCom cannot be reached.
        LedgerError: when the ledger refuses a transition.
    """
    return await apull_results(client.mass_results, ledger, campaign_id, group_ledger_marks, now)

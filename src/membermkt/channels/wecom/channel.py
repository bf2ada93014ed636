"""WeCom channels (the ``Channel`` port): ``wecom.mass`` and ``wecom.welcome``, sync and async.

``wecom.mass`` — customer mass send through the mass-send assistant (客户群发). A delivery's
address is the customer's ``external_userid``; its payload is ``{"text": str?,
"attachments": [...]?, "sender": userid?}`` (text ≤ 4000 bytes, ≤ 9 attachments). Deliveries
with the same content and sender go out as one ``add_msg_template`` (≤ 10,000 customers).
**Nothing is sent until the staff member confirms** in the WeCom client, so an accepted
delivery is ``pending_confirmation`` (``SendOutcome.PENDING``, ``platform_id`` = the
``msgid``); :func:`pull_mass_results` later reads the per-customer results back into the
ledger (status 1 → sent; 2 not a friend, 3 receive cap → failed; 0 stays pending). Customers
in ``fail_list`` fail at once. ``add_msg_template`` has no idempotency key: an ambiguous
transport failure is ``unknown`` and never re-sent.

The per-customer receive cap is domain data (:func:`mass_rules`): the reference lists a
conflict, so the current doc's rule (days-in-month per month) is the default and the older
4-per-month, the admin's 7-per-week and 1-per-day settings are selectable.

``wecom.welcome`` — a welcome through the ledger (address: external_userid; payload
``{"welcome_code", "text"?, "attachments"?}``): one call per delivery, 41051 permanent, an
ambiguous failure ``unknown`` (the code is single-use). The callback fast path
(:class:`~membermkt.channels.wecom.welcome.WelcomeSender`) is the usual way to welcome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.channel import _check_channel
from membermkt.channels.wecom._send_common import (
    SEND_ERRORS,
    Ledger,
    LedgerMark,
    PullReport,
    Task,
    apull_results,
    asend_tasks,
    classify_error,
    content,
    marks_for,
    pull_results,
    send_tasks,
    tasks,
)
from membermkt.channels.wecom.api import mass
from membermkt.channels.wecom.api.mass import CustomerResult, MsgTemplate, SendStatus
from membermkt.channels.wecom.client import AsyncWeCom, WeCom
from membermkt.core.delivery import (
    ChannelCapabilities,
    Delivery,
    DeliveryRecord,
    SendOutcome,
    SendResult,
)
from membermkt.core.quotas import (
    DEFAULT_RULES,
    WECOM_MASS_DAILY,
    WECOM_MASS_DAYS_IN_MONTH,
    WECOM_MASS_LEGACY_MONTHLY,
    WECOM_MASS_WEEKLY,
    ChannelRules,
)
from membermkt.errors import UsageError

__all__ = [
    "MASS_CAPS",
    "AsyncWeComMassChannel",
    "AsyncWeComWelcomeChannel",
    "LedgerMark",
    "PullReport",
    "WeComMassChannel",
    "WeComWelcomeChannel",
    "apull_mass_results",
    "classify_error",
    "ledger_marks",
    "mass_rules",
    "pull_mass_results",
]

MASS_CAPS: Final = {
    "days_in_month": WECOM_MASS_DAYS_IN_MONTH,
    "4_per_month": WECOM_MASS_LEGACY_MONTHLY,
    "7_per_week": WECOM_MASS_WEEKLY,
    "1_per_day": WECOM_MASS_DAILY,
}
"""The receive-cap settings (reference §3.4: current doc days-in-month/month, admin options
7/week and 1/day; older docs 4/month — a conflict)."""

MASS_RULES = (
    "add_msg_template: ≤ 10,000 customers, ≤ 9 attachments, text ≤ 4000 bytes",
    "staff must confirm each mass message in the WeCom client (pending_confirmation)",
    "per-customer receive cap across all mass messages of the corp (configurable)",
)
WELCOME_RULES = ("send_welcome_msg: within 20 s of the add event, once (41051 afterwards)",)


def mass_rules(cap: str = "days_in_month") -> ChannelRules:
    """The ``wecom.mass`` platform rules with the chosen receive cap (for
    ``Campaign(rules=...)``).

    Raises:
        UsageError: for an unknown cap name (see :data:`MASS_CAPS`).
    """
    if cap not in MASS_CAPS:
        raise UsageError(f"unknown WeCom mass cap {cap!r}; choose from {sorted(MASS_CAPS)}")
    return attrs.evolve(DEFAULT_RULES["wecom.mass"], caps=(MASS_CAPS[cap],))


def _call(task: Task) -> ApiCall[MsgTemplate]:
    return mass.add_msg_template(
        external_userids=[d.address for d in task.deliveries],
        sender=task.sender,
        text=task.text,
        attachments=task.attachments,
    )


def _capabilities(corpid: str, kind: str) -> ChannelCapabilities:
    if kind == "mass":
        return ChannelCapabilities(
            max_batch_size=mass.CUSTOMERS_MAX,
            idempotent=False,
            address_kind="external_userid",
            address_namespace=corpid,
            rules=MASS_RULES,
        )
    return ChannelCapabilities(
        max_batch_size=100,
        idempotent=False,
        address_kind="external_userid",
        address_namespace=corpid,
        rules=WELCOME_RULES,
    )


def _looked_up(
    pairs: Sequence[tuple[Delivery, str]], found: Mapping[str, Sequence[CustomerResult] | None]
) -> list[SendResult]:
    """Per delivery, what ``get_groupmsg_send_result`` says of its task (pure): status 1 →
    sent; 2 (not a friend) / 3 (receive cap) on every row → failed; a task WeCom knows with
    no final row yet → pending (the staff member has not confirmed); no answer → unknown."""
    out: list[SendResult] = []
    for d, msgid in pairs:
        rows = found.get(msgid)
        if rows is None:
            out.append(SendResult(key=d.key, outcome=SendOutcome.UNKNOWN, reason="lookup failed"))
            continue
        statuses = [r.status for r in rows if r.external_userid == d.address]
        if SendStatus.SENT in statuses:
            out.append(SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=msgid))
        elif statuses and all(st in _STATUS_REASON for st in statuses):
            reason = _STATUS_REASON[SendStatus(statuses[0])]
            out.append(
                SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason=f"wecom:{reason}")
            )
        else:
            out.append(SendResult(key=d.key, outcome=SendOutcome.PENDING, platform_id=msgid))
    return out


class WeComMassChannel:
    """``wecom.mass``: customer mass send, pending until staff confirm (module docs).

    Args:
        client: the corp's :class:`WeCom` client.
        sender: the default sending staff member (payload ``sender`` overrides; ``None``:
            WeCom assigns each customer to the member who last chatted with them).
        name: the channel name.
    """

    def __init__(self, client: WeCom, *, sender: str | None = None, name: str = "wecom.mass"):
        self.client = client
        self.sender = sender
        self.name = name
        self.capabilities = _capabilities(client.corpid, "mass")
        self.batch_call = True  # one add_msg_template per batch: hand whole batches off

    def __repr__(self) -> str:
        return f"WeComMassChannel({self.client.corpid!r}, sender={self.sender!r})"

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """Create the mass-send tasks; one result per delivery, in order (``pending`` for
        accepted customers).

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        _check_channel(batch, self.name)
        planned = tasks(batch, self.sender, per_call=mass.CUSTOMERS_MAX)
        return send_tasks(self.client.call, batch, planned, _call)

    def lookup(self, pairs: Sequence[tuple[Delivery, str]]) -> Sequence[SendResult]:
        """What WeCom knows of in-doubt deliveries whose task ``msgid`` the ledger holds
        (``get_groupmsg_send_result``, every page): sent, failed, or pending while the staff
        member has not confirmed. The runner asks this instead of ever resending a
        ``wecom.mass`` batch (``add_msg_template`` has no idempotency key)."""
        found: dict[str, Sequence[CustomerResult] | None] = {}
        for msgid in dict.fromkeys(m for _, m in pairs):
            try:
                found[msgid] = self.client.mass_results(msgid)
            except SEND_ERRORS:
                found[msgid] = None
        return _looked_up(pairs, found)


class AsyncWeComMassChannel:
    """The async twin of :class:`WeComMassChannel`."""

    def __init__(self, client: AsyncWeCom, *, sender: str | None = None, name: str = "wecom.mass"):
        self.client = client
        self.sender = sender
        self.name = name
        self.capabilities = _capabilities(client.corpid, "mass")
        self.batch_call = True  # one add_msg_template per batch: hand whole batches off

    def __repr__(self) -> str:
        return f"AsyncWeComMassChannel({self.client.corpid!r}, sender={self.sender!r})"

    async def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """See :meth:`WeComMassChannel.send`.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        _check_channel(batch, self.name)
        planned = tasks(batch, self.sender, per_call=mass.CUSTOMERS_MAX)
        return await asend_tasks(self.client.call, batch, planned, _call)

    async def lookup(self, pairs: Sequence[tuple[Delivery, str]]) -> Sequence[SendResult]:
        """See :meth:`WeComMassChannel.lookup`."""
        found: dict[str, Sequence[CustomerResult] | None] = {}
        for msgid in dict.fromkeys(m for _, m in pairs):
            try:
                found[msgid] = await self.client.mass_results(msgid)
            except SEND_ERRORS:
                found[msgid] = None
        return _looked_up(pairs, found)


def _welcome_call(d: Delivery) -> ApiCall[None]:
    code = d.payload.get("welcome_code")
    if not isinstance(code, str) or not code:
        raise UsageError("wecom.welcome payload needs 'welcome_code'")
    text, attachments = content(d.payload)
    return mass.send_welcome_msg(code, text=text, attachments=attachments)


class WeComWelcomeChannel:
    """``wecom.welcome``: one ``send_welcome_msg`` per delivery (module docs).

    Args:
        client: the corp's :class:`WeCom` client.
        name: the channel name.
    """

    def __init__(self, client: WeCom, *, name: str = "wecom.welcome") -> None:
        self.client = client
        self.name = name
        self.capabilities = _capabilities(client.corpid, "welcome")

    def __repr__(self) -> str:
        return f"WeComWelcomeChannel({self.client.corpid!r})"

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """Send each welcome once; one result per delivery, in order.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        _check_channel(batch, self.name)
        out: list[SendResult] = []
        for d in batch:
            try:
                self.client.call(_welcome_call(d))
            except SEND_ERRORS as exc:
                out.append(classify_error(d.key, exc, idempotent=False))
                continue
            out.append(SendResult(key=d.key, outcome=SendOutcome.SENT))
        return out


class AsyncWeComWelcomeChannel:
    """The async twin of :class:`WeComWelcomeChannel`."""

    def __init__(self, client: AsyncWeCom, *, name: str = "wecom.welcome") -> None:
        self.client = client
        self.name = name
        self.capabilities = _capabilities(client.corpid, "welcome")

    def __repr__(self) -> str:
        return f"AsyncWeComWelcomeChannel({self.client.corpid!r})"

    async def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """See :meth:`WeComWelcomeChannel.send`.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        _check_channel(batch, self.name)
        out: list[SendResult] = []
        for d in batch:
            try:
                await self.client.call(_welcome_call(d))
            except SEND_ERRORS as exc:
                out.append(classify_error(d.key, exc, idempotent=False))
                continue
            out.append(SendResult(key=d.key, outcome=SendOutcome.SENT))
        return out


# ----------------------------------------------------------------------------- results


_STATUS_REASON = {SendStatus.NOT_FRIEND: "not_friend", SendStatus.CAP_REACHED: "receive_cap"}


def ledger_marks(
    pending: Iterable[DeliveryRecord], results: Iterable[CustomerResult]
) -> list[LedgerMark]:
    """Map WeCom's per-customer results onto pending deliveries (pure).

    A pending delivery (``platform_id`` = msgid, address = external_userid) becomes
    ``sent`` on status 1, ``failed`` on 2 (``not_friend``) or 3 (``receive_cap``), and stays
    pending on 0 or when WeCom has no row for it yet. If several senders have a row for the
    customer, a sent row wins.
    """
    best: dict[tuple[str, str], int] = {}
    for r in results:
        k = (r.external_userid, r.userid)
        best[k] = r.status
    by_customer: dict[str, list[int]] = {}
    for (ext, _), status in best.items():
        by_customer.setdefault(ext, []).append(status)
    return marks_for(pending, by_customer, _STATUS_REASON)


def pull_mass_results(
    client: WeCom, ledger: Ledger, campaign_id: str, *, now: dt.datetime
) -> PullReport:
    """Read the results of every pending ``wecom.mass`` delivery of a campaign and mark the
    ledger (``pending_confirmation → sent | failed``). Run it periodically after a campaign.

    Raises:
        PlatformError: when WeCom refuses a result query.
        TransportError: when WeCom cannot be reached.
        LedgerError: when the ledger refuses a transition.
    """
    return pull_results(client.mass_results, ledger, campaign_id, ledger_marks, now)


async def apull_mass_results(
    client: AsyncWeCom, ledger: Ledger, campaign_id: str, *, now: dt.datetime
) -> PullReport:
    """The async twin of :func:`pull_mass_results` (the ledger calls are sync).

    Raises:
        PlatformError: when WeCom refuses a result query.
        TransportError: when WeCom cannot be reached.
        LedgerError: when the ledger refuses a transition.
    """
    return await apull_results(client.mass_results, ledger, campaign_id, ledger_marks, now)

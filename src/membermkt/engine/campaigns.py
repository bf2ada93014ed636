"""Campaign use cases: simulate, write the plan to the ledger, run it, report on it.

The typical flow::

    from membermkt.core.campaigns import Campaign, Variant, check
    from membermkt.engine.campaigns import CampaignRunner, prepare, simulate, CampaignReport

    check(campaign, capabilities=channel.capabilities)        # what the platform would refuse
    preview = simulate(campaign, members_of(store, campaign, as_of), history, as_of)
    summary = prepare(store, campaign, members_of(store, campaign, as_of), history, as_of)
    result = CampaignRunner(store, channel).run(campaign)  # resumable, policy re-checked
    report = CampaignReport.build(campaign, store.deliveries(campaign.id), summary,
                                  conversions=purchases)

``prepare`` writes the plan to the ledger before anything is sent; every later step reads
the ledger, so a crashed run resumes where it stopped (see :mod:`membermkt.engine.runner`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from membermkt.core.campaigns import (
    Campaign,
    PlanSummary,
    PlanTally,
    plan,
)
from membermkt.core.delivery import Delivery, DeliveryStatus
from membermkt.core.evaluate import PredicateCompiler
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.ports import EventLog, Ledger, LedgerHistory, MemberStore, SegmentQueries
from membermkt.core.quotas import HistoryLike, PastSend
from membermkt.core.segments import Did, walk
from membermkt.engine.handoff import CampaignPolicy, ledger_history
from membermkt.engine.progress import Progress, ProgressCallback, tqdm_progress
from membermkt.engine.report import CampaignReport, GroupReport, PlatformCounts
from membermkt.engine.runner import CampaignRunner, DeliveryRetry, RunResult, SystemClock
from membermkt.engine.simulation import Simulation, simulate
from membermkt.errors import UsageError

__all__ = [
    "CampaignPolicy",
    "CampaignReport",
    "CampaignRunner",
    "DeliveryRetry",
    "GroupReport",
    "PlatformCounts",
    "Progress",
    "ProgressCallback",
    "RunResult",
    "Simulation",
    "SystemClock",
    "history_from_ledger",
    "members_of",
    "prepare",
    "simulate",
    "tqdm_progress",
]

_COUNTED = frozenset(
    {
        DeliveryStatus.PLANNED,
        DeliveryStatus.SENDING,
        DeliveryStatus.SENT,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.PENDING,
    }
)


def _needs_events(campaign: Campaign) -> bool:
    from membermkt.core.membership.leaves import Latest

    if campaign.platform_rules.window is not None:
        return True
    return any(isinstance(node, Did | Latest) for node in walk(campaign.audience))


def _reads_state(campaign: Campaign, as_of: dt.datetime) -> bool:
    """Whether the audience reads a field derived from events: the predicate then refolds
    a member whose stored state is newer than ``as_of`` from its events up to ``as_of``."""
    compiler = PredicateCompiler(as_of)
    compiler.build(campaign.audience)
    return compiler.reads_state


def members_of(
    store: Any, campaign: Campaign, as_of: dt.datetime, *, chunk: int = 1000
) -> Iterator[Member | tuple[Member, Sequence[Event]]]:
    """Stream the campaign's audience from a store: the database evaluates the segment,
    members are read ``chunk`` at a time (one query per chunk), and each member's events
    only when the audience or the platform's interaction window needs them (``did`` and
    ``latest`` leaves, or derived fields of a member whose stored state is newer than
    ``as_of``).

    Raises:
        UsageError: when ``store`` lacks ``select``/``get_members``/``events_for``, or for a
            chunk below 1.
    """
    if not (
        isinstance(store, SegmentQueries)
        and isinstance(store, MemberStore)
        and isinstance(store, EventLog)
        and hasattr(store, "get_members")
    ):
        raise UsageError(f"{store!r} must offer select, get_members and events_for")
    if chunk < 1:
        raise UsageError(f"chunk must be >= 1, got {chunk}")
    with_events = _needs_events(campaign)
    reads_state = _reads_state(campaign, as_of)
    ids: list[str] = []

    def flush() -> Iterator[Member | tuple[Member, Sequence[Event]]]:
        found = store.get_members(ids)
        for member_id in ids:
            member = found.get(member_id)
            if member is None:
                continue
            last = member.state.last_event_at
            if with_events or (reads_state and last is not None and last > as_of):
                # a member whose stored derived fields are newer than as_of is taken as of
                # as_of by refolding its events: without them it would look event-less
                yield member, store.events_for(member_id, until=as_of)
            else:
                yield member

    for member_id in store.select(campaign.audience, as_of):
        ids.append(member_id)
        if len(ids) >= chunk:
            yield from flush()
            ids = []
    if ids:
        yield from flush()


def history_from_ledger(
    ledger: Ledger, campaign_ids: Iterable[str], *, member_ids: Iterable[str] | None = None
) -> dict[str, list[PastSend]]:
    """Past sends of earlier campaigns, for frequency caps and platform quotas.

    Every delivery that was or may have been sent counts (``planned``, ``sending``, ``sent``,
    ``unknown``, ``pending_confirmation``); failed ones do not. The time of a send is the
    ledger's last update of the delivery.

    Args:
        ledger: the ledger.
        campaign_ids: the campaigns to read.
        member_ids: only these members (default: all).
    """
    wanted = None if member_ids is None else frozenset(member_ids)
    out: dict[str, list[PastSend]] = defaultdict(list)
    for cid in campaign_ids:
        for rec in ledger.deliveries(cid):
            d = rec.delivery
            if rec.status not in _COUNTED or rec.updated_at is None:
                continue
            if wanted is not None and d.member_id not in wanted:
                continue
            out[d.member_id].append(
                PastSend(
                    member_id=d.member_id, channel=d.channel, at=rec.updated_at, campaign_id=cid
                )
            )
    return dict(out)


def _chunked(
    members: Iterable[Member | tuple[Member, Sequence[Event]]], size: int
) -> Iterator[list[Member | tuple[Member, Sequence[Event]]]]:
    buf: list[Member | tuple[Member, Sequence[Event]]] = []
    for m in members:
        buf.append(m)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def prepare(
    ledger: Ledger,
    campaign: Campaign,
    members: Iterable[Member | tuple[Member, Sequence[Event]]],
    history: HistoryLike,
    as_of: dt.datetime,
    *,
    now: dt.datetime | None = None,
    chunk: int = 1000,
    keep_holdout_ids: bool = True,
) -> PlanSummary:
    """Plan the campaign and write its deliveries to the ledger (``planned``), in chunks.

    Re-running ``prepare`` is safe: keys are stable, existing deliveries are left as they are.
    Memory stays O(``chunk``) (plus the holdout ids when ``keep_holdout_ids``).

    ``history=None`` reads the history from the ledger (every other campaign's deliveries
    that were, may have been or will be sent — ``planned``, ``sending``, ``sent``,
    ``unknown``, ``pending_confirmation`` — one query per chunk), so frequency caps and the
    platform's receive caps (4 mass messages a month) hold with no argument; pass a mapping
    (``{}`` for none) to use your own.

    Returns:
        The :class:`~membermkt.core.campaigns.PlanSummary` (keep it for the report: skips
        and the holdout are not in the ledger).

    Raises:
        UsageError: for a bad chunk size or naive times.
        StoreError: when the ledger fails.
    """
    if chunk < 1:
        raise UsageError(f"chunk must be >= 1, got {chunk}")
    when = now or as_of
    tally = PlanTally(campaign.id, keep_holdout_ids=keep_holdout_ids, as_of=as_of)
    from_ledger = history is None and isinstance(ledger, LedgerHistory)
    for part in _chunked(members, chunk):
        past: HistoryLike = history
        if from_ledger:
            ids = [m.id if isinstance(m, Member) else m[0].id for m in part]
            past = ledger_history(
                ledger,  # type: ignore[arg-type]
                ids,
                as_of,
                exclude_campaign=campaign.id,
                include_planned=True,
            )
        buf: list[Delivery] = []
        for item in plan(campaign, part, past, as_of):
            tally.add(item)
            if isinstance(item, Delivery):
                buf.append(item)
        if buf:
            ledger.record_plan(buf, now=when)
    return tally.summary()

"""Campaign use cases: simulate, write the plan to the ledger, run it, report on it.

The typical flow::

    from membermkt.core.campaigns import Campaign, Variant, check
    from membermkt.engine.campaigns import CampaignRunner, prepare, simulate, CampaignReport

    check(campaign, capabilities=channel.capabilities)        # what the platform would refuse
    preview = simulate(campaign, members_of(store, campaign, as_of), history, as_of)
    summary = prepare(store, campaign, members_of(store, campaign, as_of), history, as_of)
    result = CampaignRunner(store, channel).run(campaign.id)  # resumable, exactly once
    report = CampaignReport.build(campaign, store.deliveries(campaign.id), summary,
                                  conversions=purchases)

``prepare`` writes the plan to the ledger before anything is sent; every later step reads
the ledger, so a crashed run resumes where it stopped (see :mod:`membermkt.engine.runner`).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.campaigns import (
    HOLDOUT,
    Campaign,
    PlanSummary,
    PlanTally,
    Skip,
    plan,
)
from membermkt.core.delivery import ChannelCapabilities, Delivery, DeliveryRecord, DeliveryStatus
from membermkt.core.evaluate import PredicateCompiler
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.ports import EventLog, Ledger, LedgerHistory, MemberStore, SegmentQueries
from membermkt.core.quotas import HistoryLike, PastSend, balanced_batches
from membermkt.core.segments import Did, walk
from membermkt.engine.handoff import CampaignPolicy, ledger_history
from membermkt.engine.progress import Progress, ProgressCallback, tqdm_progress
from membermkt.engine.runner import CampaignRunner, DeliveryRetry, RunResult, SystemClock
from membermkt.errors import UsageError

__all__ = [
    "CampaignPolicy",
    "CampaignReport",
    "CampaignRunner",
    "DeliveryRetry",
    "GroupReport",
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


# --------------------------------------------------------------------------- simulation


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<table><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


@attrs.frozen(slots=True, kw_only=True)
class Simulation:
    """Who would get what, who is skipped and why, and what it costs — with no side effects.

    Attributes:
        campaign_id: the campaign.
        summary: counts per variant and skip reason.
        deliveries: the deliveries that would be made (up to ``keep``).
        skips: the skips (up to ``keep``).
        quota_cost: variant → {``"api_calls"``: platform calls, cap label: quota units}.
        batches: variant → the batch sizes the runner will hand to the channel (balanced:
            never a lone remainder), one platform call each on a batch channel.
        truncated: whether ``deliveries``/``skips`` were cut at ``keep``.
    """

    campaign_id: str
    summary: PlanSummary
    deliveries: tuple[Delivery, ...]
    skips: tuple[Skip, ...]
    quota_cost: Mapping[str, Mapping[str, int]]
    batches: Mapping[str, tuple[int, ...]] = attrs.field(factory=dict)
    truncated: bool = False

    def rows(self) -> list[dict[str, Any]]:
        """One dict per audience member: member_id, variant, action, reason, detail, address."""
        out: list[dict[str, Any]] = [
            {
                "member_id": d.member_id,
                "variant": d.variant,
                "action": "deliver",
                "reason": None,
                "detail": None,
                "address": d.address,
            }
            for d in self.deliveries
        ]
        out.extend(
            {
                "member_id": s.member_id,
                "variant": s.variant,
                "action": "skip",
                "reason": s.reason.value,
                "detail": s.detail,
                "address": None,
            }
            for s in self.skips
        )
        return out

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (``pip install membermkt[pandas]``).

        Raises:
            UsageError: when pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UsageError("to_pandas needs pandas: pip install 'membermkt[pandas]'") from exc
        return pd.DataFrame(
            self.rows(), columns=["member_id", "variant", "action", "reason", "detail", "address"]
        )

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Simulation {self.campaign_id!r} audience={s.audience} "
            f"deliveries={dict(s.deliveries)} skipped={s.skipped_by_reason()}>"
        )

    def _repr_html_(self) -> str:
        s = self.summary
        variants = sorted(set(s.deliveries) | set(self.quota_cost))
        rows = [
            (
                v,
                s.deliveries.get(v, 0),
                ", ".join(f"{k}: {n}" for k, n in sorted(self.quota_cost.get(v, {}).items())),
            )
            for v in variants
        ]
        skipped = sorted(s.skipped_by_reason().items())
        return _html_table(
            ["variant", "deliveries", "quota cost"], rows, f"Simulation of {self.campaign_id}"
        ) + _html_table(["reason", "skipped"], skipped, "Skipped")


def simulate(
    campaign: Campaign,
    members: Iterable[Member | tuple[Member, Sequence[Event]]],
    history: HistoryLike,
    as_of: dt.datetime,
    *,
    capabilities: ChannelCapabilities | None = None,
    keep: int | None = None,
) -> Simulation:
    """Run the plan over real data without sending or writing anything.

    Args:
        campaign / members / history / as_of: as for :func:`~membermkt.core.campaigns.plan`.
        capabilities: the channel's batch limits, for the API-call cost and the batch
            sizes the runner hands off (default: the platform rules' batch size, else one
            call per delivery).
        keep: keep at most this many deliveries and skips each (``None``: all).
    """
    tally = PlanTally(campaign.id, keep_holdout_ids=False, as_of=as_of)
    deliveries: list[Delivery] = []
    skips: list[Skip] = []
    truncated = False
    for item in plan(campaign, members, history, as_of):
        tally.add(item)
        target: list[Any] = deliveries if isinstance(item, Delivery) else skips
        if keep is None or len(target) < keep:
            target.append(item)
        else:
            truncated = True
    summary = tally.summary()
    rules = campaign.platform_rules
    max_batch = capabilities.max_batch_size if capabilities is not None else None
    if rules.max_batch_size is not None:
        max_batch = min(max_batch or rules.max_batch_size, rules.max_batch_size)
    cost: dict[str, dict[str, int]] = {}
    batches: dict[str, tuple[int, ...]] = {}
    per_delivery = rules.max_batch_size is None and capabilities is not None
    if per_delivery and capabilities is not None and not capabilities.idempotent:
        max_batch = 1  # the runner hands a non-idempotent per-delivery channel one at a time
    for variant, n in summary.deliveries.items():
        sizes = tuple(balanced_batches(n, max_batch or rules.max_batch_size or 1))
        batches[variant] = sizes
        # a batch API makes one call per batch; a per-delivery API one call per delivery
        per = {"api_calls": n if per_delivery else len(sizes)}
        for cap in rules.caps:
            per[cap.label] = n
        if rules.window is not None:
            per[rules.window.name] = n
        cost[variant] = per
    return Simulation(
        campaign_id=campaign.id,
        summary=summary,
        deliveries=tuple(deliveries),
        skips=tuple(skips),
        quota_cost=cost,
        batches=batches,
        truncated=truncated,
    )


# --------------------------------------------------------------------------- reports


@attrs.frozen(slots=True, kw_only=True)
class GroupReport:
    """One variant (or the holdout) of a campaign report.

    Attributes:
        group: variant name or ``"holdout"``.
        members: members in the group (planned deliveries + skips after assignment; for the
            holdout, the held-out members).
        planned / sent / pending / unknown / in_flight: delivery counts (``in_flight``: still
            planned or sending).
        failed: failure reason → count.
        skipped: skip reason → count.
        converted: members with a conversion in the attribution window.
        exposed: members conversions are measured over (sent + pending, or the holdout).
        rate: ``converted / exposed``.
        lift: ``rate - holdout rate`` (absolute), ``None`` without a holdout.
        lift_ci: 95 % confidence interval of ``lift`` (normal approximation).
    """

    group: str
    members: int
    planned: int = 0
    sent: int = 0
    pending: int = 0
    unknown: int = 0
    in_flight: int = 0
    failed: Mapping[str, int] = attrs.field(factory=dict)
    skipped: Mapping[str, int] = attrs.field(factory=dict)
    exposed: int = 0
    converted: int = 0
    rate: float | None = None
    lift: float | None = None
    lift_ci: tuple[float, float] | None = None

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


@attrs.frozen(slots=True, kw_only=True)
class CampaignReport:
    """What happened, per variant and holdout, with conversions and lift.

    Build it with :meth:`build`. ``groups`` holds a :class:`GroupReport` per variant and one
    for the holdout (if any).
    """

    campaign_id: str
    groups: tuple[GroupReport, ...]
    conversion: str = "purchase"
    window: dt.timedelta = dt.timedelta(days=7)
    confidence: float = 0.95

    @classmethod
    def build(
        cls,
        campaign: Campaign | str,
        records: Iterable[DeliveryRecord],
        summary: PlanSummary | None = None,
        *,
        conversions: Iterable[Event] = (),
        conversion: str = "purchase",
        window: dt.timedelta = dt.timedelta(days=7),
    ) -> CampaignReport:
        """Assemble the report from the ledger's records, the plan summary and events.

        A member *converts* when an event of type ``conversion`` happens in
        ``(sent_at, sent_at + window]`` — ``sent_at`` being the ledger time of the send; for
        holdout members the window starts at the plan's ``as_of``. Lift compares each
        variant's conversion rate among members reached (sent or pending) with the holdout's.

        Args:
            campaign: the campaign (or its id).
            records: ``ledger.deliveries(campaign_id)``.
            summary: the :func:`prepare` summary (skips, holdout ids, plan time).
            conversions: events to attribute (other types are ignored).
            conversion: the event type counted as a conversion.
            window: the attribution window after the send.

        Raises:
            UsageError: for a non-positive window.
        """
        if window <= dt.timedelta(0):
            raise UsageError("the attribution window must be positive")
        campaign_id = campaign if isinstance(campaign, str) else campaign.id
        start_of: dict[str, tuple[str, dt.datetime]] = {}
        status: dict[str, Counter[str]] = defaultdict(Counter)
        failed: dict[str, Counter[str]] = defaultdict(Counter)
        for rec in records:
            d = rec.delivery
            v = d.variant
            status[v][rec.status.value] += 1
            if rec.status is DeliveryStatus.FAILED:
                failed[v][rec.reason or "unknown reason"] += 1
            if rec.status in (DeliveryStatus.SENT, DeliveryStatus.PENDING) and rec.updated_at:
                start_of[d.member_id] = (v, rec.updated_at)
        holdout_start = summary.as_of if summary is not None else None
        if summary is not None and holdout_start is not None:
            for mid in summary.holdout_ids:
                start_of[mid] = (HOLDOUT, holdout_start)
        converted: dict[str, set[str]] = defaultdict(set)
        for ev in conversions:
            if ev.type != conversion:
                continue
            hit = start_of.get(ev.member_id)
            if hit is None:
                continue
            group, at = hit
            if at < ev.at <= at + window:
                converted[group].add(ev.member_id)
        skipped = dict(summary.skipped) if summary is not None else {}
        names = sorted((set(status) | set(skipped)) - {HOLDOUT, "-"})
        if summary is not None:
            names = sorted(set(names) | set(summary.deliveries))
        groups: list[GroupReport] = []
        hold_n = len(summary.holdout_ids) if summary is not None else 0
        hold_k = len(converted.get(HOLDOUT, ()))
        hold_rate = _rate(hold_k, hold_n)
        for v in names:
            st = status.get(v, Counter())
            exposed = st["sent"] + st["pending_confirmation"]
            k = len(converted.get(v, ()))
            rate = _rate(k, exposed)
            lift = lift_ci = None
            if rate is not None and hold_rate is not None:
                lift = rate - hold_rate
                se = math.sqrt(rate * (1 - rate) / exposed + hold_rate * (1 - hold_rate) / hold_n)
                lift_ci = (lift - 1.959964 * se, lift + 1.959964 * se)
            planned = sum(st.values())
            sk = dict(skipped.get(v, {}))
            groups.append(
                GroupReport(
                    group=v,
                    members=planned + sum(sk.values()),
                    planned=planned,
                    sent=st["sent"],
                    pending=st["pending_confirmation"],
                    unknown=st["unknown"],
                    in_flight=st["planned"] + st["sending"],
                    failed=dict(failed.get(v, {})),
                    skipped=sk,
                    exposed=exposed,
                    converted=k,
                    rate=rate,
                    lift=lift,
                    lift_ci=lift_ci,
                )
            )
        if summary is not None and (hold_n or HOLDOUT in skipped):
            groups.append(
                GroupReport(
                    group=HOLDOUT,
                    members=hold_n or sum(skipped.get(HOLDOUT, {}).values()),
                    skipped=dict(skipped.get(HOLDOUT, {})),
                    exposed=hold_n,
                    converted=hold_k,
                    rate=hold_rate,
                )
            )
        if summary is not None and "-" in skipped:
            groups.append(
                GroupReport(
                    group="-",
                    members=sum(skipped["-"].values()),
                    skipped=dict(skipped["-"]),
                )
            )
        return cls(
            campaign_id=campaign_id, groups=tuple(groups), conversion=conversion, window=window
        )

    def group(self, name: str) -> GroupReport:
        """The report of one variant (or ``"holdout"``).

        Raises:
            UsageError: for an unknown group.
        """
        for g in self.groups:
            if g.group == name:
                return g
        raise UsageError(f"no group {name!r} in the report of {self.campaign_id!r}")

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per group (reasons as ``failed:<reason>``/``skipped:<reason>``)."""
        out = []
        for g in self.groups:
            row: dict[str, Any] = {
                "group": g.group,
                "members": g.members,
                "planned": g.planned,
                "sent": g.sent,
                "pending": g.pending,
                "unknown": g.unknown,
                "in_flight": g.in_flight,
                "failed": g.failed_total,
                "skipped": sum(g.skipped.values()),
                "exposed": g.exposed,
                "converted": g.converted,
                "rate": g.rate,
                "lift": g.lift,
                "lift_low": g.lift_ci[0] if g.lift_ci else None,
                "lift_high": g.lift_ci[1] if g.lift_ci else None,
            }
            for reason, n in sorted(g.failed.items()):
                row[f"failed:{reason}"] = n
            for reason, n in sorted(g.skipped.items()):
                row[f"skipped:{reason}"] = n
            out.append(row)
        return out

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` indexed by group.

        Raises:
            UsageError: when pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UsageError("to_pandas needs pandas: pip install 'membermkt[pandas]'") from exc
        return pd.DataFrame(self.rows()).set_index("group")

    def __repr__(self) -> str:
        parts = ", ".join(f"{g.group}: sent={g.sent} failed={g.failed_total}" for g in self.groups)
        return f"<CampaignReport {self.campaign_id!r} {parts}>"

    def _repr_html_(self) -> str:
        headers = [
            "group",
            "members",
            "sent",
            "pending",
            "failed",
            "unknown",
            "skipped",
            "converted",
            "rate",
            "lift (95% CI)",
        ]

        def pct(x: float | None) -> str:
            return "–" if x is None else f"{x:.2%}"

        rows = [
            (
                g.group,
                g.members,
                g.sent,
                g.pending,
                g.failed_total,
                g.unknown,
                sum(g.skipped.values()),
                g.converted,
                pct(g.rate),
                "–"
                if g.lift is None or g.lift_ci is None
                else f"{g.lift:+.2%} ({g.lift_ci[0]:+.2%} … {g.lift_ci[1]:+.2%})",
            )
            for g in self.groups
        ]
        return _html_table(headers, rows, f"Campaign {self.campaign_id}")

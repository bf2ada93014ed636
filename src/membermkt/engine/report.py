"""Campaign reports: what happened per variant and holdout, conversions and lift, and — for
mass campaigns — the platform's job results next to the ledger. Import from
:mod:`membermkt.engine.campaigns`."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from membermkt.core.campaigns import HOLDOUT, Campaign, PlanSummary
from membermkt.core.delivery import DeliveryRecord, DeliveryStatus
from membermkt.core.events import Event
from membermkt.engine._html import html_table
from membermkt.engine._pandas import pandas
from membermkt.errors import UsageError

__all__ = ["CampaignReport", "GroupReport", "PlatformCounts", "platform_counts"]


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
class PlatformCounts:
    """A mass campaign's ledger next to the platform's job results (``MASSSENDJOBFINISH``).

    The ledger says ``sent`` when the platform accepted a job; the job's result says how
    many of those followers it reached. The counts are the platform's own and approximate
    (the event is sent when a job *nearly* completes, ref §1.4).

    Attributes:
        jobs: mass jobs (``msg_id``) the ledger holds ``sent`` deliveries for.
        missing: jobs with no recorded result yet (callback missed or not yet sent: wait,
            or poll ``message/mass/get``).
        ledger_sent: the ledger's ``sent`` deliveries of the jobs that have a result.
        total / filtered / sent / errors: the results' ``TotalCount``, ``FilterCount``
            (audience after filtering), ``SentCount``, ``ErrorCount``, summed.
    """

    jobs: int
    missing: tuple[str, ...]
    ledger_sent: int
    total: int
    filtered: int
    sent: int
    errors: int

    @property
    def mismatch(self) -> bool:
        """Whether the platform's counts disagree with the ledger: a job without a result,
        or fewer (or more) followers reached than the ledger holds ``sent``."""
        return bool(self.missing) or self.sent != self.ledger_sent or self.total != self.ledger_sent

    def __str__(self) -> str:
        verdict = "MISMATCH" if self.mismatch else "reconciled"
        missing = f", {len(self.missing)} without a result" if self.missing else ""
        return (
            f"platform: {self.jobs} job(s){missing}, total {self.total:,}, filtered "
            f"{self.filtered:,}, sent {self.sent:,}, errors {self.errors:,}; ledger sent "
            f"{self.ledger_sent:,} — {verdict}"
        )


def platform_counts(
    records: Iterable[DeliveryRecord], results: Any, *, appid: str
) -> PlatformCounts:
    """Reconcile a campaign's ``sent`` deliveries with the recorded ``MASSSENDJOBFINISH``
    results of their jobs (``results``: a store with ``job_results(keys)``, e.g. the one the
    :class:`~membermkt.channels.wechat.CallbackHandler` records into).

    Raises:
        StoreError: when the store fails.
    """
    from membermkt.core.jobresults import JobResult

    per_job: Counter[str] = Counter(
        r.platform_id
        for r in records
        if r.status is DeliveryStatus.SENT and r.platform_id and r.platform_id.isdigit()
    )
    keys = {f"{appid}:MASSSENDJOBFINISH:{mid}": mid for mid in per_job}
    found = results.job_results(list(keys)) if keys else {}
    jobs = {keys[k]: JobResult(**v) for k, v in found.items()}
    return PlatformCounts(
        jobs=len(per_job),
        missing=tuple(sorted(m for m in per_job if m not in jobs)),
        ledger_sent=sum(per_job[m] for m in jobs),
        total=sum(j.total for j in jobs.values()),
        filtered=sum(j.filtered for j in jobs.values()),
        sent=sum(j.sent for j in jobs.values()),
        errors=sum(j.errors for j in jobs.values()),
    )


@attrs.frozen(slots=True, kw_only=True)
class CampaignReport:
    """What happened, per variant and holdout, with conversions and lift.

    Build it with :meth:`build`. ``groups`` holds a :class:`GroupReport` per variant and one
    for the holdout (if any); ``platform`` the platform's job counts next to the ledger's
    (mass campaigns built with ``job_results=``).
    """

    campaign_id: str
    groups: tuple[GroupReport, ...]
    conversion: str = "purchase"
    window: dt.timedelta = dt.timedelta(days=7)
    confidence: float = 0.95
    platform: PlatformCounts | None = None

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
        job_results: Any = None,
        appid: str | None = None,
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
            job_results: a store holding the platform's job results (``job_results(keys)``,
                recorded by the callback handler): the report then carries
                :class:`PlatformCounts` (mass jobs only).
            appid: the official account of the jobs (default: the campaign's
                ``address_namespace``).

        Raises:
            UsageError: for a non-positive window, or ``job_results`` without an appid.
        """
        if window <= dt.timedelta(0):
            raise UsageError("the attribution window must be positive")
        campaign_id = campaign if isinstance(campaign, str) else campaign.id
        records = list(records)
        platform = None
        if job_results is not None:
            account = appid or (None if isinstance(campaign, str) else campaign.address_namespace)
            if not account:
                raise UsageError(
                    f"campaign {campaign_id!r}: job_results needs the appid (appid=, or the "
                    "campaign's address_namespace)"
                )
            platform = platform_counts(records, job_results, appid=account)
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
            campaign_id=campaign_id,
            groups=tuple(groups),
            conversion=conversion,
            window=window,
            platform=platform,
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
        pd = pandas()
        return pd.DataFrame(self.rows()).set_index("group")

    def __repr__(self) -> str:
        parts = ", ".join(f"{g.group}: sent={g.sent} failed={g.failed_total}" for g in self.groups)
        platform = f" ({self.platform})" if self.platform is not None else ""
        return f"<CampaignReport {self.campaign_id!r} {parts}{platform}>"

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
        table = html_table(headers, rows, f"Campaign {self.campaign_id}")
        if self.platform is None:
            return table
        p = self.platform
        return table + html_table(
            ["", "total", "filtered", "sent", "errors"],
            [
                ("platform (job results)", p.total, p.filtered, p.sent, p.errors),
                ("ledger (accepted)", p.ledger_sent, "", p.ledger_sent, ""),
            ],
            "MISMATCH with the platform" if p.mismatch else "Reconciled with the platform",
        )

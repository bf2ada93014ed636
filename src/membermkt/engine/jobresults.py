"""Platform job results (``MASSSENDJOBFINISH``, ``TEMPLATESENDJOBFINISH``): recorded once in
the store — a callback delivered twice, or to two processes, counts once — and reconciled
with the ledger's deliveries of a campaign.

A mass delivery is ``sent`` when the platform accepted the job; the job's result says how
many of those followers the platform actually reached (``SentCount``), filtered out
(``FilterCount`` is the audience after filtering, ref §1.4) or failed on (``ErrorCount``).
Callbacks can be missed: :func:`reconcile_jobs` lists the jobs without a result, to poll with
``message/mass/get``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from membermkt.core.delivery import DeliveryStatus
from membermkt.core.jobresults import JOB_EVENTS, JobResult

__all__ = ["JOB_EVENTS", "JobReconciliation", "JobResult", "reconcile_jobs", "record_job_results"]


class _JobStore(Protocol):
    def record_job_result(
        self, key: str, result: Mapping[str, Any], *, now: dt.datetime
    ) -> bool: ...

    def job_results(self, keys: list[str]) -> Mapping[str, Mapping[str, Any]]: ...


def record_job_results(store: _JobStore, results: Iterable[JobResult], *, now: dt.datetime) -> int:
    """Record job results once each (de-duplicated in the store); returns how many were new.

    Raises:
        UsageError: for a naive ``now``.
        StoreError: when the store fails.
    """
    return sum(1 for r in results if store.record_job_result(r.key, attrs.asdict(r), now=now))


@attrs.frozen(slots=True, kw_only=True)
class JobReconciliation:
    """A campaign's ledger against the platform's job results.

    Attributes:
        ledger_sent: deliveries the ledger holds ``sent`` per job ``msg_id``.
        platform: the recorded :class:`JobResult` per ``msg_id``.
        missing: jobs with no recorded result (poll ``message/mass/get``).
        reached: followers the platform reports reached (sum of ``SentCount``).
        not_reached: accepted by the ledger but filtered or failed on the platform.
    """

    ledger_sent: Mapping[str, int]
    platform: Mapping[str, JobResult]
    missing: tuple[str, ...]
    reached: int
    not_reached: int


def reconcile_jobs(
    store: Any, campaign_id: str, *, appid: str, event: str = "MASSSENDJOBFINISH"
) -> JobReconciliation:
    """Compare the campaign's ``sent`` deliveries per job with the recorded job results.

    Raises:
        StoreError: when the store fails.
    """
    per_job: Counter[str] = Counter(
        rec.platform_id
        for rec in store.deliveries(campaign_id, status=DeliveryStatus.SENT)
        if rec.platform_id
    )
    keys = {f"{appid}:{event}:{mid}": mid for mid in per_job}
    found = store.job_results(list(keys))
    platform = {keys[k]: JobResult(**v) for k, v in found.items()}
    reached = sum(r.sent for r in platform.values())
    accepted = sum(per_job[m] for m in platform)
    return JobReconciliation(
        ledger_sent=dict(per_job),
        platform=platform,
        missing=tuple(sorted(m for m in per_job if m not in platform)),
        reached=reached,
        not_reached=accepted - reached,
    )

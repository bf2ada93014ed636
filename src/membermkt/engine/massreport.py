"""Mass-send reports: the ledger, the platform's job results (``MASSSENDJOBFINISH``) and
the data cube's article statistics joined per mass job.

The data cube keys article rows by ``msgid`` = ``<msg_data_id>_<index>`` (the *data* id of
the mass send, one row per article and day), while job results are keyed by ``msg_id``;
pass the ``msg_id → msg_data_id`` pairs ``mass/send`` answered (``MassSend.msg_data_id``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from membermkt.engine.jobresults import JobReconciliation

__all__ = ["MassJobReport", "mass_send_report"]


@attrs.frozen(slots=True, kw_only=True)
class MassJobReport:
    """One mass job: what the ledger sent, what the platform reached, how it was read.

    ``read_rate`` and ``share_rate`` are per follower reached (``None`` when the platform
    reported no reach or no result yet).
    """

    msg_id: str
    msg_data_id: str | None
    ledger_sent: int
    reached: int | None
    filtered: int | None
    readers: int
    reads: int
    sharers: int
    shares: int

    @property
    def read_rate(self) -> float | None:
        return self.readers / self.reached if self.reached else None

    @property
    def share_rate(self) -> float | None:
        return self.sharers / self.reached if self.reached else None


def _int(row: Mapping[str, Any], key: str) -> int:
    v = row.get(key, 0)
    return int(v) if isinstance(v, int | float | str) and str(v).lstrip("-").isdigit() else 0


def mass_send_report(
    recon: JobReconciliation,
    article_rows: Iterable[Mapping[str, Any]],
    msg_data_ids: Mapping[str, str],
) -> list[MassJobReport]:
    """Join a campaign's :class:`~membermkt.engine.jobresults.JobReconciliation` with
    ``getarticlesummary`` rows (``msgid``, ``int_page_read_user``, ``int_page_read_count``,
    ``share_user``, ``share_count``), summed over articles and days per mass job."""
    by_data: dict[str, list[Mapping[str, Any]]] = {}
    for row in article_rows:
        data_id = str(row.get("msgid", "")).split("_", 1)[0]
        if data_id:
            by_data.setdefault(data_id, []).append(row)
    out: list[MassJobReport] = []
    for msg_id, sent in sorted(recon.ledger_sent.items()):
        result = recon.platform.get(msg_id)
        job_data_id = msg_data_ids.get(msg_id)
        rows = by_data.get(job_data_id, []) if job_data_id else []
        out.append(
            MassJobReport(
                msg_id=msg_id,
                msg_data_id=job_data_id,
                ledger_sent=sent,
                reached=result.sent if result else None,
                filtered=result.filtered if result else None,
                readers=sum(_int(r, "int_page_read_user") for r in rows),
                reads=sum(_int(r, "int_page_read_count") for r in rows),
                sharers=sum(_int(r, "share_user") for r in rows),
                shares=sum(_int(r, "share_count") for r in rows),
            )
        )
    return out

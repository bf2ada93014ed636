"""Platform job results (``MASSSENDJOBFINISH``, ``TEMPLATESENDJOBFINISH``) as values (pure).

A result is keyed ``<appid>:<event>:<MsgID>``: a callback delivered twice, or to two
processes, has one key, so a store records it once (``record_job_result``). The engine's
:mod:`membermkt.engine.jobresults` records and reconciles them; the callback handler parses
them with :meth:`JobResult.from_message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.errors import UsageError

__all__ = ["JOB_EVENTS", "JobResult"]


JOB_EVENTS = frozenset({"MASSSENDJOBFINISH", "TEMPLATESENDJOBFINISH"})
"""The callback events that report a send job's result."""


def _count(raw: Mapping[str, str], name: str) -> int:
    value = raw.get(name, "0") or "0"
    if not value.isdigit():
        raise UsageError(f"job result field {name} is not a count: {value[:20]!r}")
    return int(value)


@attrs.frozen(slots=True, kw_only=True)
class JobResult:
    """One job result callback.

    Attributes:
        appid: the account.
        event: ``MASSSENDJOBFINISH`` or ``TEMPLATESENDJOBFINISH``.
        msg_id: the job (``MsgID``; the ledger keeps it as the deliveries' ``platform_id``).
        status: the platform's status text (``send success``, ``err(num)``, ...).
        total / filtered / sent / errors: ``TotalCount``, ``FilterCount``, ``SentCount``,
            ``ErrorCount`` (mass jobs; 0 for template results).
    """

    appid: str
    event: str
    msg_id: str
    status: str
    total: int = 0
    filtered: int = 0
    sent: int = 0
    errors: int = 0

    @property
    def key(self) -> str:
        return f"{self.appid}:{self.event}:{self.msg_id}"

    @classmethod
    def from_message(cls, appid: str, message: Any) -> JobResult | None:
        """The job result in a parsed callback message (``None`` for other messages).

        Raises:
            UsageError: for a job result without ``MsgID`` or with a malformed count.
        """
        raw: Mapping[str, str] = getattr(message, "raw", {})
        event = str(raw.get("Event") or getattr(message, "event", "") or "").upper()
        if event not in JOB_EVENTS:
            return None
        msg_id = raw.get("MsgID") or raw.get("MsgId")
        if not msg_id:
            raise UsageError(f"{event} callback without MsgID")
        return cls(
            appid=appid,
            event=str(event),
            msg_id=msg_id,
            status=raw.get("Status", ""),
            total=_count(raw, "TotalCount"),
            filtered=_count(raw, "FilterCount"),
            sent=_count(raw, "SentCount"),
            errors=_count(raw, "ErrorCount"),
        )

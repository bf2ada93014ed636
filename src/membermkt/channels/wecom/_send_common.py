"""What the two WeCom mass-send channels share: ``wecom.mass`` (customers,
:mod:`~membermkt.channels.wecom.channel`) and ``wecom.group`` (customer groups,
:mod:`~membermkt.channels.wecom.groupsend`).

Both create ``add_msg_template`` tasks — deliveries with the same content and sender go out
as one call, a repeated address in a batch fails as ``duplicate_address``, an accepted
address is pending (``platform_id`` = the task's ``msgid``) and one in ``fail_list`` fails
at once, an ambiguous failure is ``unknown`` (no idempotency key) — and both read the
per-row results of pending tasks back into the ledger (``get_groupmsg_send_result``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.channel import classify_error as _classify
from membermkt.channels.wechat.flows import chunks
from membermkt.channels.wecom._errcodes import WECOM_ERRCODES
from membermkt.channels.wecom.api import mass
from membermkt.channels.wecom.api.mass import CustomerResult, MsgTemplate, SendStatus
from membermkt.core.delivery import (
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    SendOutcome,
    SendResult,
)
from membermkt.errors import PlatformError, QuotaExceeded, TransportError, UsageError

SEND_ERRORS = (PlatformError, TransportError, QuotaExceeded, UsageError)
"""The failures a send turns into results (anything else propagates)."""


def classify_error(key: str, exc: BaseException, *, idempotent: bool) -> SendResult:
    """The :class:`SendResult` for a delivery whose call raised ``exc``: the official
    account's classification (:func:`membermkt.channels.wechat.channel.classify_error`) with
    WeCom's errcode table.

    Raises:
        BaseException: ``exc`` itself when it is not a membermkt send failure.
    """
    return _classify(key, exc, idempotent=idempotent, table=WECOM_ERRCODES)


# ----------------------------------------------------------------------------- sending


@attrs.frozen(slots=True)
class Task:
    """The deliveries of one ``add_msg_template`` call, and the batch's repeats of them."""

    sender: str | None
    text: str | None
    attachments: tuple[Mapping[str, Any], ...]
    deliveries: tuple[Delivery, ...]
    duplicates: tuple[Delivery, ...]


def content(p: Mapping[str, Any]) -> tuple[str | None, tuple[Mapping[str, Any], ...]]:
    """A payload's text and attachments, checked against ``add_msg_template``'s limits.

    Raises:
        UsageError: for a non-str text or content over the limits.
    """
    text = p.get("text")
    if isinstance(text, Mapping):  # the API's own {"content": ...} shape
        text = text.get("content")
    attachments = tuple(p.get("attachments") or ())
    if text is not None and not isinstance(text, str):
        raise UsageError("wecom.mass payload 'text' must be a str")
    mass.check_content(text, attachments)
    return text, attachments


def tasks(
    batch: Sequence[Delivery],
    default_sender: str | None,
    *,
    per_call: int,
    no_sender: str | None = None,
) -> tuple[list[Task], list[SendResult]]:
    """The calls for a batch (same sender and content, at most ``per_call`` addresses each)
    and the results of the deliveries refused before any call.

    Args:
        batch: the deliveries.
        default_sender: the sender of a delivery whose payload names none.
        per_call: addresses per ``add_msg_template``.
        no_sender: when a sender is required, the refusal of a delivery without one.
    """
    by: dict[Any, list[Delivery]] = {}
    invalid: list[SendResult] = []
    spec: dict[Any, tuple[str | None, str | None, tuple[Mapping[str, Any], ...]]] = {}
    for d in batch:
        sender = d.payload.get("sender") or default_sender
        try:
            if no_sender is not None and (not isinstance(sender, str) or not sender):
                raise UsageError(no_sender)
            text, attachments = content(d.payload)
        except UsageError as exc:
            invalid.append(classify_error(d.key, exc, idempotent=False))
            continue
        k = (sender, text, repr(attachments))
        spec[k] = (sender, text, attachments)
        by.setdefault(k, []).append(d)
    out: list[Task] = []
    for k, ds in by.items():
        seen: dict[str, Delivery] = {}
        dups: list[Delivery] = []
        for d in ds:
            if d.address in seen:
                dups.append(d)
            else:
                seen[d.address] = d
        sender, text, attachments = spec[k]
        for part in chunks(list(seen.values()), per_call):
            out.append(Task(sender, text, attachments, tuple(part), tuple(dups)))
            dups = []
    return out, invalid


def _dups(task: Task) -> list[SendResult]:
    return [
        SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="duplicate_address")
        for d in task.duplicates
    ]


def _accepted(task: Task, answer: MsgTemplate) -> list[SendResult]:
    failed = set(answer.fail_list)
    out = [
        SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="fail_list")
        if d.address in failed
        else SendResult(key=d.key, outcome=SendOutcome.PENDING, platform_id=answer.msgid)
        for d in task.deliveries
    ]
    return out + _dups(task)


def _failed(task: Task, exc: BaseException) -> list[SendResult]:
    return [classify_error(d.key, exc, idempotent=False) for d in task.deliveries] + _dups(task)


def _ordered(batch: Sequence[Delivery], results: list[SendResult]) -> list[SendResult]:
    by_key = {r.key: r for r in results}
    return [by_key[d.key] for d in batch]


def send_tasks(
    call: Callable[[ApiCall[MsgTemplate]], MsgTemplate],
    batch: Sequence[Delivery],
    planned: tuple[list[Task], list[SendResult]],
    make_call: Callable[[Task], ApiCall[MsgTemplate]],
) -> list[SendResult]:
    """Make each planned call; one result per delivery of ``batch``, in order."""
    todo, results = planned
    for t in todo:
        try:
            answer = call(make_call(t))
        except SEND_ERRORS as exc:
            results += _failed(t, exc)
            continue
        results += _accepted(t, answer)
    return _ordered(batch, results)


async def asend_tasks(
    call: Callable[[ApiCall[MsgTemplate]], Awaitable[MsgTemplate]],
    batch: Sequence[Delivery],
    planned: tuple[list[Task], list[SendResult]],
    make_call: Callable[[Task], ApiCall[MsgTemplate]],
) -> list[SendResult]:
    """The async twin of :func:`send_tasks`."""
    todo, results = planned
    for t in todo:
        try:
            answer = await call(make_call(t))
        except SEND_ERRORS as exc:
            results += _failed(t, exc)
            continue
        results += _accepted(t, answer)
    return _ordered(batch, results)


# ----------------------------------------------------------------------------- results


@attrs.frozen(slots=True)
class LedgerMark:
    """One ledger ``mark`` call to make: ``ledger.mark(key, status, now=…, reason=…)``."""

    key: str
    status: DeliveryStatus
    reason: str | None = None


def marks_for(
    pending: Iterable[DeliveryRecord],
    statuses_by_address: Mapping[str, list[int]],
    reasons: Mapping[SendStatus, str],
) -> list[LedgerMark]:
    """The marks of pending deliveries from their addresses' result statuses (pure): a
    sent row wins; failed when every row is final (``wecom:<reason>`` of the first);
    otherwise, or without a row, it stays pending."""
    out: list[LedgerMark] = []
    for rec in pending:
        statuses = statuses_by_address.get(rec.delivery.address)
        if not statuses:
            continue
        if SendStatus.SENT in statuses:
            out.append(LedgerMark(rec.key, DeliveryStatus.SENT))
            continue
        final = [s for s in statuses if s in reasons]
        if final and len(final) == len(statuses):
            reason = reasons[SendStatus(final[0])]
            out.append(LedgerMark(rec.key, DeliveryStatus.FAILED, f"wecom:{reason}"))
    return out


class Ledger(Protocol):
    """What the result pulls need from the ledger."""

    def deliveries(
        self, campaign_id: str, *, status: DeliveryStatus | None = None
    ) -> Iterable[DeliveryRecord]: ...

    def mark(
        self,
        key: str,
        status: DeliveryStatus,
        *,
        now: dt.datetime,
        reason: str | None = None,
        platform_id: str | None = None,
    ) -> None: ...


@attrs.frozen(slots=True, kw_only=True)
class PullReport:
    """What :func:`~membermkt.channels.wecom.pull_mass_results` (or
    :func:`~membermkt.channels.wecom.pull_group_results`) did: deliveries marked sent /
    failed, still pending."""

    sent: int
    failed: int
    pending: int
    msgids: tuple[str, ...]


_MarksOf = Callable[[Iterable[DeliveryRecord], Iterable[CustomerResult]], list[LedgerMark]]


def _pending(ledger: Ledger, campaign_id: str) -> dict[str, list[DeliveryRecord]]:
    by_msg: dict[str, list[DeliveryRecord]] = {}
    for rec in ledger.deliveries(campaign_id, status=DeliveryStatus.PENDING):
        if rec.platform_id:
            by_msg.setdefault(rec.platform_id, []).append(rec)
    return by_msg


def _apply(
    ledger: Ledger,
    marks: list[LedgerMark],
    by_msg: Mapping[str, list[DeliveryRecord]],
    now: dt.datetime,
) -> PullReport:
    sent = failed = 0
    for mk in marks:
        ledger.mark(mk.key, mk.status, now=now, reason=mk.reason)
        if mk.status is DeliveryStatus.SENT:
            sent += 1
        else:
            failed += 1
    total = sum(len(v) for v in by_msg.values())
    return PullReport(sent=sent, failed=failed, pending=total - sent - failed, msgids=tuple(by_msg))


def pull_results(
    results_of: Callable[[str], Iterable[CustomerResult]],
    ledger: Ledger,
    campaign_id: str,
    marks_of: _MarksOf,
    now: dt.datetime,
) -> PullReport:
    """Read the results of every pending task of a campaign and mark the ledger."""
    by_msg = _pending(ledger, campaign_id)
    marks: list[LedgerMark] = []
    for msgid, recs in by_msg.items():
        marks += marks_of(recs, results_of(msgid))
    return _apply(ledger, marks, by_msg, now)


async def apull_results(
    results_of: Callable[[str], Awaitable[Iterable[CustomerResult]]],
    ledger: Ledger,
    campaign_id: str,
    marks_of: _MarksOf,
    now: dt.datetime,
) -> PullReport:
    """The async twin of :func:`pull_results` (the ledger calls are sync)."""
    by_msg = _pending(ledger, campaign_id)
    marks: list[LedgerMark] = []
    for msgid, recs in by_msg.items():
        marks += marks_of(recs, await results_of(msgid))
    return _apply(ledger, marks, by_msg, now)

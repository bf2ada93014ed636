"""Staff service data: the staff–customer conversation as core ``message`` events.

Per-staff metrics (:func:`membermkt.core.analytics.staff.staff_metrics`: interactions per
day, average first-reply time) read conversation messages of exactly this shape::

    Event(member_id, "message", at, {"channel": "wecom", "staff": userid,
                                     "direction": "in" | "out"})

The platform reference (§3.8) documents **no callback that carries the conversation**
between staff and customers: customer-contact callbacks report relationship changes only.
Conversation content is available through WeCom's message archive (会话内容存档), which
needs its own licence and SDK; :func:`import_archive` ingests its decrypted records. Their
field names (``msgid``, ``action``, ``from``, ``tolist``, ``roomid``, ``msgtime`` in
milliseconds, ``msgtype``) are not in the reference and are **unconfirmed** here: pass
:class:`ArchiveFields` to map another export's names. Group-chat records (non-empty
``roomid``) and non-``send`` actions (recalls, switches) are skipped. Events are keyed
``wc:{corpid}:msg:{msgid}``, so importing the same export twice adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, Protocol

import attrs

from membermkt.core.events import Event
from membermkt.core.identity import Identity, member_id_for
from membermkt.core.members import Member
from membermkt.errors import UsageError

__all__ = [
    "ArchiveFields",
    "ImportReport",
    "StaffMessage",
    "archive_message",
    "import_archive",
    "iter_jsonl",
    "message_event",
]


class _Store(Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def upsert_members(self, members: Iterable[Member]) -> int: ...

    def append_events(self, events: Iterable[Event]) -> int: ...


@attrs.frozen(slots=True, kw_only=True)
class ArchiveFields:
    """Field names of an archive record (defaults: the message-archive SDK's decrypted JSON,
    unconfirmed by the reference)."""

    msgid: str = "msgid"
    action: str = "action"
    sender: str = "from"
    receivers: str = "tolist"
    room: str = "roomid"
    time_ms: str = "msgtime"
    msgtype: str = "msgtype"


@attrs.frozen(slots=True, kw_only=True)
class StaffMessage:
    """One staff–customer message.

    Attributes:
        msgid: the archive's message id.
        staff: the staff member's userid.
        external_userid: the customer.
        direction: ``"in"`` (customer → staff) or ``"out"`` (staff → customer).
        at: when it was sent (aware UTC).
        msgtype: the message type (``text``, ``image`` …).
    """

    msgid: str
    staff: str
    external_userid: str
    direction: str
    at: dt.datetime
    msgtype: str = ""


def archive_message(
    record: Mapping[str, Any],
    *,
    staff: Collection[str],
    fields: ArchiveFields = ArchiveFields(),
) -> StaffMessage | None:
    """The staff–customer message in one archive record, or ``None`` when it is not one
    (group chat, recall/switch action, staff-to-staff, customer-to-customer).

    Args:
        record: the decrypted record.
        staff: the corp's staff userids (who is staff decides the direction).
        fields: the record's field names.

    Raises:
        UsageError: when a kept record lacks its id, parties or time.
    """
    f = fields
    if record.get(f.room):
        return None
    if record.get(f.action, "send") != "send":
        return None
    sender = record.get(f.sender)
    receivers = record.get(f.receivers) or []
    if isinstance(receivers, str):
        receivers = [receivers]
    if not isinstance(sender, str) or not sender or len(receivers) != 1:
        return None
    receiver = str(receivers[0])
    if (sender in staff) == (receiver in staff):
        return None
    msgid, ms = record.get(f.msgid), record.get(f.time_ms)
    if not msgid or not isinstance(ms, int | float) or isinstance(ms, bool):
        raise UsageError(f"archive record lacks {f.msgid!r} or a numeric {f.time_ms!r}: {record!r}")
    at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    out = sender in staff
    return StaffMessage(
        msgid=str(msgid),
        staff=sender if out else receiver,
        external_userid=receiver if out else sender,
        direction="out" if out else "in",
        at=at,
        msgtype=str(record.get(f.msgtype) or ""),
    )


def message_event(message: StaffMessage, *, corpid: str, member_id: str) -> Event:
    """The core ``message`` event the staff analytics read."""
    props: dict[str, str] = {
        "channel": "wecom",
        "staff": message.staff,
        "direction": message.direction,
    }
    if message.msgtype:
        props["msgtype"] = message.msgtype
    return Event(
        member_id, "message", message.at, props, key=f"wc:{corpid}:msg:{message.msgid}"[:200]
    )


@attrs.frozen(slots=True, kw_only=True)
class ImportReport:
    """What :func:`import_archive` did."""

    records: int
    messages: int
    imported: int
    skipped: int

    @property
    def duplicates(self) -> int:
        """Messages already in the store."""
        return self.messages - self.imported


def import_archive(
    records: Iterable[Mapping[str, Any]],
    *,
    corpid: str,
    staff: Collection[str],
    store: _Store,
    fields: ArchiveFields = ArchiveFields(),
    batch_size: int = 1000,
) -> ImportReport:
    """Import message-archive records as ``message`` events of the customers' members
    (created through ``Identity.external_userid(corpid, …)`` when new).

    Raises:
        UsageError: for a malformed kept record or a batch size below 1.
        StoreError: when the store fails.
    """
    if batch_size < 1:
        raise UsageError("batch_size must be >= 1")
    staff_set = frozenset(staff)
    known: dict[str, str] = {}
    buf: list[Event] = []
    n = kept = imported = 0

    def flush() -> int:
        added = store.append_events(buf) if buf else 0
        buf.clear()
        return added

    for record in records:
        n += 1
        msg = archive_message(record, staff=staff_set, fields=fields)
        if msg is None:
            continue
        kept += 1
        mid = known.get(msg.external_userid)
        if mid is None:
            identity = Identity.external_userid(corpid, msg.external_userid)
            mid = store.resolve(identity)
            if mid is None:
                mid = member_id_for(identity)
                store.upsert_members([Member(mid, identities=(identity,))])
            known[msg.external_userid] = mid
        buf.append(message_event(msg, corpid=corpid, member_id=mid))
        if len(buf) >= batch_size:
            imported += flush()
    imported += flush()
    return ImportReport(records=n, messages=kept, imported=imported, skipped=n - kept)


def iter_jsonl(lines: Iterable[str | bytes]) -> Iterator[Mapping[str, Any]]:
    """Records of a JSON-lines export (blank lines skipped).

    Raises:
        UsageError: for a line that is not a JSON object, naming its number.
    """
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"line {i} is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise UsageError(f"line {i} is not a JSON object")
        yield obj

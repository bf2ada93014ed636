"""Staff service data: message-archive records → conversation events → per-staff metrics
(interactions per day, average first-reply time); contact events from callbacks count too."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from membermkt.channels.wecom import WeComCallbackHandler, WeComEndpoint, import_archive
from membermkt.channels.wecom.staff import ArchiveFields, archive_message, iter_jsonl
from membermkt.core.analytics.staff import staff_metrics
from membermkt.core.identity import Identity
from membermkt.errors import UsageError
from membermkt.stores.memory import InMemoryStore

CORP = "ww0000000000000001"
STAFF = {"clerk1", "clerk2"}
T0 = 1_780_000_000_000  # ms


def rec(msgid: str, frm: str, to: str, t_ms: int, **kw: object) -> dict[str, object]:
    return {
        "msgid": msgid,
        "action": "send",
        "from": frm,
        "tolist": [to],
        "roomid": "",
        "msgtime": t_ms,
        "msgtype": "text",
        **kw,
    }


EXPORT = [
    rec("1", "wmA", "clerk1", T0),  # customer asks
    rec("2", "wmA", "clerk1", T0 + 30_000),  # asks again while waiting
    rec("3", "clerk1", "wmA", T0 + 120_000),  # first reply after 120 s
    rec("4", "wmB", "clerk1", T0 + 3_600_000),
    rec("5", "clerk1", "wmB", T0 + 3_660_000),  # reply after 60 s
    rec("6", "wmC", "clerk2", T0 + 86_400_000),  # next day, unanswered
    rec("7", "clerk1", "clerk2", T0),  # staff to staff: skipped
    rec("8", "wmA", "clerk1", T0, roomid="wrGroup"),  # group chat: skipped
    rec("9", "clerk1", "wmA", T0, action="recall"),  # recall: skipped
]


def test_archive_import_feeds_staff_metrics():
    store = InMemoryStore()
    lines = [json.dumps(r) for r in EXPORT] + [""]
    report = import_archive(iter_jsonl(lines), corpid=CORP, staff=STAFF, store=store)
    assert (report.records, report.messages, report.imported, report.skipped) == (9, 6, 6, 3)
    again = import_archive(EXPORT, corpid=CORP, staff=STAFF, store=store)
    assert (again.imported, again.duplicates) == (0, 6)
    mid_a = store.resolve(Identity.external_userid(CORP, "wmA"))
    assert mid_a is not None
    evs = store.events_for(mid_a)
    assert [(e.properties["direction"], e.properties["staff"]) for e in evs] == [
        ("in", "clerk1"),
        ("in", "clerk1"),
        ("out", "clerk1"),
    ]
    events = [
        e
        for ext in ("wmA", "wmB", "wmC")
        for e in store.events_for(store.resolve(Identity.external_userid(CORP, ext)) or "")
    ]
    as_of = dt.datetime.fromtimestamp(T0 / 1000 + 3 * 86400, dt.UTC)
    rows = {r.staff: r for r in staff_metrics(events, as_of=as_of).rows}
    c1 = rows["clerk1"]
    assert (c1.messages_in, c1.messages_out, c1.replies) == (3, 2, 2)
    assert c1.avg_first_reply_seconds == pytest.approx(90.0)
    assert c1.interactions_per_day == 5.0
    assert rows["clerk2"].avg_first_reply_seconds is None


def test_custom_field_names_and_bad_records():
    fields = ArchiveFields(sender="sender", receivers="to", time_ms="ts")
    msg = archive_message(
        {"msgid": "x", "sender": "clerk1", "to": "wmZ", "ts": T0}, staff=STAFF, fields=fields
    )
    assert msg is not None
    assert (msg.direction, msg.staff, msg.external_userid) == ("out", "clerk1", "wmZ")
    with pytest.raises(UsageError):
        archive_message({"from": "wmZ", "tolist": ["clerk1"]}, staff=STAFF)
    with pytest.raises(UsageError):
        list(iter_jsonl(["{not json"]))


def test_contact_events_count_for_staff(corp):
    """Callback contact events (added, customer deleted staff) show in the staff rows."""
    store = InMemoryStore()
    h = WeComCallbackHandler(
        WeComEndpoint(corpid=corp.corpid, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
        store=store,
        clock=corp.emulator.now,
    )
    for push in (
        corp.add_customer("clerk1", "wm1"),
        corp.add_customer("clerk1", "wm2"),
        corp.customer_deletes_staff("clerk1", "wm2", at=corp.emulator.now() + 10),
        corp.staff_deletes_customer("clerk1", "wm1", at=corp.emulator.now() + 20),
    ):
        h.handle(push.method, dict(push.query), push.body)
    events = [
        e
        for ext in ("wm1", "wm2")
        for e in store.events_for(store.resolve(Identity.external_userid(corp.corpid, ext)) or "")
    ]
    as_of = dt.datetime.fromtimestamp(corp.emulator.now() + 60, dt.UTC)
    (row,) = staff_metrics(events, as_of=as_of).rows
    assert (row.customers_added, row.lost_by_customer, row.lost_by_staff) == (2, 1, 1)

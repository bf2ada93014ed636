"""Mass-send reports join the ledger, MASSSENDJOBFINISH results and article statistics."""

from __future__ import annotations

from membermkt.engine.jobresults import JobReconciliation, JobResult
from membermkt.engine.massreport import mass_send_report


def test_report_joins_results_and_article_rows() -> None:
    recon = JobReconciliation(
        ledger_sent={"1001": 5000, "1002": 300},
        platform={
            "1001": JobResult(
                appid="wx1",
                event="MASSSENDJOBFINISH",
                msg_id="1001",
                status="send success",
                total=5000,
                filtered=200,
                sent=4800,
                errors=0,
            )
        },
        missing=("1002",),
        reached=4800,
        not_reached=200,
    )
    rows = [
        {
            "ref_date": "2026-11-11",
            "msgid": "2247_1",
            "int_page_read_user": 400,
            "int_page_read_count": 520,
            "share_user": 30,
            "share_count": 41,
        },
        {
            "ref_date": "2026-11-11",
            "msgid": "2247_2",
            "int_page_read_user": 80,
            "int_page_read_count": 90,
            "share_user": 6,
            "share_count": 6,
        },
        {"ref_date": "2026-11-11", "msgid": "9999_1", "int_page_read_user": 7},
    ]
    report = mass_send_report(recon, rows, {"1001": "2247", "1002": "2250"})
    first, second = report
    assert (first.msg_id, first.ledger_sent, first.reached, first.filtered) == (
        "1001",
        5000,
        4800,
        200,
    )
    assert (first.readers, first.reads, first.sharers, first.shares) == (480, 610, 36, 47)
    assert first.read_rate == 480 / 4800
    assert first.share_rate == 36 / 4800
    assert second.reached is None  # no MASSSENDJOBFINISH yet
    assert second.read_rate is None
    assert second.readers == 0

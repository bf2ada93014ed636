"""Chapter 7, analytics and the report: the analytics bundle with the campaign's lift, and
the HTML report with the campaign and red-packet sections."""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from membermkt.demo._base import CONVERSION_WINDOW
from membermkt.demo._campaigns import _CampaignOutcome


def _analytics(
    store: Any,
    as_of: dt.datetime,
    path: Path | None,
    camp: _CampaignOutcome,
    *,
    rule_id: str,
) -> tuple[dict[str, int], dict[str, tuple[int, int, int]]]:
    from membermkt import analytics
    from membermkt.analytics import run_all

    bundle = run_all(store, as_of=as_of)
    start = camp.summary.as_of or as_of
    lift = analytics.campaign_lift(
        store,
        treatment=camp.treatment,
        holdout=sorted(camp.summary.holdout_ids),
        start=start,
        end=start + CONVERSION_WINDOW,
    )
    bundle = attrs.evolve(bundle, lift=lift)
    funnel = dict(zip(bundle.funnel.steps, bundle.funnel.counts, strict=True))
    attribution = {r.source: (r.members, r.buyers, r.revenue_fen) for r in bundle.attribution.rows}
    if path is not None:
        _write_report(store, bundle, path, camp, rule_id=rule_id, as_of=as_of)
    return funnel, attribution


def _write_report(
    store: Any, bundle: Any, path: Path, camp: _CampaignOutcome, *, rule_id: str, as_of: Any
) -> None:
    from membermkt.report import render_report

    page = render_report(bundle, title="membermkt demo — member analytics")
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{n:,}</td></tr>"
        for name, n in zip(bundle.funnel.steps, bundle.funnel.counts, strict=True)
    )
    extra = [
        "<h2>Summary numbers</h2>",
        '<table class="membermkt" id="funnel-numbers"><caption>Acquisition funnel</caption>'
        f"<tr><th>step</th><th>members</th></tr>{rows}</table>",
        '<table class="membermkt" id="attribution-numbers"><caption>Attribution by source'
        "</caption><tr><th>source</th><th>members</th><th>buyers</th><th>orders</th>"
        "<th>revenue (¥)</th></tr>"
        + "".join(
            f"<tr><td>{esc(r.source)}</td><td>{r.members:,}</td><td>{r.buyers:,}</td>"
            f"<td>{r.orders:,}</td><td>{r.revenue_fen / 100:,.2f}</td></tr>"
            for r in bundle.attribution.rows
        )
        + "</table>",
        "<h2>Campaign</h2>",
        camp.report._repr_html_(),
        "<h2>Red packets</h2>",
        _redpacket_table(store, rule_id),
    ]
    page = page.replace("</body></html>", "\n".join(extra) + "\n</body></html>")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)


def _redpacket_table(store: Any, rule_id: str) -> str:
    by_status: Counter[str] = Counter()
    fen: Counter[str] = Counter()
    for intent in store.intents(rule_id=rule_id):
        by_status[intent.status] += 1
        fen[intent.status] += intent.amount_fen
    rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{by_status[s]:,}</td><td>{fen[s] / 100:,.2f}</td></tr>"
        for s in sorted(by_status)
    )
    return (
        f'<table class="membermkt" id="redpacket-numbers"><caption>Payouts of rule '
        f"{html.escape(rule_id)}</caption><tr><th>status</th><th>payouts</th>"
        f"<th>amount (¥)</th></tr>{rows}</table>"
    )

"""One-call HTML report of the member analytics, for people who would rather look than read.

>>> from membermkt import report                                  # doctest: +SKIP
>>> report.write_report(store, "analytics.html", as_of=now)       # doctest: +SKIP

The page is self-contained: every chart is embedded, followed by the numbers behind it.
Charts are PNGs drawn by matplotlib (Agg, no pyplot state) when the ``plot`` extra is
installed, else inline SVG written by :mod:`membermkt.analytics.svg` — so a plain
``pip install membermkt`` writes the whole report too.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from collections.abc import Sequence
from typing import Any

from membermkt.analytics import AnalyticsBundle, run_all
from membermkt.analytics._extras import MissingExtraError, matplotlib_figure
from membermkt.analytics.svg import chart_svg
from membermkt.core.analytics import ACQUISITION_FUNNEL, ActivityWindows, Funnel, OfferRule
from membermkt.errors import UsageError

__all__ = ["chart_png", "chart_svg", "charts_available", "render_report", "write_report"]

_CSS = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:1000px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table.membermkt{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.membermkt td,table.membermkt th{border:1px solid #ddd;padding:2px 8px;text-align:right}
table.membermkt caption{text-align:left;font-weight:bold;padding:.3em 0}
.kpis{display:flex;gap:1em;flex-wrap:wrap}.kpi{border:1px solid #ddd;border-radius:6px;
padding:.6em 1em}.kpi b{display:block;font-size:1.4em}img{max-width:100%}
"""


def chart_png(result: Any, *, dpi: int = 110) -> bytes:
    """The chart of an analytics result (anything with ``plot(ax)``) as PNG bytes.

    Raises:
        MissingExtraError: when matplotlib is not installed (extra ``plot``).
    """
    fig = matplotlib_figure()
    ax = fig.subplots()
    result.plot(ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def charts_available() -> str:
    """``"png"`` when matplotlib is installed (extra ``plot``), else ``"svg"``."""
    try:
        matplotlib_figure()
    except MissingExtraError:
        return "svg"
    return "png"


def _chart(result: Any, name: str, charts: str) -> str:
    if charts == "svg":
        return chart_svg(result)
    png = base64.b64encode(chart_png(result)).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{png}">'


def _kpis(bundle: AnalyticsBundle) -> str:
    tot = bundle.attribution.totals()
    act = bundle.activity.as_dict()
    items = [
        ("members", f"{tot.members:,}"),
        ("active", f"{act['active']:,}"),
        ("buyers", f"{tot.buyers:,}"),
        ("orders", f"{tot.orders:,}"),
        ("revenue", f"¥{tot.revenue_fen / 100:,.2f}"),
        ("champions", f"{bundle.rfm.group_counts().get('champions', 0):,}"),
    ]
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi"><b>{html.escape(v)}</b>{html.escape(k)}</div>' for k, v in items
        )
        + "</div>"
    )


def render_report(
    bundle: AnalyticsBundle, *, title: str = "Member analytics", charts: str = "auto"
) -> str:
    """The report page of ``bundle`` as an HTML string.

    Args:
        bundle: the analytics to show.
        title: the page title.
        charts: ``"png"`` (matplotlib), ``"svg"`` (no dependency) or ``"auto"`` (PNG when
            matplotlib is installed, else SVG).

    Raises:
        UsageError: for a bad ``bundle`` or ``charts``.
        MissingExtraError: for ``charts="png"`` without matplotlib (extra ``plot``).
    """
    if not isinstance(bundle, AnalyticsBundle):
        raise UsageError(f"render_report takes an AnalyticsBundle, got {type(bundle).__name__}")
    if charts not in ("auto", "png", "svg"):
        raise UsageError(f"charts must be 'auto', 'png' or 'svg', got {charts!r}")
    kind = charts_available() if charts == "auto" else charts
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>As of {bundle.as_of:%Y-%m-%d %H:%M} UTC.</p>",
        _kpis(bundle),
    ]
    for name, result in bundle.results():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(_chart(result, name, kind))
        parts.append(result._repr_html_())  # type: ignore[attr-defined]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    source: object,
    path: str | os.PathLike[str],
    *,
    as_of: dt.datetime | None = None,
    title: str = "Member analytics",
    funnel: Funnel = ACQUISITION_FUNNEL,
    windows: ActivityWindows | None = None,
    offer_rules: Sequence[OfferRule] = (),
    period: str = "week",
    charts: str = "auto",
) -> AnalyticsBundle:
    """Compute the analytics of ``source`` (a store, a history list, or an
    :class:`~membermkt.analytics.AnalyticsBundle`) and write the HTML report to ``path``.
    Returns the bundle.

    Raises:
        UsageError: when ``as_of`` is missing for a store or history.
        MissingExtraError: for ``charts="png"`` without matplotlib (extra ``plot``).
    """
    if isinstance(source, AnalyticsBundle):
        bundle = source
    else:
        if as_of is None:
            raise UsageError("write_report needs as_of= to analyse a store or a history")
        bundle = run_all(
            source,
            as_of=as_of,
            funnel_spec=funnel,
            windows=windows,
            offer_rules=offer_rules,
            period=period,
        )
    page = render_report(bundle, title=title, charts=charts)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return bundle

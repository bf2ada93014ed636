"""Charts as inline SVG, written without matplotlib (what a plain install's report shows).

:func:`chart_svg` draws the same chart as the matplotlib ``plot()`` of every analytics result
(bars for counts, a heat grid for RFM, paths and cohorts) as a self-contained ``<svg>``
element: no dependency, no script, deterministic text (the same result always gives the same
markup), every label escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Final

from membermkt.core.analytics import (
    ACTIVITY_CLASSES,
    ActivityResult,
    AttributionResult,
    CohortResult,
    FunnelResult,
    LiftResult,
    OfferResult,
    PathResult,
    RFMResult,
    StaffResult,
)
from membermkt.errors import UsageError

__all__ = ["bars_svg", "chart_svg", "grid_svg"]

_MAX_NODES: Final = 12
_MAX_BARS: Final = 12
_FONT: Final = 'font-family="sans-serif" font-size="11"'
_COLORS: Final = ("#457b9d", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6a4c93")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="membermkt-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_esc(title)}" {_FONT}>'
        f'<text x="{width // 2}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{_esc(title)}</text>' + "".join(body) + "</svg>"
    )


def bars_svg(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: str = ",.0f",
    notes: Sequence[str] | None = None,
    color: str = _COLORS[0],
) -> str:
    """Horizontal bars, one per label, each with its value (and an optional note).

    Raises:
        UsageError: when labels, values and notes differ in length.
    """
    if len(labels) != len(values) or (notes is not None and len(notes) != len(values)):
        raise UsageError("bars_svg needs as many labels (and notes) as values")
    width, left, row = 640, 170, 22
    height = 34 + row * max(1, len(values))
    top = max((v for v in values if v > 0), default=0.0)
    span = width - left - 150
    body = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 28 + i * row
        w = 0 if top <= 0 or v <= 0 else max(1, round(span * v / top))
        text = format(v, fmt) + ("" if notes is None else f"  {notes[i]}")
        body.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_esc(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w}" height="{row - 6}" fill="{color}"/>'
            f'<text x="{left + w + 4}" y="{y + 14}">{_esc(text)}</text>'
        )
    return _svg(width, height, title, body)


def grid_svg(
    title: str,
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    fmt: str = ",.0f",
    vmax: float | None = None,
) -> str:
    """A heat grid: one cell per (row, column), shaded by value, labelled with it
    (``None`` cells are left blank).

    Raises:
        UsageError: when the values do not form a ``rows`` × ``cols`` grid.
    """
    if len(values) != len(rows) or any(len(r) != len(cols) for r in values):
        raise UsageError("grid_svg values must form a rows × cols grid")
    cell_w, cell_h, left, top = 52, 24, 150, 44
    width = left + cell_w * max(1, len(cols)) + 10
    height = top + cell_h * max(1, len(rows)) + 10
    hi = vmax if vmax is not None else max((v for r in values for v in r if v), default=0.0)
    body = [
        f'<text x="{left + j * cell_w + cell_w // 2}" y="{top - 6}" '
        f'text-anchor="middle">{_esc(c)}</text>'
        for j, c in enumerate(cols)
    ]
    for i, (label, row) in enumerate(zip(rows, values, strict=True)):
        y = top + i * cell_h
        body.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{_esc(label)}</text>')
        for j, v in enumerate(row):
            if v is None:
                continue
            share = 0.0 if hi <= 0 else max(0.0, min(1.0, v / hi))
            shade = round(245 - 170 * share)
            ink = "white" if share > 0.6 else "black"
            x = left + j * cell_w
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="rgb({shade},{min(255, shade + 10)},255)"/>'
                f'<text x="{x + cell_w // 2}" y="{y + 16}" text-anchor="middle" '
                f'fill="{ink}">{_esc(format(v, fmt))}</text>'
            )
    return _svg(width, height, title, body)


def _rfm(r: RFMResult) -> str:
    grid = [[float(v) for v in row] for row in reversed(r.grid())]
    return grid_svg(
        f"RFM grid — {len(r)} buyers (rows: R, columns: F)",
        [f"R={k}" for k in range(r.bins, 0, -1)],
        [f"F={k}" for k in range(1, r.bins + 1)],
        grid,
    )


def _activity(r: ActivityResult) -> str:
    labels = [c.replace("_", " ") for c in ACTIVITY_CLASSES]
    return bars_svg(f"Activity classes — {r.total} members", labels, list(r.counts))


def _funnel(r: FunnelResult) -> str:
    notes = ["" if rate is None else f"({rate:.0%})" for rate in r.conversion()]
    overall = r.overall()
    title = "Funnel" + ("" if overall is None else f" — {overall:.1%} reach the last step")
    return bars_svg(title, list(r.steps), list(r.counts), notes=notes)


def _paths(r: PathResult) -> str:
    nodes = list(r.nodes()[:_MAX_NODES])
    shares = r.shares()
    grid = [[shares.get(a, {}).get(b) or None for b in nodes] for a in nodes]
    return grid_svg("Path transitions (share of each row)", nodes, nodes, grid, fmt=".0%", vmax=1)


def _attribution(r: AttributionResult) -> str:
    rows = list(r.rows[:_MAX_BARS])
    notes = [f"buyers {x.buyers:,}, ¥{x.revenue_fen / 100:,.2f}" for x in rows]
    return bars_svg(
        "Attribution by acquisition source (members)",
        [x.source for x in rows],
        [x.members for x in rows],
        notes=notes,
    )


def _cohorts(r: CohortResult) -> str:
    matrix = [list(row) for row in r.matrix()]
    width = len(matrix[0]) if matrix else 0
    return grid_svg(
        f"Retention by follow {r.period}",
        [f"{x.start} ({x.size})" for x in r.rows],
        [f"+{k}" for k in range(width)],
        matrix,
        fmt=".0%",
        vmax=1,
    )


def _staff(r: StaffResult) -> str:
    rows = list(r.rows[:_MAX_BARS])
    notes = [f"min; {x.interactions_per_day or 0:.1f} interactions/day" for x in rows]
    return bars_svg(
        "WeCom staff — average first reply",
        [x.staff for x in rows],
        [(x.avg_first_reply_seconds or 0) / 60 for x in rows],
        fmt=",.1f",
        notes=notes,
    )


def _offers(r: OfferResult) -> str:
    counts = r.counts()
    return bars_svg(
        f"Next offers — {len(r.recommendations)} members", list(counts), list(counts.values())
    )


def _lift(r: LiftResult) -> str:
    rates = [r.treatment.rate or 0.0, r.holdout.rate or 0.0]
    up = r.uplift
    title = "Campaign lift" + ("" if up is None else f" — uplift {up:+.1%}")
    return bars_svg(title, ["treatment", "holdout"], rates, fmt=".1%", color=_COLORS[1])


_DRAW: Final[tuple[tuple[type, Any], ...]] = (
    (RFMResult, _rfm),
    (ActivityResult, _activity),
    (FunnelResult, _funnel),
    (PathResult, _paths),
    (AttributionResult, _attribution),
    (CohortResult, _cohorts),
    (StaffResult, _staff),
    (OfferResult, _offers),
    (LiftResult, _lift),
)


def chart_svg(result: object) -> str:
    """The chart of an analytics result as an inline ``<svg>`` element.

    Raises:
        UsageError: for an object that is not an analytics result.
    """
    for kind, draw in _DRAW:
        if isinstance(result, kind):
            return str(draw(result))
    raise UsageError(f"no chart for {type(result).__name__}")

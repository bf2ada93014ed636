"""Charts for every analytics result (matplotlib, imported lazily).

Each ``plot_*`` function draws on the given ``ax`` (a matplotlib Axes) and returns it.
"""

from __future__ import annotations

from typing import Any

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

__all__ = [
    "plot_activity",
    "plot_attribution",
    "plot_cohorts",
    "plot_funnel",
    "plot_lift",
    "plot_offers",
    "plot_paths",
    "plot_rfm",
    "plot_staff",
]

_MAX_GROUPS = 6
_MAX_NODES = 12


def _annotate_grid(ax: Any, values: list[list[float | None]], fmt: str, vmax: float) -> None:
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v is None:
                continue
            color = "white" if vmax and v > 0.6 * vmax else "black"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8, color=color)


def plot_rfm(result: RFMResult, ax: Any) -> Any:
    """RFM grid: buyers per recency × frequency score (best corner top right)."""
    grid = [list(r) for r in result.grid()]
    rows = list(reversed(grid))  # R = bins at the top
    ax.imshow(rows, cmap="YlGnBu", aspect="auto")
    n = result.bins
    ax.set_xticks(range(n), [str(f) for f in range(1, n + 1)])
    ax.set_yticks(range(n), [str(r) for r in range(n, 0, -1)])
    ax.set_xlabel("frequency score (F)")
    ax.set_ylabel("recency score (R)")
    vmax = max((max(r) for r in rows), default=0)
    _annotate_grid(ax, [[float(v) for v in r] for r in rows], ".0f", vmax)
    ax.set_title(f"RFM grid — {len(result)} buyers")
    return ax


def plot_activity(result: ActivityResult, ax: Any) -> Any:
    """Members per activity class (stacked per group when grouped)."""
    labels = [c.replace("_", " ") for c in ACTIVITY_CLASSES]
    if not result.groups:
        ax.bar(labels, result.counts, color=["#2a9d8f", "#e9c46a", "#f4a261", "#e76f51"])
    else:
        bottom = [0] * len(ACTIVITY_CLASSES)
        for g, counts in result.groups[:_MAX_GROUPS]:
            ax.bar(labels, counts, bottom=bottom, label=g)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.legend(fontsize=8, title=result.by)
    ax.set_ylabel("members")
    ax.set_title(f"Activity classes — {result.total} members")
    return ax


def plot_funnel(result: FunnelResult, ax: Any) -> Any:
    """Funnel bars: members per step, labelled with the step-to-step conversion."""
    steps = list(result.steps)
    y = list(range(len(steps)))[::-1]
    if not result.groups or len(result.groups) == 1:
        bars = ax.barh(y, result.counts, color="#457b9d")
        for bar, rate, n in zip(bars, result.conversion(), result.counts, strict=True):
            label = f"{n}" if rate is None else f"{n}  ({rate:.0%})"
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                " " + label,
                va="center",
                fontsize=8,
            )
    else:
        groups = sorted(result.groups, key=lambda g: -g[1][0])[:_MAX_GROUPS]
        h = 0.8 / len(groups)
        for k, (g, counts) in enumerate(groups):
            ax.barh([v + 0.4 - h * (k + 0.5) for v in y], counts, height=h, label=g)
        ax.legend(fontsize=8, title=result.by)
    ax.set_yticks(y, steps)
    ax.set_xlabel("members")
    overall = result.overall()
    ax.set_title("Funnel" + ("" if overall is None else f" — {overall:.1%} reach the last step"))
    return ax


def plot_paths(result: PathResult, ax: Any) -> Any:
    """Heat map of transition shares between the busiest nodes (rows: from, columns: to)."""
    nodes = list(result.nodes()[:_MAX_NODES])
    shares = result.shares()
    grid = [[shares.get(a, {}).get(b, 0.0) for b in nodes] for a in nodes]
    ax.imshow(grid or [[0.0]], cmap="Purples", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(nodes)), nodes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(nodes)), nodes, fontsize=8)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    _annotate_grid(ax, [[v if v else None for v in r] for r in grid], ".0%", 1.0)
    ax.set_title("Path transitions (share of each row)")
    return ax


def plot_attribution(result: AttributionResult, ax: Any) -> Any:
    """Members and buyers per source, revenue on a second axis."""
    rows = list(result.rows[: _MAX_GROUPS * 2])
    x = list(range(len(rows)))
    ax.bar([i - 0.2 for i in x], [r.members for r in rows], width=0.4, label="members")
    ax.bar([i + 0.2 for i in x], [r.buyers for r in rows], width=0.4, label="buyers")
    ax.set_xticks(x, [r.source for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("members")
    ax2 = ax.twinx()
    ax2.plot(x, [r.revenue_fen / 100 for r in rows], "o-", color="#e76f51", label="revenue (¥)")
    ax2.set_ylabel("revenue (yuan)")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    ax.set_title("Attribution by acquisition source")
    return ax


def plot_cohorts(result: CohortResult, ax: Any) -> Any:
    """The retention triangle."""
    matrix = [list(r) for r in result.matrix()]
    nan = float("nan")
    ax.imshow(
        [[nan if v is None else v for v in r] for r in matrix] or [[nan]],
        cmap="Greens",
        vmin=0,
        vmax=1,
        aspect="auto",
    )
    width = len(matrix[0]) if matrix else 0
    ax.set_xticks(range(width), [f"+{k}" for k in range(width)], fontsize=8)
    ax.set_yticks(
        range(len(result.rows)), [f"{r.start} ({r.size})" for r in result.rows], fontsize=8
    )
    ax.set_xlabel(f"{result.period}s since follow")
    _annotate_grid(ax, matrix, ".0%", 1.0)
    ax.set_title(f"Retention by follow {result.period}")
    return ax


def plot_staff(result: StaffResult, ax: Any) -> Any:
    """Average first-reply time (bars) and interactions per day (line) per staff member."""
    rows = list(result.rows)
    x = list(range(len(rows)))
    ax.bar(
        x,
        [(r.avg_first_reply_seconds or 0) / 60 for r in rows],
        color="#8ecae6",
        label="avg first reply (min)",
    )
    ax.set_xticks(x, [r.staff for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("minutes")
    ax2 = ax.twinx()
    ax2.plot(
        x,
        [r.interactions_per_day or 0 for r in rows],
        "o-",
        color="#fb8500",
        label="interactions / day",
    )
    ax2.set_ylabel("interactions per active day")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    ax.set_title("WeCom staff")
    return ax


def plot_offers(result: OfferResult, ax: Any) -> Any:
    """Members per recommended offer."""
    counts = result.counts()
    ax.barh(list(counts)[::-1], list(counts.values())[::-1], color="#6a4c93")
    ax.set_xlabel("members")
    ax.set_title(f"Next offers — {len(result.recommendations)} members")
    return ax


def plot_lift(result: LiftResult, ax: Any) -> Any:
    """Conversion rate of the treatment against the holdout."""
    rates = [result.treatment.rate or 0.0, result.holdout.rate or 0.0]
    ax.bar(["treatment", "holdout"], rates, color=["#2a9d8f", "#adb5bd"])
    for i, r in enumerate(rates):
        ax.text(i, r, f"{r:.1%}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("conversion rate")
    up = result.uplift
    ax.set_title("Campaign lift" + ("" if up is None else f" — uplift {up:+.1%}"))
    return ax

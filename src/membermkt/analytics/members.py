"""Rendering of the members' report (:mod:`membermkt.core.membership.report`): a plain-text
/ Markdown report and dependency-free SVG charts (members by tier, the tier-migration grid).
"""

from __future__ import annotations

from membermkt.analytics.svg import bars_svg, grid_svg
from membermkt.core.membership.report import MembersReport, TierMigrations

__all__ = ["members_by_tier_svg", "render_members_report", "tier_migrations_svg"]


def tier_migrations_svg(migrations: TierMigrations, order: tuple[str, ...] = ()) -> str:
    """The from × to grid of tier migrations as an inline SVG (rows: tier at the start)."""
    names, grid = migrations.matrix(order)
    return grid_svg(
        f"Tier migrations {migrations.start:%Y-%m-%d} → {migrations.end:%Y-%m-%d} (from ↓, to →)",
        names,
        names,
        [[float(v) if v else None for v in row] for row in grid],
    )


def members_by_tier_svg(report: MembersReport) -> str:
    """Members per tier at the report's last date, as bars."""
    if not report.by_tier:
        return bars_svg("Members by tier", [], [])
    at, counts = report.by_tier[-1]
    names = [t for t in report.tier_order if t in counts] + sorted(
        t for t in counts if t not in report.tier_order
    )
    return bars_svg(f"Members by tier on {at:%Y-%m-%d}", names, [counts[t] for t in names])


def render_members_report(report: MembersReport) -> str:
    """The report as Markdown (tables), deterministic for the same report."""
    order = report.tier_order
    lines = [f"# Members' report as of {report.as_of:%Y-%m-%d}", "", "## Members by tier", ""]
    tiers = sorted(
        {t for _, c in report.by_tier for t in c},
        key=lambda t: (t not in order, order.index(t) if t in order else 0, t),
    )
    lines.append("| date | " + " | ".join(tiers) + " |")
    lines.append("|---|" + "---|" * len(tiers))
    for at, counts in report.by_tier:
        lines.append(
            f"| {at:%Y-%m-%d} | " + " | ".join(str(counts.get(t, 0)) for t in tiers) + " |"
        )
    m = report.migrations
    lines += [
        "",
        f"## Tier migrations {m.start:%Y-%m-%d} → {m.end:%Y-%m-%d}",
        "",
        "| from | to | members |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {n} |" for a, b, n in m.rows(order)]
    lines += [
        "",
        "## Entitlements",
        "",
        "| benefit | granted | redeemed | expired | open | usage |",
    ]
    lines.append("|---|---|---|---|---|---|")
    lines += [
        f"| {r.benefit} | {r.granted} | {r.redeemed} | {r.expired} | {r.open} | {r.usage:.0%} |"
        for r in report.entitlements
    ]
    lines += [
        "",
        "## Coupons",
        "",
        "| stock | granted | used | redemption | revenue ¥ | discount ¥ |",
    ]
    lines.append("|---|---|---|---|---|---|")
    lines += [
        f"| {r.stock_id} | {r.granted} | {r.used} | {r.redemption:.0%} | "
        f"{r.revenue_fen / 100:,.2f} | {r.discount_fen / 100:,.2f} |"
        for r in report.coupons
    ]
    lines += [
        "",
        "## First-member cohorts",
        "",
        "| source | members | retained | revenue ¥/member |",
    ]
    lines.append("|---|---|---|---|")
    lines += [
        f"| {r.source} | {r.members} | {r.retention:.0%} | {r.revenue_per_member_fen / 100:,.2f} |"
        for r in report.cohorts
    ]
    return "\n".join(lines) + "\n"

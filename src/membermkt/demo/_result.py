"""What a demo run did (:class:`DemoResult`) and the summary the CLI prints of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class DemoResult:
    """What a demo run did (``new_*``: this run; the others: the database's totals).

    Attributes:
        workdir / database / report: where things were written.
        resumed: an earlier run had already imported the population.
        members / events: members and events in the store.
        pushes: callbacks handled in this run; ``welcomed``: welcome replies sent in it.
        claims: claim outcome → count for this run (``paid``, ``denied:<reason>``, ...).
        paid_fen / payouts: money paid (all runs) and payouts made in this run.
        tags: tag → members.
        segments: named segment → members.
        simulation: variant/holdout → planned count from the simulation.
        deliveries: ledger status → count for the campaign (all runs).
        new_sends: mass-send deliveries sent by this run.
        duplicate_receipts: duplicate receipts counted by the emulator in this run.
        funnel: step name → members (the acquisition funnel).
        attribution: source → (members, buyers, revenue in fen).
        lift: variant → (conversion rate, lift over holdout) — ``None`` where undefined.
        seconds: wall time of the run.
        programme: the member programme chapter (first members, tiers, coupons, report).
    """

    workdir: Path
    database: Path
    report: Path | None
    resumed: bool
    members: int
    events: int
    pushes: int
    welcomed: int
    claims: dict[str, int]
    payouts: int
    paid_fen: int
    tags: dict[str, int]
    segments: dict[str, int]
    simulation: dict[str, int]
    deliveries: dict[str, int]
    new_sends: int
    duplicate_receipts: int
    funnel: dict[str, int]
    attribution: dict[str, tuple[int, int, int]]
    lift: dict[str, tuple[float | None, float | None]]
    seconds: float
    programme: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able values (paths as strings, tuples as lists)."""
        out: dict[str, Any] = attrs.asdict(self, recurse=False)
        for k in ("workdir", "database", "report"):
            out[k] = None if out[k] is None else str(out[k])
        out["attribution"] = {k: list(v) for k, v in self.attribution.items()}
        out["lift"] = {k: list(v) for k, v in self.lift.items()}
        return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def format_summary(result: DemoResult) -> str:
    """The human summary the CLI prints after a run."""
    lines = [
        "",
        f"Done in {result.seconds:.1f} s" + (" (resumed)" if result.resumed else "") + ".",
        f"  members {result.members:,}, events {result.events:,}",
        f"  callbacks this run {result.pushes:,}, welcomed {result.welcomed:,}",
        "  red packets this run: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(result.claims.items())) or "none")
        + f"; new payouts {result.payouts:,}; paid in total ¥{result.paid_fen / 100:,.2f}",
        "  tags: " + ", ".join(f"{k} {v:,}" for k, v in result.tags.items()),
        "  segments:",
        *(f"    {name}: {n:,}" for name, n in result.segments.items()),
        "  funnel: " + " → ".join(f"{k} {v:,}" for k, v in result.funnel.items()),
        "  attribution (members / buyers / revenue):",
        *(
            f"    {src}: {m:,} / {b:,} / ¥{rev / 100:,.2f}"
            for src, (m, b, rev) in result.attribution.items()
        ),
        "  campaign: planned "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(result.simulation.items()))
        + f"; sent this run {result.new_sends:,}; duplicates {result.duplicate_receipts}",
        "  conversion (lift vs holdout): "
        + ", ".join(
            f"{g} {_pct(rate)}" + ("" if lift is None else f" ({lift:+.1%})")
            for g, (rate, lift) in sorted(result.lift.items())
        ),
    ]
    if result.programme is not None:
        p = result.programme
        lines += [
            f"  member programme: {p['qualified']} qualified first members invited, "
            f"{p['joined']} members; tiers " + ", ".join(f"{k} {v}" for k, v in p["tiers"].items()),
            f"    durian coupons: granted {p['coupons_granted']}, refused (stock out) "
            f"{p['coupons_refused']}, used {p['coupons_used']}; "
            f"unused birthday tea expiring within 7 days: {p['unused_tea_expiring']}",
            "    tier migrations: " + ", ".join(f"{a}→{b} {n}" for a, b, n in p["migrations"]),
        ]
        if p.get("report"):
            lines.append(f"    members' report: {p['report']}")
    if result.report is not None:
        lines.append(f"  report: {result.report}")
    lines.append(f"  run it again: nothing is sent or paid twice (database {result.database})")
    return "\n".join(lines)

"""Regenerate the charts shown in ``docs/analytics.md`` (PNG files under ``docs/img/``).

Run from the repository root::

    .venv/bin/python docs/make_analytics_images.py

The data is the seeded synthetic population of :mod:`membermkt.testing.synthetic`, so the
pictures only change when the generator or the charts do.
"""

from __future__ import annotations

import datetime as dt
import pathlib

from membermkt import analytics
from membermkt.report import chart_png
from membermkt.testing.synthetic import SyntheticConfig, generate

OUT = pathlib.Path(__file__).parent / "img"


def main() -> None:
    config = SyntheticConfig(seed=8)
    as_of = config.as_of
    history = list(generate(3000, config=config))
    windows = analytics.ActivityWindows(active_days=30, dormant_days=90, churn_days=150)
    rules = [
        analytics.affinity_offer("durian", offer="durian-coupon", at_least=3),
        analytics.trial_offer("apple", offer="apple-new-variant-trial"),
        analytics.membership_offer(offer="membership"),
    ]
    ids = [m.id for m, _ in history]
    holdout = {i for i in ids if int(i[1:]) % 10 == 0}
    charts = {
        "activity": analytics.activity_counts(history, as_of=as_of, windows=windows, by="source"),
        "rfm": analytics.rfm(history, as_of=as_of),
        "funnel": analytics.funnel(history, analytics.ACQUISITION_FUNNEL, as_of=as_of),
        "paths": analytics.paths(history, as_of=as_of),
        "attribution": analytics.attribution(history, as_of=as_of),
        "lift": analytics.campaign_lift(
            history,
            treatment=[i for i in ids if i not in holdout],
            holdout=holdout,
            start=as_of - dt.timedelta(days=30),
            end=as_of,
        ),
        "cohorts": analytics.cohorts(history, as_of=as_of, period="month", max_periods=7),
        "staff": analytics.staff_metrics(history, as_of=as_of),
        "offers": analytics.recommend(history, rules, as_of=as_of),
    }
    OUT.mkdir(exist_ok=True)
    for name, result in charts.items():
        path = OUT / f"analytics-{name}.png"
        path.write_bytes(chart_png(result, dpi=90))
        print(path)


if __name__ == "__main__":
    main()

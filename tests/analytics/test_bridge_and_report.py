"""The notebook bridge (to_pandas, _repr_html_, plot) and the one-call HTML report."""

from __future__ import annotations

import base64
import re
import sys

import pytest

from membermkt import analytics, report
from membermkt.analytics import MissingExtraError
from membermkt.core import analytics as core
from membermkt.errors import UsageError
from membermkt.stores import InMemoryStore

from ._data import AS_OF, DAY, buy, ev, history

RULES = (core.trial_offer("apple", offer="apple-trial"),)


def sample_history():
    t = AS_OF - 20 * DAY
    evs = []
    for i in range(12):
        mid = f"m{i}"
        src = "qr:parcel" if i % 3 else "wecom:shop"
        evs += [
            ev(mid, "scan", t, source=src),
            ev(mid, "follow", t + i * DAY / 24, source=src),
            ev(mid, "menu_click", t + DAY, key="A"),
            ev(mid, "view", t + DAY + DAY / 1440, url="/p", dwell_seconds=10 * i),
            ev(mid, "menu_click", t + DAY + DAY / 720, key="C" if i % 2 else "B"),
        ]
        if i % 2:
            evs += [ev(mid, "redpacket_claim", t + 2 * DAY), buy(mid, t + 3 * DAY, 990 * i)]
        if i % 4 == 1:
            evs.append(buy(mid, t + 10 * DAY, 500, "durian"))
        evs += [
            ev(mid, "message", t + DAY, channel="wecom", staff=f"s{i % 2}", direction="in"),
            ev(
                mid,
                "message",
                t + DAY + DAY / 96,
                channel="wecom",
                staff=f"s{i % 2}",
                direction="out",
            ),
        ]
    return history(evs)


@pytest.fixture(scope="module")
def bundle() -> analytics.AnalyticsBundle:
    return analytics.run_all(sample_history(), as_of=AS_OF, offer_rules=RULES)


def every_result(bundle: analytics.AnalyticsBundle):
    hist = sample_history()
    lift = analytics.campaign_lift(
        hist, treatment=["m1", "m2", "m3"], holdout=["m4", "m5"], start=AS_OF - 30 * DAY, end=AS_OF
    )
    return [r for _, r in bundle.results()] + [lift]


def test_every_result_has_the_bridge(bundle) -> None:
    import matplotlib.axes
    import pandas as pd

    for result in every_result(bundle):
        df = result.to_pandas()
        assert isinstance(df, pd.DataFrame)
        assert list(df.columns) == list(result.table().columns)
        assert len(df) == len(result.table().rows)
        assert "<table" in result._repr_html_()
        ax = result.plot()
        assert isinstance(ax, matplotlib.axes.Axes)
        assert ax.get_title()
        import matplotlib.pyplot as plt

        plt.close(ax.figure)
    assert "<h3>" in bundle._repr_html_()


def test_results_stay_core_results(bundle) -> None:
    assert isinstance(bundle.rfm, core.RFMResult)
    assert analytics.notebook(bundle.rfm) is bundle.rfm
    plain = core.funnel(core.ACQUISITION_FUNNEL, sample_history(), as_of=AS_OF)
    assert analytics.notebook(plain).counts == plain.counts
    with pytest.raises(UsageError, match="not an analytics result"):
        analytics.notebook(42)


def test_missing_extras_name_the_extra(bundle, monkeypatch) -> None:
    """Without pandas / matplotlib the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtraError, match=r"membermkt\[pandas\]") as info:
        bundle.rfm.to_pandas()
    assert isinstance(info.value, UsageError)
    assert info.value.extra == "pandas"
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MissingExtraError, match=r"membermkt\[plot\]"):
        bundle.funnel.plot()


def test_report_is_self_contained(tmp_path, bundle) -> None:
    out = tmp_path / "report.html"
    got = report.write_report(bundle, out, title="Shop <analytics>")
    assert got is bundle
    page = out.read_text(encoding="utf-8")
    assert "Shop &lt;analytics&gt;" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(bundle.results()) == 8
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page
    assert "https://" not in page
    assert "RFM groups" in page
    assert "Funnel" in page


def test_report_from_a_store_in_one_call(tmp_path) -> None:
    store = InMemoryStore()
    hist = sample_history()
    store.append_events([e for _, es in hist for e in es])
    out = tmp_path / "r.html"
    bundle = report.write_report(store, out, as_of=AS_OF, period="month")
    assert bundle.cohorts.period == "month"
    assert bundle.attribution.totals().members == 12
    assert out.stat().st_size > 10_000
    with pytest.raises(UsageError, match="as_of"):
        report.write_report(store, out)


def test_run_all_refuses_one_shot_iterators() -> None:
    with pytest.raises(UsageError, match="iterator"):
        analytics.run_all(iter(sample_history()), as_of=AS_OF)


def test_report_without_matplotlib_draws_inline_svg(tmp_path, bundle, monkeypatch) -> None:
    """A plain install (no matplotlib) still writes every chart: inline SVG, well-formed,
    labels escaped, and the same numbers as the result."""
    import xml.etree.ElementTree as ET

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert report.charts_available() == "svg"
    with pytest.raises(MissingExtraError, match=r"membermkt\[plot\]"):
        report.render_report(bundle, charts="png")
    out = tmp_path / "report.html"
    report.write_report(bundle, out, title="Shop <analytics>")
    page = out.read_text(encoding="utf-8")
    assert "data:image/png" not in page
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == len(bundle.results()) == 8
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML
    assert "http://" not in page
    assert "https://" not in page
    # the funnel bars carry the funnel's own counts
    funnel_svg = next(s for s in svgs if "Funnel" in s)
    for n in bundle.funnel.counts:
        assert f">{n:,}" in funnel_svg
    # the RFM grid holds every buyer
    rfm_svg = next(s for s in svgs if "RFM grid" in s)
    cells = [
        int(v.replace(",", "")) for v in re.findall(r'fill="(?:black|white)">([\d,]+)<', rfm_svg)
    ]
    assert sum(cells) == len(bundle.rfm)
    assert report.render_report(bundle, charts="svg") == report.render_report(bundle, charts="svg")
    with pytest.raises(UsageError, match="charts must be"):
        report.render_report(bundle, charts="gif")


def test_svg_escapes_labels_and_refuses_bad_shapes() -> None:
    from membermkt.analytics import svg

    out = svg.bars_svg("<t>", ["a&b", "<c>"], [1, 2])
    assert "&lt;t&gt;" in out
    assert "a&amp;b" in out
    assert "&lt;c&gt;" in out
    with pytest.raises(UsageError, match="as many labels"):
        svg.bars_svg("t", ["a"], [1, 2])
    with pytest.raises(UsageError, match="grid"):
        svg.grid_svg("t", ["r"], ["c1", "c2"], [[1.0]])
    with pytest.raises(UsageError, match="no chart"):
        svg.chart_svg(42)

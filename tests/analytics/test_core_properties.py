"""Algebraic properties of the pure analytics on random histories."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membermkt.core import analytics as an
from membermkt.core.analytics.paths import fold_page_rows
from membermkt.core.evaluate import compile_predicate
from membermkt.errors import UsageError

from ._data import AS_OF, DAY, histories

FUNNELS = st.sampled_from(
    [
        an.ACQUISITION_FUNNEL,
        an.Funnel.of(
            an.step("A", "menu_click", where={"key": "A"}),
            an.step("C", "menu_click", where={"key": "C"}, within=DAY),
            an.step("buy", "purchase"),
            an.step("again", "purchase", within=3 * DAY),
        ),
        an.Funnel.of(an.step("follow", "follow"), an.step("view", "view")),
    ]
)


@given(histories(), FUNNELS)
def test_funnel_counts_never_increase(hist, funnel) -> None:
    """Members per step are non-increasing, overall and in every group; groups sum up."""
    result = an.funnel(funnel, hist, as_of=AS_OF)
    for counts in (result.counts, *(c for _, c in result.groups)):
        assert all(a >= b for a, b in itertools.pairwise(counts))
    for i in range(len(result.steps)):
        assert sum(c[i] for _, c in result.groups) == result.counts[i]


@given(histories(), st.sampled_from([60, 1800, 10**6]), st.integers(2, 4))
def test_path_shares_sum_to_one(hist, gap, length) -> None:
    result = an.paths(hist, as_of=AS_OF, config=an.PathConfig(session_gap=gap, path_length=length))
    for targets in result.shares().values():
        assert math.isclose(sum(targets.values()), 1.0)
    for _, stats in result.dwell:
        assert sum(stats.histogram) == stats.count
        assert stats.p50 <= stats.p90 <= stats.max


@given(histories(), st.integers(2, 7), st.randoms(use_true_random=False))
def test_rfm_scores_bounded_and_order_invariant(hist, bins, rnd: random.Random) -> None:
    result = an.rfm(hist, as_of=AS_OF, bins=bins)
    for s in result.scores:
        assert 1 <= s.r <= bins
        assert 1 <= s.f <= bins
        assert 1 <= s.m <= bins
        assert s.group in {g.name for g in result.groups}
    shuffled = list(hist)
    rnd.shuffle(shuffled)
    shuffled = [(m, rnd.sample(es, len(es))) for m, es in shuffled]
    assert an.rfm(shuffled, as_of=AS_OF, bins=bins) == result


@given(histories(), st.integers(2, 7))
def test_rfm_bins_are_never_empty(hist, bins) -> None:
    """With at least ``bins`` buyers every score of every dimension is used, each by
    n // bins or n // bins + 1 buyers."""
    result = an.rfm(hist, as_of=AS_OF, bins=bins)
    n = len(result.scores)
    for dim in ("r", "f", "m"):
        counts = [0] * bins
        for s in result.scores:
            counts[getattr(s, dim) - 1] += 1
        if n >= bins:
            assert min(counts) >= 1, (dim, counts)
        assert all(c in {n // bins, n // bins + 1} for c in counts if c), (dim, counts)


@given(histories())
def test_rfm_better_value_never_scores_lower(hist) -> None:
    result = an.rfm(hist, as_of=AS_OF)
    for a in result.scores:
        for b in result.scores:
            if a.frequency > b.frequency:
                assert a.f >= b.f
            if a.monetary_fen > b.monetary_fen:
                assert a.m >= b.m
            if a.recency_days < b.recency_days:
                assert a.r >= b.r


@given(histories())
def test_activity_classes_partition_members(hist) -> None:
    """Exactly one activity segment holds for each member and it is activity_class."""
    preds = {c: compile_predicate(an.activity(c), AS_OF) for c in an.ACTIVITY_CLASSES}
    for member, events in hist:
        inside = [c for c, p in preds.items() if p(member, events)]
        assert inside == [an.activity_class(member, AS_OF, events=events)]


@given(histories())
def test_cohort_offset_zero_is_size(hist) -> None:
    for period in ("week", "month"):
        result = an.cohorts(hist, as_of=AS_OF, period=period)
        for row in result.rows:
            assert row.retained[0] == row.size
            assert all(0 <= r <= row.size for r in row.retained)


@given(histories())
def test_attribution_totals_match_members(hist) -> None:
    result = an.attribution(hist, as_of=AS_OF)
    tot = result.totals()
    assert tot.members == len(hist)
    assert tot.buyers == len(an.rfm(hist, as_of=AS_OF))


def _page_rows(hist, as_of):
    """(member, at_us, node, dwell) rows of ``hist``'s page events, as the SQLite runner
    streams them: sorted by member, time, node."""
    from membermkt.core.analytics.paths import PAGE_TYPES

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    rows = []
    for member, events in hist:
        for e in events:
            node = an.page_node(e)
            if e.type not in PAGE_TYPES or e.at_utc > as_of or node is None:
                continue
            d = e.properties.get("dwell_seconds")
            d = d if isinstance(d, int | float) and not isinstance(d, bool) else None
            rows.append((member.id, (e.at_utc - epoch) // dt.timedelta(microseconds=1), node, d))
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


@given(histories(), st.sampled_from([60, 1800, 10**6]), st.integers(2, 4))
def test_fold_page_rows_equals_paths(hist, gap, length) -> None:
    """The streamed fold of sorted page rows is the pure path analysis, exactly."""
    cfg = an.PathConfig(session_gap=gap, path_length=length)
    rows = _page_rows(hist, AS_OF)
    assert fold_page_rows(rows, config=cfg) == an.paths(hist, as_of=AS_OF, config=cfg)


def test_fold_page_rows_refuses_unsorted_rows() -> None:
    cfg = an.PathConfig()
    with pytest.raises(UsageError, match="member order"):
        fold_page_rows([("b", 1, "page:/x", None), ("a", 2, "page:/x", None)], config=cfg)
    with pytest.raises(UsageError, match="time order"):
        fold_page_rows([("a", 5, "page:/x", None), ("a", 2, "page:/x", None)], config=cfg)
    with pytest.raises(UsageError, match="time order"):
        fold_page_rows([("a", 5, "page:/y", None), ("a", 5, "page:/x", None)], config=cfg)

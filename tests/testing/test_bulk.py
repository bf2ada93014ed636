"""The column-wise generator: its fold equals the core fold, it is deterministic, its knobs
are checked, and its shape matches what it promises."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")

from membermkt import fold  # noqa: E402
from membermkt.errors import UsageError  # noqa: E402
from membermkt.testing.bulk import TYPES, BulkConfig, generate_columns  # noqa: E402


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(1, 300),
    epm=st.sampled_from([4.0, 8.5, 20.0]),
    days=st.integers(1, 400),
    wecom=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_folded_state_equals_the_core_fold(
    seed: int, n: int, epm: float, days: int, wecom: float
) -> None:
    cfg = BulkConfig(seed=seed, events_per_member=epm, days=days, wecom_share=wecom)
    pop = generate_columns(n, config=cfg)
    for i in range(n):
        member, events = pop.member_values(i)
        bare, _ = pop.member_values(i, with_state=False)
        assert fold(bare, events).state == member.state, member.id
        assert all(e.at < cfg.as_of for e in events)


def test_same_seed_same_columns_other_seed_other_columns() -> None:
    a, b = generate_columns(500, seed=3), generate_columns(500, seed=3)
    c = generate_columns(500, seed=4)
    for name in a.events:
        assert np.array_equal(a.events[name], b.events[name]), name
    assert not np.array_equal(a.events["at"][:100], c.events["at"][:100])
    assert list(a.members["openid"]) == list(b.members["openid"])


def test_events_sorted_by_member_then_time_and_mean_as_configured() -> None:
    pop = generate_columns(20_000, config=BulkConfig(seed=1, events_per_member=12))
    e = pop.events
    key = e["member"] * 10**17 + e["at"]
    assert np.all(np.diff(key) >= 0)
    assert 11.0 < pop.n_events / len(pop) < 13.0
    names = set(np.asarray(TYPES)[np.unique(e["type"])])
    assert {"follow", "menu_click", "view", "purchase", "contact_added", "unfollow"} <= names
    # menu habits: A is followed by C more often than by anything else
    menu = np.flatnonzero(e["type"] == TYPES.index("menu_click"))
    pairs = menu[:-1][np.diff(menu) >= 1]
    nxt = pairs + 1
    same = (e["member"][nxt] == e["member"][pairs]) & (e["type"][nxt] == e["type"][pairs])
    a_then = [
        e["props"][j]
        for j, s, p in zip(nxt, same, pairs, strict=True)
        if s and e["props"][p] == '{"key":"A"}'
    ]
    assert max(set(a_then), key=a_then.count) == '{"key":"C"}'


def test_empty_population() -> None:
    pop = generate_columns(0)
    assert len(pop) == 0
    assert pop.n_events == 0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"events_per_member": 2}, "events_per_member"),
        ({"days": 0}, "days"),
        ({"wecom_share": 1.5}, "wecom_share"),
        ({"as_of": dt.datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_config_is_named(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        BulkConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(UsageError, match="n must be"):
        generate_columns(-1)
    pop = generate_columns(3)
    with pytest.raises(UsageError, match="out of range"):
        pop.member_values(3)


def test_frames_hold_every_member_and_event() -> None:
    pytest.importorskip("pandas")
    pop = generate_columns(400, seed=2)
    members, events = pop.frames()
    assert len(members) == 400
    assert len(events) == pop.n_events
    assert members["id"].is_unique
    first, evs = pop.member_values(0)
    rows = events[events["member_id"] == first.id]
    assert list(rows["type"]) == [e.type for e in evs]
    assert rows["at"].iloc[0].to_pydatetime() == evs[0].at
    bought = events[events["type"] == "purchase"]
    assert bought["amount_fen"].notna().all()
    assert events[events["type"] != "purchase"]["amount_fen"].isna().all()
    assert int(members["orders_total_fen"].sum()) == int(bought["amount_fen"].sum())

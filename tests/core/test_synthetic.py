"""The synthetic population: deterministic, consistent with the fold, realistic enough."""

from __future__ import annotations

import collections
import itertools

import attrs

from membermkt import MemberState, fold
from membermkt.testing.synthetic import SOURCES, SyntheticConfig, generate, population


def test_same_seed_same_population_and_slices_agree():
    a = list(generate(300, seed=5))
    b = list(generate(300, seed=5))
    assert a == b
    assert list(generate(100, seed=5, start=200)) == a[200:]
    assert list(generate(50, seed=6)) != a[:50]


def test_generated_state_equals_the_fold_of_the_events():
    members, events = population(1500, seed=11)
    by_member = collections.defaultdict(list)
    for e in events:
        by_member[e.member_id].append(e)
    for m in members:
        assert fold(attrs.evolve(m, state=MemberState()), by_member[m.id]).state == m.state


def test_population_has_the_story_in_it():
    cfg = SyntheticConfig(seed=3)
    members, events = population(2000, config=cfg)
    assert all(e.at <= cfg.as_of for e in events)
    assert len({e.key for e in events}) == len(events)
    sources = collections.Counter(m.state.source for m in members)
    assert set(sources) == set(SOURCES)
    types = collections.Counter(e.type for e in events)
    for t in (
        "follow",
        "scan",
        "menu_click",
        "view",
        "purchase",
        "redpacket_claim",
        "contact_added",
        "unfollow",
        "message",
    ):
        assert types[t] > 0, t
    # menu habit: A is followed by C more often than by anything else
    clicks = collections.defaultdict(list)
    for e in sorted(events, key=lambda e: e.at):
        if e.type == "menu_click":
            clicks[e.member_id].append(e.properties["key"])
    after_a = collections.Counter(
        b for seq in clicks.values() for a, b in itertools.pairwise(seq) if a == "A"
    )
    assert after_a.most_common(1)[0][0] == "C"
    assert sum(1 for m in members if m.state.purchases.count >= 3) > 0


def test_generated_values_equal_validated_construction():
    """The generator skips validation for speed; rebuilding through the checked
    constructors must give equal values."""
    from membermkt import Event, Member

    for m, events in generate(300, seed=2):
        rebuilt = Member(
            m.id,
            m.profile,
            tags=m.tags,
            attributes=dict(m.attributes),
            identities=list(m.identities),
            state=m.state,
            consent=m.consent,
        )
        assert rebuilt == m
        for e in events:
            assert Event(e.member_id, e.type, e.at, dict(e.properties), key=e.key) == e

"""The identity graph: link rules, merges, the audit trail and splits (pure model)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membermkt.core.identity import (
    Evidence,
    Identity,
    IdentityGraph,
    IdentityKind,
    check_link,
    link,
)
from membermkt.errors import IdentityConflict, UsageError

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
OPENID = Identity.openid("wxapp", "o-1")
UNIONID = Identity.unionid("u-1")
PHONE = Identity.phone("13800138000")
BUYER = Identity.platform_buyer("tmall", "tb-1")
MINI = Identity.miniprogram_openid("wxmini", "mo-1")
EXT = Identity.external_userid("corp", "wm-1")


def test_new_kinds_need_their_namespace() -> None:
    with pytest.raises(UsageError, match="mini-program appid"):
        Identity(IdentityKind.MINIPROGRAM_OPENID, "x")
    with pytest.raises(UsageError, match="platform name"):
        Identity(IdentityKind.PLATFORM_BUYER, "x")
    with pytest.raises(UsageError, match="lowercase"):
        Identity.platform_buyer("Tmall", "x")
    keyed = Identity.phone("13800138000", key="secret", key_id="k1")
    assert keyed.namespace == "k1"
    assert keyed != Identity.phone("13800138000", key="secret")
    assert Identity.from_token(keyed.token) == keyed


@pytest.mark.parametrize(
    ("a", "b", "evidence"),
    [
        (OPENID, UNIONID, "unionid"),
        (MINI, UNIONID, "unionid"),
        (EXT, UNIONID, "unionid"),
        (PHONE, OPENID, "verified_phone"),
        (EXT, UNIONID, "wecom_pairing"),
        (EXT, OPENID, "wecom_pairing"),
        (BUYER, PHONE, "order_phone"),
    ],
)
def test_rules_accept_what_the_evidence_proves(a: Identity, b: Identity, evidence: str) -> None:
    assert check_link(link(a, b, evidence, T0)).evidence == Evidence(evidence)
    assert check_link(link(b, a, evidence, T0)).pair == (a, b) or (b, a)


@pytest.mark.parametrize(
    ("a", "b", "evidence"),
    [
        (OPENID, PHONE, "unionid"),
        (OPENID, MINI, "unionid"),
        (PHONE, Identity.phone("13900139000"), "verified_phone"),
        (OPENID, UNIONID, "wecom_pairing"),
        (BUYER, OPENID, "order_phone"),
        (OPENID, OPENID, "operator"),
    ],
)
def test_rules_refuse_what_the_evidence_does_not_prove(
    a: Identity, b: Identity, evidence: str
) -> None:
    with pytest.raises(IdentityConflict):
        link(a, b, evidence, T0, by="ops")


def test_operator_links_name_the_operator_and_unknown_evidence_is_refused() -> None:
    with pytest.raises(IdentityConflict, match="operator"):
        link(OPENID, BUYER, Evidence.OPERATOR, T0)
    assert link(OPENID, BUYER, Evidence.OPERATOR, T0, by="alice").by == "alice"
    with pytest.raises(UsageError, match="unknown link evidence"):
        link(OPENID, UNIONID, "hunch", T0)
    with pytest.raises(UsageError, match="timezone-aware"):
        link(OPENID, UNIONID, "unionid", dt.datetime(2026, 1, 1))


def test_link_creates_attaches_merges_and_is_idempotent() -> None:
    g = IdentityGraph()
    first = g.link(link(OPENID, UNIONID, "unionid", T0))
    assert first.created
    assert set(first.attached) == {OPENID, UNIONID}
    assert g.link(link(UNIONID, OPENID, "unionid", T0)).changed is False
    g.add("buyer", [BUYER, PHONE])
    merged = g.link(link(PHONE, OPENID, "verified_phone", T0, by="phoneform"))
    assert merged.merge is not None
    assert merged.member_id == min("buyer", first.member_id)
    assert g.members() == {merged.member_id: frozenset({OPENID, UNIONID, PHONE, BUYER})}
    (rec,) = g.merges()
    assert rec.link.by == "phoneform"
    assert rec.link.evidence is Evidence.VERIFIED_PHONE
    assert g.link(link(PHONE, OPENID, "verified_phone", T0)).changed is False


def test_claimed_evidence_attaches_but_never_merges() -> None:
    g = IdentityGraph({"a": [OPENID], "b": [PHONE]})
    with pytest.raises(IdentityConflict, match="cannot merge"):
        g.link(link(PHONE, OPENID, "claimed", T0))
    assert g.link(link(OPENID, BUYER, "claimed", T0)).attached == (BUYER,)
    assert g.members() == {"a": frozenset({OPENID, BUYER}), "b": frozenset({PHONE})}


def test_two_unionids_are_two_people() -> None:
    g = IdentityGraph({"a": [UNIONID, PHONE], "b": [Identity.unionid("u-2")]})
    with pytest.raises(IdentityConflict, match="two people"):
        g.link(link(Identity.unionid("u-2"), PHONE, "verified_phone", T0))
    g.link(link(OPENID, UNIONID, "unionid", T0))  # fine: attaches
    with pytest.raises(IdentityConflict):
        g.link(link(Identity.openid("wxapp", "o-2"), UNIONID, "unionid", T0))
    with pytest.raises(IdentityConflict, match="belongs to member"):
        g.add("c", [PHONE])


def test_split_restores_and_refuses_twice() -> None:
    g = IdentityGraph({"a": [OPENID, UNIONID], "b": [PHONE, BUYER]})
    before = g.members()
    out = g.link(link(PHONE, OPENID, "verified_phone", T0))
    assert out.merge is not None
    done = g.unmerge(out.merge.id, at=T0, by="ops")
    assert done.undone_by == "ops"
    assert g.members() == before
    with pytest.raises(UsageError, match="already undone"):
        g.unmerge(out.merge.id, at=T0, by="ops")
    with pytest.raises(UsageError, match="unknown merge"):
        g.unmerge("nope", at=T0, by="ops")


# --------------------------------------------------------------------------- property


def _person(n: int) -> dict[str, Identity]:
    return {
        "openid": Identity.openid("wxapp", f"o{n}"),
        "unionid": Identity.unionid(f"u{n}"),
        "phone": Identity.phone(f"1380013800{n}"),
        "buyer": Identity.platform_buyer("jd", f"b{n}"),
        "ext": Identity.external_userid("corp", f"e{n}"),
    }


_RULES = [
    ("openid", "unionid", "unionid"),
    ("ext", "unionid", "wecom_pairing"),
    ("phone", "openid", "verified_phone"),
    ("buyer", "phone", "order_phone"),
    ("ext", "openid", "wecom_pairing"),
]

links_st = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(_RULES), st.integers(0, 5)), max_size=20
)


def _partition(g: IdentityGraph) -> frozenset[frozenset[Identity]]:
    return frozenset(g.members().values())


@given(links_st, st.randoms(use_true_random=False))
def test_any_order_or_twice_gives_the_same_members(
    raw: list[tuple[int, tuple[str, str, str], int]], rnd: object
) -> None:
    made = [
        link(_person(p)[x], _person(p)[y], ev, T0 + dt.timedelta(minutes=m))
        for p, (x, y, ev), m in raw
    ]
    one = IdentityGraph()
    for lk in made:
        one.link(lk)
    shuffled = list(made)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    two = IdentityGraph()
    for lk in shuffled + shuffled:
        two.link(lk)
    assert _partition(one) == _partition(two)
    again = IdentityGraph()
    for lk in made + made:
        again.link(lk)
    assert again.members() == one.members()
    assert len(again.merges()) == len(one.merges())


@given(links_st, st.integers(0, 2))
def test_merge_then_split_restores(
    raw: list[tuple[int, tuple[str, str, str], int]], p: int
) -> None:
    g = IdentityGraph()
    for q, (x, y, ev), m in raw:
        g.link(link(_person(q)[x], _person(q)[y], ev, T0 + dt.timedelta(minutes=m)))
    g.add("imported", [Identity.platform_buyer("tmall", f"t{p}")])
    before = _partition(g)
    out = g.link(
        link(
            Identity.platform_buyer("tmall", f"t{p}"), _person(p)["openid"], "operator", T0, by="x"
        )
    )
    if out.merge is not None:
        g.unmerge(out.merge.id, at=T0, by="x")
        assert g.members()["imported"] == frozenset({Identity.platform_buyer("tmall", f"t{p}")})
        assert _partition(g) == before

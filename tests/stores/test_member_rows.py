"""The read hot path's member builder equals the checked one (and the member written)."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.core.members import Consent, Member
from membermkt.stores.sql._member_rows import MEMBER_READ_COLS, member_from_values
from membermkt.stores.sql._rows import (
    attribute_rows,
    fold_events_reference,
    member_from_rows,
    member_row,
)
from membermkt.testing import strategies as mst

_BOOLS = {"marketing", "subscribed", "wecom_contact"}


@given(
    mst.members(),
    st.lists(mst.events(), max_size=12),
    st.frozensets(st.sampled_from(["wechat.mass", "wecom.staff"])),
    st.booleans(),
)
def test_fast_member_build_equals_the_checked_one(
    m: Member, events: list[Event], opted_out: frozenset[str], ints: bool
) -> None:
    """``member_from_values`` (no validators) builds exactly what ``member_from_rows`` (every
    validator) builds from the same rows, which is the member that was written (state,
    relations and consent included); booleans may come back from the driver as 0/1."""
    m = attrs.evolve(
        m,
        state=fold_events_reference(events),
        consent=Consent(marketing=m.consent.marketing, opted_out_channels=opted_out),
    )
    row = member_row(m)
    if ints:
        row = {k: (int(v) if k in _BOOLS and v is not None else v) for k, v in row.items()}
    values = tuple(row[c] for c in MEMBER_READ_COLS)
    attr_dicts = attribute_rows(m)
    attr_rows: list[tuple[Any, ...]] = [
        (a["name"], a["kind"], a["s"], a["i"], a["n"]) for a in attr_dicts
    ]
    tokens = [i.token for i in reversed(m.identities)]
    fast = member_from_values(values, sorted(m.tags), attr_rows, tokens)
    checked = member_from_rows(row, sorted(m.tags), attr_dicts, tokens)
    assert fast == checked == m
    assert fast.identities == m.identities
    assert hash(fast) == hash(m)
    # 1 == True: equality alone would not notice an int where core code tests `is False`
    for got, want in (
        (fast.state.subscribed, m.state.subscribed),
        (fast.state.wecom_contact, m.state.wecom_contact),
        (fast.consent.marketing, m.consent.marketing),
    ):
        assert type(got) is type(want)

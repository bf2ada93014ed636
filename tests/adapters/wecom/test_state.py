"""The state codec: round trip, the 30-character limit, foreign states, doctests."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membermkt.channels.wecom import state as state_module
from membermkt.channels.wecom.state import STATE_MAX, ChannelState, decode_state, encode_state
from membermkt.errors import UsageError

ids = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=20)


@given(channel=ids, campaign=st.none() | ids)
def test_round_trip_or_refusal(channel: str, campaign: str | None):
    """Every pair either packs into ≤ 30 characters and decodes back, or is refused."""
    try:
        packed = encode_state(channel, campaign)
    except UsageError:
        assert len(channel) + (len(campaign) + 1 if campaign else 0) > STATE_MAX
        return
    assert len(packed) <= STATE_MAX
    assert decode_state(packed) == ChannelState(channel, campaign, packed)


@given(st.text(min_size=1, max_size=40))
def test_any_state_attributes_to_something(raw: str):
    """A state membermkt did not write still decodes to a channel (never an error)."""
    got = decode_state(raw)
    assert got is not None
    assert got.raw == raw
    if got.campaign is None:
        assert got.channel == raw


def test_limits_and_bad_ids():
    assert decode_state(None) is None
    assert decode_state("") is None
    with pytest.raises(UsageError):
        encode_state("a~b")
    with pytest.raises(UsageError):
        encode_state("店铺")
    assert len(encode_state("c" * 40, max_len=64)) == 40  # acquisition-link customer_channel


def test_doctests():
    assert doctest.testmod(state_module).failed == 0

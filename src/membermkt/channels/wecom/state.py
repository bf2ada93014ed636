"""The ``state`` codec: channel and campaign ids packed into a contact way's ``state``.

A contact way (「联系我」/ 渠道活码) carries a ``state`` of at most **30 characters**
(reference §3.6) that WeCom returns in the ``add_external_contact`` event and in the
customer's ``follow_user.state``; an acquisition link's ``customer_channel`` (≤ 64 bytes,
§3.9) comes back the same way. membermkt writes ``<channel>`` or ``<channel>~<campaign>``
there and reads it back as the member's acquisition ``source``.

Ids use ``[A-Za-z0-9_.:-]``; ``~`` separates them. A state membermkt did not write (set in
the admin console, or by another tool) decodes to ``channel = state`` unchanged, so every
state still attributes the customer to *something*.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from membermkt.errors import UsageError

__all__ = [
    "LINK_CHANNEL_MAX_BYTES",
    "STATE_MAX",
    "ChannelState",
    "decode_state",
    "encode_state",
]

STATE_MAX: Final = 30
"""Most characters of a contact way's ``state`` (reference §3.6)."""
LINK_CHANNEL_MAX_BYTES: Final = 64
"""Most bytes of an acquisition link's ``customer_channel`` (reference §3.9)."""

_ID = re.compile(r"[A-Za-z0-9_.:\-]+")
SEP: Final = "~"


@attrs.frozen(slots=True)
class ChannelState:
    """What a ``state`` says.

    Attributes:
        channel: the acquisition channel (the member's ``source``).
        campaign: the campaign id, if one was packed.
        raw: the state as WeCom returned it.
    """

    channel: str
    campaign: str | None = None
    raw: str = ""


def _check(value: str, what: str) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise UsageError(f"{what} {value!r} must be non-empty [A-Za-z0-9_.:-] (no '~')")


def encode_state(channel: str, campaign: str | None = None, *, max_len: int = STATE_MAX) -> str:
    """Pack ``channel`` (and ``campaign``) into a state of at most ``max_len`` characters.

    >>> encode_state("store-12", "spring26")
    'store-12~spring26'
    >>> decode_state("store-12~spring26").campaign
    'spring26'

    Raises:
        UsageError: for ids outside ``[A-Za-z0-9_.:-]`` or a result longer than ``max_len``
            (shorten the ids: WeCom refuses longer states).
    """
    _check(channel, "channel")
    state = channel
    if campaign is not None:
        _check(campaign, "campaign")
        state = f"{channel}{SEP}{campaign}"
    if len(state) > max_len:
        raise UsageError(
            f"state {state!r} is {len(state)} characters, over {max_len}: use shorter "
            "channel/campaign ids"
        )
    return state


def decode_state(state: str | None) -> ChannelState | None:
    """Read a state back (``None`` for an empty or missing state).

    A state that is not of membermkt's form is returned whole as the channel.
    """
    if not state:
        return None
    channel, sep, campaign = state.partition(SEP)
    if sep and _ID.fullmatch(channel) and _ID.fullmatch(campaign):
        return ChannelState(channel, campaign, state)
    return ChannelState(state, None, state)

"""Deterministic hash sampling: the :class:`Sample` leaf and the bucket hash family."""

from __future__ import annotations

import hashlib
from typing import ClassVar, Final

import attrs

from membermkt.core.segments._nodes import Segment
from membermkt.errors import SegmentError

BUCKETS: Final = 10_000
HASH_PRIME: Final = 2_147_483_647  # 2**31 - 1
"""The modulus of the sampling hash family. Products stay below 2**62, so SQL BIGINT
arithmetic on every dialect computes the same buckets as Python."""


def member_hash(member_id: str) -> int:
    """A stable hash of a member id in ``[0, 2**31 - 1)`` (stored by SQL stores)."""
    return int.from_bytes(hashlib.sha256(member_id.encode()).digest()[:8], "big") % HASH_PRIME


def salt_coefficients(salt: str) -> tuple[int, int]:
    """The (a, b) of the universal hash ``((a*h + b) mod p) mod 10000`` for ``salt``."""
    d = hashlib.sha256(b"membermkt-sample:" + salt.encode()).digest()
    a = int.from_bytes(d[:8], "big") % (HASH_PRIME - 1) + 1
    b = int.from_bytes(d[8:16], "big") % HASH_PRIME
    return a, b


def sample_bucket(member_id: str, salt: str) -> int:
    """The member's bucket (0..9999) for ``salt``: ``((a*h + b) mod p) mod 10000``."""
    a, b = salt_coefficients(salt)
    return ((a * member_hash(member_id) + b) % HASH_PRIME) % BUCKETS


@attrs.frozen(slots=True)
class Sample(Segment):
    """Deterministic hash sampling: about ``fraction`` of all members, always the same ones
    for the same ``salt`` (use a campaign id as salt for its holdout)."""

    fraction: float
    salt: str
    kind: ClassVar[str] = "sample"

    def __attrs_post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f <= 1.0:
            raise SegmentError(f"sample fraction must be between 0 and 1, got {f!r}")
        if not isinstance(self.salt, str) or len(self.salt) > 128:
            raise SegmentError(f"sample salt must be a str of ≤ 128 chars, got {self.salt!r}")

    @property
    def threshold(self) -> int:
        """Members whose bucket (0..9999) is below this are selected."""
        return round(self.fraction * BUCKETS)


def sample(fraction: float, salt: str = "") -> Sample:
    """About ``fraction`` (0..1) of members, chosen by a keyed hash of the member id."""
    return Sample(float(fraction), salt)

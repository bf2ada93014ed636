"""Amount strategies: fixed, uniform and "lucky" split packets (:func:`lucky_split`)."""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

import attrs

from membermkt.core.redpackets._base import _optional_positive, _positive
from membermkt.errors import UsageError


@runtime_checkable
class AmountStrategy(Protocol):
    """How much one granted claim receives."""

    @property
    def bounds(self) -> tuple[int, int]:
        """The smallest and largest amount this strategy can grant, in fen."""
        ...

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        """The amount of the next packet given what the rule has granted so far, or ``None``
        when the strategy has nothing left to give."""
        ...


@attrs.frozen(slots=True)
class FixedAmount:
    """Every packet is ``fen``."""

    fen: int = attrs.field(validator=_positive)

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.fen, self.fen)

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        return self.fen


@attrs.frozen(slots=True)
class UniformAmount:
    """A whole number of fen drawn uniformly in ``[min_fen, max_fen]`` (both inclusive).

    Raises:
        UsageError: unless ``1 <= min_fen <= max_fen``.
    """

    min_fen: int = attrs.field(validator=_positive)
    max_fen: int = attrs.field(validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.min_fen > self.max_fen:
            raise UsageError(f"UniformAmount: min_fen {self.min_fen} > max_fen {self.max_fen}")

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.min_fen, self.max_fen)

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        return rng.randint(self.min_fen, self.max_fen)


def _split_step(rng: random.Random, rest: int, parts: int, cap: int) -> int:
    """One step of the double-mean split of ``rest`` (above the minimum) over ``parts``.

    Returns ``x`` with ``0 <= x <= min(cap, rest)`` and ``rest - x <= (parts - 1) * cap``, so
    the remaining parts can always still be filled within their caps.
    """
    lo = max(0, rest - (parts - 1) * cap)
    hi = max(lo, min(cap, (2 * rest) // parts))
    return rng.randint(lo, hi)


def lucky_split(
    total_fen: int, parts: int, min_fen: int, rng: random.Random, *, max_fen: int | None = None
) -> tuple[int, ...]:
    """Cut ``total_fen`` into ``parts`` random whole-fen amounts ("lucky" / fission packets).

    The parts sum exactly to ``total_fen`` and each lies in ``[min_fen, max_fen]``
    (``max_fen`` defaults to no upper bound beyond the total). Each part is drawn with the
    "double mean" rule (uniform up to twice the mean of what is left), then the parts are
    shuffled so position carries no advantage.

    Raises:
        UsageError: when the bounds make the split impossible
            (``parts * min_fen > total_fen`` or ``parts * max_fen < total_fen``).
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise UsageError(f"lucky_split: parts must be a positive int, got {parts!r}")
    if isinstance(min_fen, bool) or not isinstance(min_fen, int) or min_fen < 1:
        raise UsageError(f"lucky_split: min_fen must be a positive int, got {min_fen!r}")
    cap_total = max_fen if max_fen is not None else total_fen
    if cap_total < min_fen:
        raise UsageError(f"lucky_split: max_fen {cap_total} < min_fen {min_fen}")
    if parts * min_fen > total_fen:
        raise UsageError(
            f"lucky_split: {parts} parts of at least {min_fen} fen need {parts * min_fen} fen, "
            f"more than the total {total_fen}"
        )
    if parts * cap_total < total_fen:
        raise UsageError(
            f"lucky_split: {parts} parts of at most {cap_total} fen cannot reach {total_fen}"
        )
    cap = cap_total - min_fen
    rest = total_fen - parts * min_fen
    out: list[int] = []
    for i in range(parts - 1):
        x = _split_step(rng, rest, parts - i, cap)
        out.append(min_fen + x)
        rest -= x
    out.append(min_fen + rest)
    rng.shuffle(out)
    return tuple(out)


@attrs.frozen(slots=True, kw_only=True)
class LuckySplit:
    """A total cut into ``parts`` packets of random size, each in ``[min_fen, max_fen]``.

    Claims draw one step of :func:`lucky_split` at a time from what the rule has not yet
    granted, so the first ``parts`` grants sum to ``total_fen`` exactly when claims arrive
    one after another. Concurrent claims can see the same "granted so far"; the rule's total
    budget (set it to ``total_fen``) still caps the money, and the cap on packets (set
    ``max_packets`` to ``parts``) caps the count.

    Raises:
        UsageError: when the bounds make the split impossible.
    """

    total_fen: int = attrs.field(validator=_positive)
    parts: int = attrs.field(validator=_positive)
    min_fen: int = attrs.field(validator=_positive)
    max_fen: int | None = attrs.field(default=None, validator=_optional_positive)

    def __attrs_post_init__(self) -> None:
        hi = self.bounds[1]
        if self.parts * self.min_fen > self.total_fen or self.parts * hi < self.total_fen:
            raise UsageError(
                f"LuckySplit: {self.parts} parts in [{self.min_fen}, {hi}] fen cannot sum to "
                f"{self.total_fen}"
            )

    @property
    def bounds(self) -> tuple[int, int]:
        hi = self.total_fen - (self.parts - 1) * self.min_fen
        if self.max_fen is not None:
            hi = min(hi, self.max_fen)
        return (self.min_fen, hi)

    def draw(self, rng: random.Random, *, granted_count: int, granted_fen: int) -> int | None:
        left_parts = self.parts - granted_count
        left_fen = self.total_fen - granted_fen
        if left_parts < 1 or left_fen < self.min_fen * left_parts:
            return None
        hi = self.bounds[1]
        if left_parts == 1:
            return left_fen if left_fen <= hi else hi
        cap = hi - self.min_fen
        rest = left_fen - left_parts * self.min_fen
        if rest > left_parts * cap:
            rest = left_parts * cap  # money left over by concurrent draws: stay within bounds
        return self.min_fen + _split_step(rng, rest, left_parts, cap)

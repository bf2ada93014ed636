"""The node base class, the constants and the combinators ``And`` / ``Or`` / ``Not``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import attrs

from membermkt.errors import SegmentError

JSON_VERSION: Final = 1
MAX_DEPTH: Final = 64
"""Deepest nesting accepted (by constructors and by ``from_json``)."""


class Segment:
    """Base of every segment node. Nodes are frozen attrs classes; combine them with
    ``&``, ``|`` and ``~``."""

    __slots__ = ()
    kind: ClassVar[str] = ""

    def __and__(self, other: Segment) -> Segment:
        return And.of(self, _check_segment(other))

    def __rand__(self, other: Segment) -> Segment:
        return And.of(_check_segment(other), self)

    def __or__(self, other: Segment) -> Segment:
        return Or.of(self, _check_segment(other))

    def __ror__(self, other: Segment) -> Segment:
        return Or.of(_check_segment(other), self)

    def __invert__(self) -> Segment:
        return Not.of(self)

    def __bool__(self) -> bool:
        raise SegmentError(
            "a segment has no truth value; combine segments with &, |, ~ (not and/or/not)"
        )

    def children(self) -> tuple[Segment, ...]:
        """Direct sub-segments (empty for leaves)."""
        return ()

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form: a dict with ``"version": 1`` at the root."""
        from membermkt.core.segjson import node_to_json

        out = {"version": JSON_VERSION}
        out.update(node_to_json(self))
        return out

    @staticmethod
    def from_json(obj: object) -> Segment:
        """Parse the JSON form (a dict, or a JSON string).

        Raises:
            SegmentError: naming the JSON path of the bad node and what was expected.
        """
        from membermkt.core.segjson import segment_from_json

        return segment_from_json(obj)

    def simplify(self) -> Segment:
        """An equivalent, normalised segment (see :func:`membermkt.core.simplify.simplify`)."""
        from membermkt.core.simplify import simplify

        return simplify(self)

    def depth(self) -> int:
        """Nesting depth (a leaf is 1)."""
        kids = self.children()
        return 1 + max((k.depth() for k in kids), default=0)


def _check_segment(obj: object) -> Segment:
    if not isinstance(obj, Segment):
        raise SegmentError(f"expected a segment, got {type(obj).__name__}: {obj!r}")
    return obj


@attrs.frozen(slots=True, repr=False)
class Const(Segment):
    """The constant segments :data:`TRUE` (everyone) and :data:`FALSE` (no one)."""

    value: bool
    kind: ClassVar[str] = "const"

    def __repr__(self) -> str:
        return "TRUE" if self.value else "FALSE"


TRUE: Final = Const(True)
FALSE: Final = Const(False)


def _to_parts(parts: Iterable[Segment]) -> tuple[Segment, ...]:
    out = tuple(parts)
    for p in out:
        _check_segment(p)
    return out


@attrs.frozen(slots=True)
class And(Segment):
    """All parts hold. Build with ``a & b`` or :meth:`And.of` (which flattens and folds)."""

    parts: tuple[Segment, ...] = attrs.field(converter=_to_parts)
    kind: ClassVar[str] = "and"

    def children(self) -> tuple[Segment, ...]:
        return self.parts

    @classmethod
    def of(cls, *parts: Segment) -> Segment:
        """Flatten nested ``And``s and fold constants (never changes meaning)."""
        return _flat(cls, parts, unit=TRUE, zero=FALSE)


@attrs.frozen(slots=True)
class Or(Segment):
    """Any part holds. Build with ``a | b`` or :meth:`Or.of` (which flattens and folds)."""

    parts: tuple[Segment, ...] = attrs.field(converter=_to_parts)
    kind: ClassVar[str] = "or"

    def children(self) -> tuple[Segment, ...]:
        return self.parts

    @classmethod
    def of(cls, *parts: Segment) -> Segment:
        """Flatten nested ``Or``s and fold constants (never changes meaning)."""
        return _flat(cls, parts, unit=FALSE, zero=TRUE)


def _flat(
    cls: type[And] | type[Or], parts: tuple[Segment, ...], *, unit: Const, zero: Const
) -> Segment:
    # shared by And.of / Or.of: splice nested same-kind nodes, drop the unit, stop at zero
    flat: list[Segment] = []
    for p in parts:
        _check_segment(p)
        if isinstance(p, cls):
            flat.extend(p.parts)
        elif p == zero:
            return zero
        elif p != unit:
            flat.append(p)
    if not flat:
        return unit
    if len(flat) == 1:
        return flat[0]
    return _depth_checked(cls(tuple(flat)))


@attrs.frozen(slots=True)
class Not(Segment):
    """The complement: exactly the members the part does not select."""

    part: Segment = attrs.field(validator=lambda _i, _a, v: _check_segment(v))
    kind: ClassVar[str] = "not"

    def children(self) -> tuple[Segment, ...]:
        return (self.part,)

    @classmethod
    def of(cls, part: Segment) -> Segment:
        """Negate, folding constants and double negation (never changes meaning)."""
        _check_segment(part)
        if isinstance(part, Const):
            return FALSE if part.value else TRUE
        if isinstance(part, Not):
            return part.part
        return _depth_checked(cls(part))


def _depth_checked(node: Segment) -> Segment:
    if node.depth() > MAX_DEPTH:
        raise SegmentError(f"segment nested deeper than {MAX_DEPTH} levels")
    return node

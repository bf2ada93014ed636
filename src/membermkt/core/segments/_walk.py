"""Traversal helpers over segment trees."""

from __future__ import annotations

from collections.abc import Iterator

from membermkt.core.segments._cmp import Cmp
from membermkt.core.segments._nodes import Segment


def walk(segment: Segment) -> Iterator[Segment]:
    """Every node of the tree, parents before children."""
    stack: list[Segment] = [segment]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def from_json(obj: object) -> Segment:
    """Parse a segment's JSON form (same as :meth:`Segment.from_json`)."""
    return Segment.from_json(obj)


def fields_used(segment: Segment) -> frozenset[str]:
    """Names of all fields compared anywhere in the segment."""
    return frozenset(n.field for n in walk(segment) if isinstance(n, Cmp))

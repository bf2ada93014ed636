"""A small immutable, hashable mapping used for member attributes and event properties."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from membermkt.errors import UsageError

__all__ = ["FrozenMap", "Scalar", "check_scalar"]

K = TypeVar("K")
V = TypeVar("V")

Scalar = str | int | float | bool
"""The value types allowed in member attributes and event properties."""


class FrozenMap(Mapping[K, V]):
    """An immutable mapping that hashes and compares by content (like a frozen dict).

    Iteration order is insertion order of the source mapping (stable for equal inputs built
    the same way); equality and hash ignore order.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data) if data else {}
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def to_dict(self) -> dict[K, V]:
        """A plain mutable copy."""
        return dict(self._data)


def check_scalar(owner: str, name: object, value: object) -> None:
    """Validate one attribute/property item: str key, str/int/float/bool value, finite floats.

    Raises:
        UsageError: naming ``owner`` and the offending key.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"{owner} keys must be non-empty str, got {name!r}")
    if not isinstance(value, str | int | float | bool):
        raise UsageError(
            f"{owner}[{name!r}] must be str, int, float or bool, got {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{owner}[{name!r}] must be a finite number, got {value!r}")

"""The bulk generator's vocabulary, its configuration and the population it returns."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from membermkt.errors import UsageError
from membermkt.testing.synthetic import SOURCES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from membermkt.core.events import Event
    from membermkt.core.members import Member

TYPES: tuple[str, ...] = (
    "scan",
    "follow",
    "redpacket_claim",
    "menu_click",
    "view",
    "purchase",
    "message",
    "contact_added",
    "unfollow",
)
"""The event types the bulk generator makes; ``BulkPopulation.events["type"]`` holds their
index in this tuple."""
SCAN, FOLLOW, REDPACKET, MENU, VIEW, PURCHASE, MESSAGE, CONTACT, UNFOLLOW = range(len(TYPES))
STAFF: tuple[str, ...] = tuple(f"clerk{i:02d}" for i in range(1, 13))
"""The WeCom clerks; ``BulkPopulation.events["staff"]`` holds an index into it (-1: none)."""
EVENT_SOURCES: tuple[str, ...] = (*SOURCES, *(f"wecom-{s}" for s in SOURCES))
"""Acquisition sources of events; ``BulkPopulation.events["source"]`` holds an index into it
(-1: none)."""
_US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BASE_EVENTS = 2.9
"""Events per member besides sessions and orders (scan, follow, red packets, messages,
WeCom contacts and their messages, unfollows), on average."""


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - numpy comes with the extras
        raise UsageError(
            "membermkt.testing.bulk needs numpy: pip install 'membermkt[pandas]'"
        ) from exc
    return numpy


@attrs.frozen(kw_only=True)
class BulkConfig:
    """Knobs of the bulk generator.

    Attributes:
        seed: the random seed (same seed and size → same columns, under one numpy version).
        as_of: the "now" of the population; every event is strictly earlier.
        days: how far back follows go.
        events_per_member: the mean number of events per member (at least 4); menu sessions
            and orders grow with it, the rest of the story keeps its rates.
        appid / corpid: namespaces of the openids / external_userids.
        wecom_share: fraction of members also added by a WeCom clerk.
        unfollow_share: fraction who unfollow later.
    """

    seed: int = 0
    as_of: dt.datetime = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
    days: int = 180
    events_per_member: float = 8.5
    appid: str = "wxdemo000000000001"
    corpid: str = "wwdemo000000000001"
    wecom_share: float = 0.3
    unfollow_share: float = 0.12

    def __attrs_post_init__(self) -> None:
        if self.as_of.utcoffset() is None:
            raise UsageError("BulkConfig.as_of must be timezone-aware")
        if self.days < 1:
            raise UsageError(f"BulkConfig.days must be >= 1, got {self.days}")
        if not 4 <= self.events_per_member <= 10_000:
            raise UsageError(
                f"BulkConfig.events_per_member must be in [4, 10000], got {self.events_per_member}"
            )
        for name in ("wecom_share", "unfollow_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise UsageError(f"BulkConfig.{name} must be in [0, 1], got {share}")


@attrs.frozen(eq=False)
class BulkPopulation:
    """A population as columns (numpy arrays, one entry per member or per event).

    Attributes:
        config: the :class:`BulkConfig` it was drawn with.
        ids: member ids (``m0000000`` …), an object array.
        members: profile and identity columns per member — ``gender``, ``city``,
            ``province``, ``birthday`` (proleptic ordinal, ``-1`` for none),
            ``income_band``, ``openid``, ``external_userid`` (``None`` when not a WeCom
            contact), ``member_level`` and ``platform`` attributes, ``tags`` (a
            comma-joined string).
        events: event columns sorted by member then time — ``member`` (index into
            ``ids``), ``type`` (index into :data:`TYPES`), ``at`` (µs since the epoch),
            ``props`` (the JSON text the SQL store keeps), ``amount_fen`` (``-1`` unless a
            purchase), ``source``, ``staff`` (object arrays, ``None`` where absent),
            ``outbound`` (bool).
        state: the members' folded state, column per ``STATE_COLS`` name of the SQL store
            (integers in µs, ``None`` where absent) — what folding their events gives.
    """

    config: BulkConfig
    ids: Any
    members: dict[str, Any]
    events: dict[str, Any]
    state: dict[str, Any]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_events(self) -> int:
        """The number of events."""
        return len(self.events["at"])

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The members (profile, identities and folded state) and the events as two pandas
        data frames, times as timezone-aware UTC timestamps — for a notebook or DuckDB.

        Raises:
            UsageError: when pandas is not installed.
        """
        try:
            import pandas
        except ImportError as exc:  # pragma: no cover - pandas comes with the extras
            raise UsageError("BulkPopulation.frames needs pandas: pip install pandas") from exc
        np = _numpy()
        m = {"id": self.ids, **{k: v for k, v in self.members.items() if k != "birthday"}}
        bday = self.members["birthday"]
        m["birthday"] = pandas.Series(
            [None if b < 0 else dt.date.fromordinal(b) for b in bday.tolist()], dtype=object
        )
        for name, col in self.state.items():
            if name.endswith("_at"):
                m[name] = pandas.to_datetime(pandas.array(col, dtype="Int64"), unit="us", utc=True)
            else:
                m[name] = col
        e = self.events
        events = pandas.DataFrame(
            {
                "member_id": self.ids[e["member"]],
                "type": np.asarray(TYPES, dtype=object)[e["type"]],
                "at": pandas.to_datetime(e["at"], unit="us", utc=True),
                "props": e["props"],
                "amount_fen": pandas.Series(e["amount_fen"], dtype="Int64").mask(
                    e["amount_fen"] < 0
                ),
                "source": _names(np, EVENT_SOURCES, e["source"]),
                "staff": _names(np, STAFF, e["staff"]),
                "outbound": e["outbound"],
            }
        )
        return pandas.DataFrame(m), events

    def member_values(self, index: int, *, with_state: bool = True) -> tuple[Member, list[Event]]:
        """Member ``index`` and its events as validated core values (slow: for tests,
        samples and small populations). ``with_state=False`` leaves the member's state
        empty, as a store expects before it folds the events itself.

        Raises:
            UsageError: for an index out of range.
        """
        if not 0 <= index < len(self.ids):
            raise UsageError(f"member index {index} out of range (0..{len(self.ids) - 1})")
        from membermkt.testing.bulk._values import _member_values

        return _member_values(self, index, with_state)

    def iter_values(self, *, with_state: bool = True) -> Iterator[tuple[Member, list[Event]]]:
        """Every member with its events as core values (slow; see :meth:`member_values`)."""
        from membermkt.testing.bulk._values import _member_values

        for i in range(len(self.ids)):
            yield _member_values(self, i, with_state)


def _weighted(rng: Any, n: int, weights: Sequence[float]) -> Any:
    np = _numpy()
    cum = np.cumsum(np.asarray(weights, dtype=float))
    cum /= cum[-1]
    return np.searchsorted(cum, rng.random(n), side="right").clip(0, len(weights) - 1)


def _props_table(items: Sequence[str]) -> Any:
    np = _numpy()
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def _dump(d: Any) -> str:
    # the SQL store's encoding of event properties: compact, insertion order, non-ASCII kept
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def _names(np: Any, names: Sequence[str], codes: Any) -> Any:
    """``names[code]`` per code, ``None`` for -1."""
    return np.asarray([*names, None], dtype=object)[np.where(codes < 0, len(names), codes)]


def _nullable(np: Any, values: Any, present: Any) -> Any:
    out = np.full(len(values), None, dtype=object)
    out[present] = values[present].tolist()
    return out

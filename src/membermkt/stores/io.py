"""Import and export members and events: CSV files and (extra ``pandas``) DataFrames.

The "move members into your own CRM" path, and the way in from a spreadsheet. Every store
with ``iter_members()`` / ``iter_events()`` (both built-in stores) can be exported.

Member columns: ``id, gender, city, province, country, birthday`` (ISO date),
``income_band, tier, tags`` (JSON list), ``attributes`` (JSON object — keeps int / float /
bool / str apart), ``identities`` (JSON list of ``kind:namespace:value`` tokens),
``marketing`` (true/false), ``opted_out_channels`` (JSON list), then read-only state columns
(``subscribed, source, last_active_at, orders_count, orders_total_fen, first_order_at,
last_order_at, wecom_contact``) that exports carry and imports ignore (state is folded
from events).

Event columns: ``member_id, type, at`` (ISO 8601 with a UTC offset), ``key``,
``properties`` (JSON object).

Imports never stop at a bad row: each bad row is reported with its row number and the
reason, and every good row is written (:class:`ImportReport`).
"""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import attrs

from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Consent, Member, Profile
from membermkt.core.ports import EventLog, MemberStore
from membermkt.errors import IdentityConflict, MembermktError, PhoneKeyRequired, UsageError
from membermkt.stores._upsert import SHARED_IDENTITY_POLICIES as _POLICIES

__all__ = [
    "EVENT_COLUMNS",
    "MEMBER_COLUMNS",
    "SHARED_IDENTITY_POLICIES",
    "ImportReport",
    "RowError",
    "events_from_dataframe",
    "events_to_dataframe",
    "export_events_csv",
    "export_members_csv",
    "import_events_csv",
    "import_members_csv",
    "members_from_dataframe",
    "members_to_dataframe",
    "neutralise_cell",
]

MEMBER_COLUMNS = (
    "id",
    "gender",
    "city",
    "province",
    "country",
    "birthday",
    "income_band",
    "tier",
    "tags",
    "attributes",
    "identities",
    "marketing",
    "opted_out_channels",
)
"""Member columns read on import (only ``id`` is required)."""

STATE_COLUMNS = (
    "subscribed",
    "source",
    "last_active_at",
    "orders_count",
    "orders_total_fen",
    "first_order_at",
    "last_order_at",
    "wecom_contact",
)
"""Read-only member columns written on export (ignored on import)."""

EVENT_COLUMNS = ("member_id", "type", "at", "key", "properties")
"""Event columns (``member_id``, ``type`` and ``at`` are required)."""

_BATCH = 1000
T = TypeVar("T")


class Exportable(Protocol):
    """A store that can list everything it holds and read a member's events (both built-in
    stores; ``events_for`` is read only for an export ``as_of`` a past time)."""

    def iter_members(self) -> Iterator[Member]: ...

    def iter_events(self) -> Iterator[Event]: ...

    def events_for(self, member_id: str, *, until: dt.datetime | None = None) -> list[Event]: ...


@attrs.frozen(slots=True)
class RowError:
    """A row that could not be imported.

    Attributes:
        row: the row number — the line number in a CSV file (the header is line 1), the
            index label in a DataFrame.
        reason: what was wrong.
    """

    row: int | str
    reason: str


@attrs.frozen(slots=True, kw_only=True)
class ImportReport:
    """What an import did.

    Attributes:
        read: rows read.
        written: members upserted / events newly stored (duplicates by key not counted).
        errors: the rows refused, in order.
    """

    read: int = 0
    written: int = 0
    errors: tuple[RowError, ...] = ()

    @property
    def ok(self) -> bool:
        """No row was refused."""
        return not self.errors


# --------------------------------------------------------------------------- parsing


def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    try:  # pandas NA / NaT
        import pandas as pd

        return bool(pd.isna(v)) if not isinstance(v, list | dict | tuple) else False
    except (ImportError, TypeError, ValueError):
        return False


def _text(rec: Mapping[str, Any], name: str) -> str | None:
    v = rec.get(name)
    if _missing(v):
        return None
    if not isinstance(v, str):
        raise UsageError(f"{name}: expected text, got {v!r}")
    return v


def _json(rec: Mapping[str, Any], name: str, kind: type[T]) -> T | None:
    v = rec.get(name)
    if isinstance(v, kind):
        return v
    if _missing(v):
        return None
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{name}: not valid JSON ({exc.msg})") from None
        if isinstance(parsed, kind):
            return parsed
    expected = "a JSON list" if kind is list else "a JSON object"
    raise UsageError(f"{name}: expected {expected}, got {v!r}")


def _date(rec: Mapping[str, Any], name: str) -> dt.date | None:
    v: Any = rec.get(name)
    if _missing(v):
        return None
    if isinstance(v, dt.datetime) or hasattr(v, "to_pydatetime"):
        d: dt.date = v.date()
        return d
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v).strip())
    except ValueError:
        raise UsageError(f"{name}: not an ISO date (YYYY-MM-DD): {v!r}") from None


def _instant(rec: Mapping[str, Any], name: str) -> dt.datetime:
    v: Any = rec.get(name)
    if _missing(v):
        raise UsageError(f"{name}: missing")
    if hasattr(v, "to_pydatetime"):
        v = v.to_pydatetime()
    if not isinstance(v, dt.datetime):
        try:
            v = dt.datetime.fromisoformat(str(v).strip())
        except ValueError:
            raise UsageError(f"{name}: not an ISO 8601 time: {v!r}") from None
    if v.utcoffset() is None:
        raise UsageError(f"{name}: time has no UTC offset: {v!r} (write e.g. +08:00 or Z)")
    out: dt.datetime = v
    return out


def _bool(rec: Mapping[str, Any], name: str, default: bool) -> bool:
    v = rec.get(name)
    if _missing(v):
        return default
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "y", "t"):
        return True
    if s in ("false", "0", "no", "n", "f"):
        return False
    raise UsageError(f"{name}: expected true/false, got {v!r}")


def member_from_record(rec: Mapping[str, Any]) -> Member:
    """A :class:`Member` from one import record (CSV strings or native values).

    Raises:
        UsageError: naming the column that is wrong.
    """
    mid = _text(rec, "id")
    if mid is None:
        raise UsageError("id: missing")
    tags = _json(rec, "tags", list) or []
    attributes = _json(rec, "attributes", dict) or {}
    tokens = _json(rec, "identities", list) or []
    opted = _json(rec, "opted_out_channels", list) or []
    profile = Profile(
        gender=_text(rec, "gender"),
        city=_text(rec, "city"),
        province=_text(rec, "province"),
        country=_text(rec, "country"),
        birthday=_date(rec, "birthday"),
        income_band=_text(rec, "income_band"),
        tier=_text(rec, "tier"),
    )
    identities = []
    for tok in tokens:
        if not isinstance(tok, str):
            raise UsageError(f"identities: expected identity tokens, got {tok!r}")
        identities.append(Identity.from_token(tok))
    return Member(
        mid,
        profile,
        tags,
        attributes,
        identities,
        consent=Consent(marketing=_bool(rec, "marketing", True), opted_out_channels=opted),
    )


def event_from_record(rec: Mapping[str, Any]) -> Event:
    """An :class:`Event` from one import record.

    Raises:
        UsageError: naming the column that is wrong.
    """
    mid = _text(rec, "member_id")
    etype = _text(rec, "type")
    if mid is None:
        raise UsageError("member_id: missing")
    if etype is None:
        raise UsageError("type: missing")
    props = _json(rec, "properties", dict) or {}
    return Event(mid, etype, _instant(rec, "at"), props, key=_text(rec, "key"))


def _iso(v: dt.datetime | None) -> str:
    return "" if v is None else v.astimezone(dt.UTC).isoformat()


def _dump(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def member_record(m: Member) -> dict[str, Any]:
    """The export record of a member (CSV-ready strings)."""
    p, s = m.profile, m.state
    return {
        "id": m.id,
        "gender": p.gender or "",
        "city": p.city or "",
        "province": p.province or "",
        "country": p.country or "",
        "birthday": p.birthday.isoformat() if p.birthday else "",
        "income_band": p.income_band or "",
        "tier": p.tier or "",
        "tags": _dump(sorted(m.tags)),
        "attributes": _dump(m.attributes.to_dict()),
        "identities": _dump([i.token for i in m.identities]),
        "marketing": "true" if m.consent.marketing else "false",
        "opted_out_channels": _dump(sorted(m.consent.opted_out_channels)),
        "subscribed": "" if s.subscribed is None else str(s.subscribed).lower(),
        "source": s.source or "",
        "last_active_at": _iso(s.last_active_at),
        "orders_count": s.purchases.count,
        "orders_total_fen": s.purchases.total_fen,
        "first_order_at": _iso(s.purchases.first_at),
        "last_order_at": _iso(s.purchases.last_at),
        "wecom_contact": "" if s.wecom_contact is None else str(s.wecom_contact).lower(),
    }


def event_record(e: Event) -> dict[str, Any]:
    """The export record of an event (CSV-ready strings)."""
    return {
        "member_id": e.member_id,
        "type": e.type,
        "at": _iso(e.at),
        "key": e.key or "",
        "properties": _dump(e.properties.to_dict()),
    }


# --------------------------------------------------------------------------- writing


SHARED_IDENTITY_POLICIES = _POLICIES
"""What an import does with a member listing an identity another member holds: ``"report"``
the row as a conflict (nothing written for it), or ``"merge"`` the two members (an
``operator`` link by ``"import"``, in the store's merge audit trail). An identity is never
silently moved from one member to another (the stores' ``upsert_members`` contract, see
:mod:`membermkt.stores._upsert`)."""


def _check_policy(policy: str) -> str:
    if policy not in SHARED_IDENTITY_POLICIES:
        raise UsageError(
            f"on_shared_identity must be one of {SHARED_IDENTITY_POLICIES}, got {policy!r}"
        )
    return policy


def _write_members(
    store: MemberStore,
    records: Iterable[tuple[int | str, Mapping[str, Any]]],
    on_shared_identity: str = "report",
) -> ImportReport:
    policy = _check_policy(on_shared_identity)
    native = "on_shared_identity" in inspect.signature(store.upsert_members).parameters

    def parse(rec: Mapping[str, Any]) -> Member:
        return member_from_record(rec)

    def write(batch: Sequence[Member]) -> int:
        if native:  # the store applies the policy itself, in its transaction
            if policy == "report":  # a conflict fails the batch; _run retries row by row
                return store.upsert_members(batch)
            up: Any = store.upsert_members
            n: int = up(batch, on_shared_identity="merge", at=dt.datetime.now(dt.UTC), by="import")
            return n
        seen: dict[str, str] = {}
        clean: list[Member] = []
        shared: list[Member] = []
        for m in batch:
            others = {store.resolve(i) for i in m.identities} | {
                seen.get(i.token) for i in m.identities
            }
            (shared if others - {None, m.id} else clean).append(m)
            for i in m.identities:
                seen.setdefault(i.token, m.id)
        n = store.upsert_members(clean) if clean else 0
        for m in shared:
            n += _write_shared(store, m, policy)
        return n

    return _run(records, parse, write)


def _write_shared(store: MemberStore, m: Member, policy: str) -> int:
    owned = [(i, o) for i in m.identities if (o := store.resolve(i)) not in (None, m.id)]
    if policy == "report":
        ident, owner = owned[0]
        raise IdentityConflict(
            f"identity {ident.token!r} belongs to member {owner!r}; not moved to {m.id!r} "
            "(import with on_shared_identity='merge' to merge them)",
            members=(str(owner), m.id),
        )
    held = {i for i, _ in owned}
    own = [i for i in m.identities if i not in held]
    store.upsert_members([attrs.evolve(m, identities=own)])
    link = getattr(store, "link", None)
    current = m.id
    for ident, _owner in owned:
        holder = store.resolve(ident)
        if holder is None or holder == current:
            continue
        if own and link is not None:
            current = link(
                ident, own[0], "operator", dt.datetime.now(dt.UTC), by="import"
            ).member_id
        else:
            keep, drop = sorted((holder, current))
            store.merge_members(keep, drop)
            current = keep
    return 1


def _write_events(
    store: EventLog, records: Iterable[tuple[int | str, Mapping[str, Any]]]
) -> ImportReport:
    return _run(records, event_from_record, store.append_events)


def _run(
    records: Iterable[tuple[int | str, Mapping[str, Any]]],
    parse: Any,
    write: Any,
) -> ImportReport:
    read = written = 0
    errors: list[RowError] = []
    batch: list[tuple[int | str, Any]] = []

    def flush() -> None:
        nonlocal written
        if not batch:
            return
        try:
            written += write([v for _, v in batch])
        except PhoneKeyRequired:
            raise  # the store's configuration, not a row: stop (re-running is idempotent)
        except UsageError:
            # find the bad rows one by one; the good ones are still written
            for row, v in batch:
                try:
                    written += write([v])
                except UsageError as exc:
                    errors.append(RowError(row, str(exc)))
        batch.clear()

    for row, rec in records:
        read += 1
        try:
            batch.append((row, parse(rec)))
        except (MembermktError, ValueError, TypeError) as exc:
            errors.append(RowError(row, str(exc)))
            continue
        if len(batch) >= _BATCH:
            flush()
    flush()
    errors.sort(key=lambda e: (isinstance(e.row, str), e.row))
    return ImportReport(read=read, written=written, errors=tuple(errors))


# --------------------------------------------------------------------------- CSV


def _open_read(source: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if isinstance(source, str | Path):
        return open(source, newline="", encoding="utf-8-sig"), True
    return source, False


def _open_write(target: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if isinstance(target, str | Path):
        return open(target, "w", newline="", encoding="utf-8"), True
    return target, False


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet cannot run: text starting like a formula (``=``,
    ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'`` (OWASP's CSV-injection
    advice); other values are returned unchanged. :func:`import_members_csv` and
    :func:`import_events_csv` remove that quote again."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _restore_cell(value: Any) -> Any:
    if (
        isinstance(value, str)
        and len(value) > 1
        and value[0] == "'"
        and value[1:].startswith(_FORMULA_START)
    ):
        return value[1:]
    return value


def _safe_row(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: neutralise_cell(v) for k, v in rec.items()}


def _csv_records(
    f: IO[str], required: Sequence[str]
) -> Iterator[tuple[int | str, Mapping[str, Any]]]:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    lacking = [c for c in required if c not in header]
    if lacking:
        raise UsageError(f"CSV header lacks required column(s) {lacking}; it has {header}")
    for rec in reader:
        yield reader.line_num, {k: _restore_cell(v) for k, v in rec.items()}


def import_members_csv(
    store: MemberStore, source: str | Path | IO[str], *, on_shared_identity: str = "report"
) -> ImportReport:
    """Upsert members from a CSV file (see the module docs for the columns).

    Args:
        store: any :class:`~membermkt.core.ports.MemberStore`.
        source: a path or an open text file.
        on_shared_identity: ``"report"`` a row listing an identity another member holds as
            a conflict, or ``"merge"`` the two members (see
            :data:`SHARED_IDENTITY_POLICIES`); never a silent move.

    Returns:
        An :class:`ImportReport`; bad rows are listed with their line number and reason,
        good rows are written.

    Raises:
        UsageError: when the header lacks the ``id`` column.
        PhoneKeyRequired: when the store refuses the file's phone identities for want of
            their key (the import stops; rows of earlier batches stay written).
        StoreError: when the store fails.
    """
    f, close = _open_read(source)
    try:
        return _write_members(store, _csv_records(f, ("id",)), on_shared_identity)
    finally:
        if close:
            f.close()


def import_events_csv(store: EventLog, source: str | Path | IO[str]) -> ImportReport:
    """Append events from a CSV file (de-duplicated by ``key`` as always).

    Raises:
        UsageError: when the header lacks ``member_id``, ``type`` or ``at``.
        StoreError: when the store fails.
    """
    f, close = _open_read(source)
    try:
        return _write_events(store, _csv_records(f, ("member_id", "type", "at")))
    finally:
        if close:
            f.close()


from membermkt.stores._io_csv_export import (  # noqa: E402  (re-exported: public import path)
    export_events_csv,
    export_members_csv,
)
from membermkt.stores._io_frames import (  # noqa: E402  (re-exported: public import path)
    events_from_dataframe,
    events_to_dataframe,
    members_from_dataframe,
    members_to_dataframe,
)

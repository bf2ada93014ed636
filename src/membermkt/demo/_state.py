"""The demo's working directory: the state file that makes a second run resume, and the
row counts of its database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from membermkt.errors import UsageError


def table_counts(store: Any) -> dict[str, int]:
    """Rows per table of a :class:`~membermkt.stores.SqlStore` (members, identities, tags,
    events, deliveries, budgets, payouts), read through a short-lived engine of its own."""
    import sqlalchemy as sa

    engine = sa.create_engine(store.url)
    try:
        t = store.tables
        out = {}
        with engine.connect() as conn:
            for name in (
                "members",
                "identities",
                "tags",
                "events",
                "deliveries",
                "budgets",
                "payouts",
            ):
                table = getattr(t, name)
                out[name] = int(
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
        return out
    finally:
        engine.dispose()


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a demo state file ({exc}); use --fresh") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a demo state file; use --fresh")
    return data


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)

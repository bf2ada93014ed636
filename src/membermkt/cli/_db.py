"""``membermkt db init|stats``: create the schema, count rows."""

from __future__ import annotations

import argparse
import json

from membermkt.cli._base import EXIT_OK, _add_db, _Commands, _db_url, _out, _store


def _cmd_db_init(args: argparse.Namespace) -> int:
    with _store(args) as store:
        _out(f"schema version {store.schema_version()} ready in {_db_url(args)}")
    return EXIT_OK


def _cmd_db_stats(args: argparse.Namespace) -> int:
    from membermkt.demo import table_counts

    with _store(args, create=False) as store:
        counts = table_counts(store)
        if args.json:
            _out(json.dumps(counts, sort_keys=True))
        else:
            width = max(len(k) for k in counts)
            for k, v in counts.items():
                _out(f"{k:<{width}}  {v:>12,}")
    return EXIT_OK


def _register(c: _Commands) -> None:
    """Add the ``db`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
    g = grp("db", "Create the schema or count what a database holds.")
    p = cmd(g, "init", "Create (or upgrade) the membermkt tables.", _cmd_db_init)
    _add_db(p)
    p = cmd(g, "stats", "Rows per table.", _cmd_db_stats)
    _add_db(p)
    p.add_argument("--json", action="store_true", help="print JSON")

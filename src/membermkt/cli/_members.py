"""``membermkt members import|export``: members (or events) as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from membermkt.cli._base import (
    EXIT_ERROR,
    EXIT_OK,
    _add_db,
    _as_of,
    _Commands,
    _err,
    _out,
    _store,
)
from membermkt.errors import UsageError


def _cmd_members_import(args: argparse.Namespace) -> int:
    from membermkt.stores import io

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    with _store(args) as store:
        if args.events:
            report = io.import_events_csv(store, args.file)
        else:
            report = io.import_members_csv(
                store, args.file, on_shared_identity=args.on_shared_identity
            )
    what = "events" if args.events else "members"
    _out(f"read {report.read:,} rows, wrote {report.written:,} {what}")
    for err in report.errors[: args.show_errors]:
        _err(f"  row {err.row}: {err.reason}")
    if len(report.errors) > args.show_errors:
        _err(f"  ... and {len(report.errors) - args.show_errors:,} more refused rows")
    if report.errors:
        _err(f"{len(report.errors):,} rows refused")
        return EXIT_ERROR
    return EXIT_OK


def _cmd_members_export(args: argparse.Namespace) -> int:
    from membermkt.stores import io

    as_of = None if args.as_of is None else _as_of(args.as_of)
    with _store(args, create=False) as store:
        fn = io.export_events_csv if args.events else io.export_members_csv
        if args.file == "-":
            n = fn(store, sys.stdout, as_of=as_of)
        else:
            n = fn(store, args.file, as_of=as_of)
    what = "events" if args.events else "members"
    _err(f"exported {n:,} {what}")
    return EXIT_OK


def _register(c: _Commands) -> None:
    """Add the ``members`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
    g = grp("members", "Import or export members (or events) as CSV.")
    p = cmd(g, "import", "Import members (or --events) from a CSV file.", _cmd_members_import)
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--events", action="store_true", help="the file holds events")
    p.add_argument(
        "--on-shared-identity",
        choices=("report", "merge"),
        default="report",
        help="a row listing an identity another member holds: report it as a refused row "
        "(default) or merge the two members (recorded in the merge audit trail); an "
        "identity is never moved",
    )
    p.add_argument("--show-errors", type=int, default=20, metavar="N", help="refused rows shown")
    _add_db(p)
    p = cmd(
        g, "export", "Export members (or --events) to a CSV file (- = stdout).", _cmd_members_export
    )
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--events", action="store_true", help="export events instead")
    p.add_argument(
        "--as-of",
        metavar="TIME",
        help="state as of this ISO 8601 time, events up to it (default: all, latest state)",
    )
    _add_db(p)

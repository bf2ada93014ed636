"""``membermkt segment validate|count|preview``: a segment from its JSON file."""

from __future__ import annotations

import argparse

from membermkt.cli._base import (
    EXIT_ERROR,
    EXIT_OK,
    _add_as_of,
    _add_db,
    _as_of,
    _Commands,
    _err,
    _out,
    _positive,
    _segment,
    _store,
)


def _cmd_segment_validate(args: argparse.Namespace) -> int:
    from membermkt.errors import SegmentError

    try:
        seg = _segment(args.file)
    except SegmentError as exc:
        _err(f"invalid: {exc}")
        return EXIT_ERROR
    _out(f"valid: {seg.simplify()!r}" if args.verbose else "valid")
    return EXIT_OK


def _cmd_segment_count(args: argparse.Namespace) -> int:
    seg = _segment(args.file)
    with _store(args, create=False) as store:
        _out(str(store.count(seg, _as_of(args.as_of))))
    return EXIT_OK


def _cmd_segment_preview(args: argparse.Namespace) -> int:
    seg = _segment(args.file)
    as_of = _as_of(args.as_of)
    with _store(args, create=False) as store:
        total = store.count(seg, as_of)
        ids = []
        for mid in store.select(seg, as_of):
            ids.append(mid)
            if len(ids) >= args.limit:
                break
        members = store.get_members(ids)
        _out(f"{total:,} members; first {len(ids)}:")
        for mid in ids:
            m = members.get(mid)
            if m is None:
                continue
            p = m.profile
            st = m.state
            _out(
                f"  {mid}  {p.gender or '-':6} {p.city or '-':10} "
                f"orders={st.purchases.count:<3} source={st.source or '-':9} "
                f"tags={','.join(sorted(m.tags)) or '-'}"
            )
    return EXIT_OK


def _register(c: _Commands) -> None:
    """Add the ``segment`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
    g = grp("segment", "Count, preview or validate a segment from its JSON file.")
    p = cmd(
        g, "validate", "Check a segment JSON file (exit 1 when invalid).", _cmd_segment_validate
    )
    p.add_argument("file", metavar="FILE.json")
    p.add_argument("-v", "--verbose", action="store_true", help="print the simplified segment")
    p = cmd(g, "count", "How many members the segment selects.", _cmd_segment_count)
    p.add_argument("file", metavar="FILE.json")
    _add_as_of(p)
    _add_db(p)
    p = cmd(g, "preview", "The first members the segment selects.", _cmd_segment_preview)
    p.add_argument("file", metavar="FILE.json")
    p.add_argument("--limit", type=_positive, default=10, help="members shown (default 10)")
    _add_as_of(p)
    _add_db(p)

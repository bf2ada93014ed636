"""``membermkt demo``: the whole story on SQLite and the emulators (:mod:`membermkt.demo`)."""

from __future__ import annotations

import argparse
import json

from membermkt.cli._base import EXIT_OK, _Commands, _err, _out, _positive, _progress_enabled


def _cmd_demo(args: argparse.Namespace) -> int:
    from membermkt.demo import format_summary, run_demo

    result = run_demo(
        members=args.members,
        workdir=args.workdir,
        seed=args.seed,
        fresh=args.fresh,
        report=not args.no_report,
        echo=_err if args.json else _out,
        progress=_progress_enabled(args),
    )
    if args.json:
        _out(json.dumps(result.to_json(), ensure_ascii=False, sort_keys=True))
    else:
        _out(format_summary(result))
    return EXIT_OK


def _register(c: _Commands) -> None:
    """Add the ``demo`` command to the ``membermkt`` parser."""
    from membermkt.demo import DEFAULT_MEMBERS, DEFAULT_SEED, DEFAULT_WORKDIR

    cmd, sub = c.cmd, c.sub
    p = cmd(
        sub,
        "demo",
        "Play the whole story on embedded SQLite and the in-process emulators.",
        _cmd_demo,
    )
    p.add_argument(
        "--members",
        type=_positive,
        default=DEFAULT_MEMBERS,
        metavar="N",
        help=f"synthetic buyers (default {DEFAULT_MEMBERS})",
    )
    p.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        metavar="DIR",
        help=f"database, state and report go here (default ./{DEFAULT_WORKDIR}/)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=argparse.SUPPRESS)
    p.add_argument("--fresh", action="store_true", help="start over: delete an earlier demo")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--json", action="store_true", help="print the summary as JSON (steps go to stderr)"
    )

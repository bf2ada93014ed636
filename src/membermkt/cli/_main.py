"""The parser (every command group's ``_register``, in help order) and the entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from membermkt._version import __version__
from membermkt.cli._base import (
    _EPILOG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _Commands,
    _err,
    _Parser,
)
from membermkt.cli._callbacks import _register as _register_callbacks
from membermkt.cli._campaigns import _register as _register_campaigns
from membermkt.cli._db import _register as _register_db
from membermkt.cli._demo import _register as _register_demo
from membermkt.cli._emulator import _register as _register_emulator
from membermkt.cli._members import _register as _register_members
from membermkt.cli._redpacket import _register as _register_redpacket
from membermkt.cli._segments import _register as _register_segments
from membermkt.errors import MembermktError, UsageError

# the command groups, in the order ``membermkt --help`` lists them
_GROUPS = (
    _register_demo,
    _register_db,
    _register_members,
    _register_segments,
    _register_campaigns,
    _register_redpacket,
    _register_emulator,
    _register_callbacks,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``membermkt`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="membermkt",
        description="Member marketing for the WeChat ecosystem: the membermkt toolbox.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"membermkt {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    commands = _Commands(sub, fmt)
    for register in _GROUPS:
        register(commands)
    return parser


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except UsageError as exc:
        if args.debug:
            raise
        _err(f"membermkt: error: {exc}")
        return EXIT_USAGE
    except MembermktError as exc:
        if args.debug:
            raise
        _err(f"membermkt: error: {exc}")
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            raise
        _err(f"membermkt: internal error: {type(exc).__name__}: {exc} (run with --debug)")
        return EXIT_ERROR


def run() -> NoReturn:
    """``sys.exit(main())``."""
    sys.exit(main())

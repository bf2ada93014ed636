"""What every command shares: exit codes, the parser class and the command registrar, output
helpers, the database and input-file helpers and the common options."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from membermkt.errors import MembermktError, UsageError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_DB = "sqlite:///membermkt.db"
_DEFAULT_APPID = "wxemulator0000001"

_EPILOG = """\
exit codes: 0 ok, 1 error, 2 usage error, 130 interrupted.
database: --db URL or $MEMBERMKT_DB (default sqlite:///membermkt.db).
docs: docs/cli.md (run `mkdocs serve` in a clone of the repository)."""


class _Parser(argparse.ArgumentParser):
    """argparse with our exit code and one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class CommandError(MembermktError):
    """A command failed in a way that is not the caller's fault (exit code 1)."""


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers


def _as_of(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"--as-of must be an ISO 8601 time, got {value!r}") from exc
    return at if at.utcoffset() is not None else at.replace(tzinfo=dt.UTC)


def _db_url(args: argparse.Namespace) -> str:
    return str(args.db or os.environ.get("MEMBERMKT_DB") or DEFAULT_DB)


@contextmanager
def _store(args: argparse.Namespace, *, create: bool = True) -> Iterator[Any]:
    from membermkt.stores.sql.store import SqlStore

    url = _db_url(args)
    if url.startswith("sqlite:///") and not create:
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not Path(path).exists():
            raise UsageError(f"no database at {path}: run `membermkt db init` first")
    phones = None
    key_file = getattr(args, "phone_key_file", None)
    if key_file:
        from membermkt.security.phone_policy import read_key_file

        phones = read_key_file(key_file)
    store = SqlStore(url, phones=phones)
    try:
        if create:
            store.create_schema()
        yield store
    finally:
        store.close()


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc


def _segment(path: str) -> Any:
    from membermkt.core.segments import Segment

    data = _read_json(path)
    if isinstance(data, dict) and "segment" in data and "version" not in data:
        data = data["segment"]
    return Segment.from_json(data)


def _progress_enabled(args: argparse.Namespace) -> bool:
    if getattr(args, "no_progress", False):
        return False
    return sys.stderr.isatty()


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help="database URL (default $MEMBERMKT_DB or sqlite)")
    p.add_argument(
        "--phone-key-file",
        metavar="PATH",
        help="phone key ring file ('<key id>:<base64>' per line, current first; the demo "
        "writes one as phone.key) (default $MEMBERMKT_PHONE_KEYS)",
    )


def _add_as_of(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as-of", metavar="TIME", help="evaluation time, ISO 8601 (default: now, UTC)")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


class _Commands:
    """Adds commands to the ``membermkt`` parser: each command-group module's ``_register``
    gets one (``cmd``: one command with its handler; ``grp``: a group of actions)."""

    def __init__(self, sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
        self.sub = sub
        self.fmt = fmt

    def cmd(
        self, group: Any, name: str, help: str, fn: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(
            name, help=help, description=help, epilog=_EPILOG, formatter_class=self.fmt
        )
        p.set_defaults(func=fn)
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
        return p

    def grp(self, name: str, help: str) -> Any:
        p = self.sub.add_parser(
            name, help=help, description=help, epilog=_EPILOG, formatter_class=self.fmt
        )
        g = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
        g.required = True
        return g

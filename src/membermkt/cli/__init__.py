"""The ``membermkt`` command line (also ``python -m membermkt``).

Commands::

    membermkt demo [--members N] [--workdir DIR]     the whole story, on SQLite + emulators
    membermkt db init|stats                           create the schema / count rows
    membermkt members import|export FILE.csv          members (or --events) as CSV
    membermkt segment count|preview|validate FILE.json
    membermkt campaign simulate|run|status|report FILE.json
    membermkt redpacket reconcile                     compare payouts with WeChat Pay
    membermkt emulator serve                          the platform emulators on loopback
    membermkt callbacks serve                         a reference callback server

Exit codes: ``0`` success; ``1`` an error (the platform, the database, a failed check such
as an invalid segment file); ``2`` a usage error (bad arguments, options or input files);
``130`` interrupted. Errors are printed as one line on stderr; ``--debug`` adds the
traceback.

The database comes from ``--db URL`` or the ``MEMBERMKT_DB`` environment variable
(default ``sqlite:///membermkt.db``).
"""

from __future__ import annotations

from membermkt.cli._base import (  # noqa: F401
    _DEFAULT_APPID,
    _EPILOG,
    DEFAULT_DB,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    _add_as_of,
    _add_db,
    _as_of,
    _db_url,
    _err,
    _out,
    _Parser,
    _positive,
    _progress_enabled,
    _read_json,
    _segment,
    _store,
)
from membermkt.cli._callbacks import _cmd_callbacks_serve  # noqa: F401
from membermkt.cli._campaigns import (  # noqa: F401
    _campaign,
    _campaign_id,
    _channel,
    _cmd_campaign_report,
    _cmd_campaign_run,
    _cmd_campaign_simulate,
    _cmd_campaign_status,
)
from membermkt.cli._db import _cmd_db_init, _cmd_db_stats  # noqa: F401
from membermkt.cli._demo import _cmd_demo  # noqa: F401
from membermkt.cli._emulator import _cmd_emulator_serve, _wait_forever  # noqa: F401
from membermkt.cli._main import build_parser, main, run
from membermkt.cli._members import _cmd_members_export, _cmd_members_import  # noqa: F401
from membermkt.cli._redpacket import _cmd_redpacket_reconcile  # noqa: F401
from membermkt.cli._segments import _cmd_segment_count, _cmd_segment_preview, _cmd_segment_validate  # noqa: F401

__all__ = [
    "DEFAULT_DB",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "build_parser",
    "main",
    "run",
]

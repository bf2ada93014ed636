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

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from membermkt._version import __version__
from membermkt.errors import MembermktError, UsageError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

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
    store = SqlStore(url)
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


# --------------------------------------------------------------------------- demo


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


# --------------------------------------------------------------------------- db


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


# --------------------------------------------------------------------------- members


def _cmd_members_import(args: argparse.Namespace) -> int:
    from membermkt.stores import io

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    with _store(args) as store:
        fn = io.import_events_csv if args.events else io.import_members_csv
        report = fn(store, args.file)
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

    with _store(args, create=False) as store:
        fn = io.export_events_csv if args.events else io.export_members_csv
        if args.file == "-":
            n = fn(store, sys.stdout)
        else:
            n = fn(store, args.file)
    what = "events" if args.events else "members"
    _err(f"exported {n:,} {what}")
    return EXIT_OK


# --------------------------------------------------------------------------- segments


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


# --------------------------------------------------------------------------- campaigns


def _campaign(path: str) -> Any:
    """A campaign from its JSON file (see docs/cli.md)."""
    from membermkt.core.campaigns import Campaign, Variant
    from membermkt.core.segments import Segment

    data = _read_json(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a campaign file is a JSON object")
    known = {
        "id",
        "audience",
        "channel",
        "variants",
        "holdout",
        "address_kind",
        "address_namespace",
        "salt",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{path}: unknown campaign fields {unknown}")
    for need in ("id", "audience", "channel", "variants"):
        if need not in data:
            raise UsageError(f"{path}: missing campaign field {need!r}")
    variants = data["variants"]
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise UsageError(f"{path}: variants must be a list of objects")
    try:
        return Campaign(
            id=data["id"],
            audience=Segment.from_json(data["audience"]),
            channel=data["channel"],
            variants=tuple(Variant(**v) for v in variants),
            holdout=data.get("holdout", 0.0),
            address_kind=data.get("address_kind", "openid"),
            address_namespace=data.get("address_namespace", ""),
            salt=data.get("salt", ""),
        )
    except TypeError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _cmd_campaign_simulate(args: argparse.Namespace) -> int:
    from membermkt.engine.campaigns import members_of, simulate

    campaign = _campaign(args.file)
    as_of = _as_of(args.as_of)
    with _store(args, create=False) as store:
        sim = simulate(campaign, members_of(store, campaign, as_of), None, as_of, keep=0)
    s = sim.summary
    _out(f"campaign {campaign.id}: audience {s.audience:,} as of {as_of:%Y-%m-%d %H:%M %Z}")
    for variant, n in sorted(s.deliveries.items()):
        cost = ", ".join(f"{k} {v:,}" for k, v in sorted(sim.quota_cost.get(variant, {}).items()))
        _out(f"  variant {variant}: {n:,} deliveries ({cost})")
    for reason, n in sorted(s.skipped_by_reason().items()):
        _out(f"  skipped {reason}: {n:,}")
    return EXIT_OK


def _channel(args: argparse.Namespace, name: str) -> Any:
    if name.startswith("wechat."):
        from membermkt.channels.wechat import (
            OfficialAccount,
            WeChatCustomChannel,
            WeChatMassChannel,
            WeChatTemplateChannel,
        )

        secret = os.environ.get(args.secret_env)
        if not args.appid or not secret:
            raise UsageError(
                f"channel {name} needs --appid and the app secret in ${args.secret_env}"
            )
        kw: dict[str, Any] = {}
        if args.base_url:
            kw["base_url"] = args.base_url
        client = OfficialAccount(args.appid, secret, **kw)
        classes = {
            "wechat.mass": WeChatMassChannel,
            "wechat.template": WeChatTemplateChannel,
            "wechat.custom": WeChatCustomChannel,
        }
        if name not in classes:
            raise UsageError(f"unknown WeChat channel {name!r}: use one of {sorted(classes)}")
        return classes[name](client)
    from membermkt.channels import registry

    return registry.create(name)


def _cmd_campaign_run(args: argparse.Namespace) -> int:
    from membermkt.core.campaigns import check
    from membermkt.engine.campaigns import CampaignRunner, members_of, prepare, tqdm_progress

    campaign = _campaign(args.file)
    as_of = _as_of(args.as_of)
    channel = _channel(args, campaign.channel)
    check(campaign, capabilities=channel.capabilities)
    with _store(args, create=False) as store:
        summary = prepare(store, campaign, members_of(store, campaign, as_of), None, as_of)
        _out(
            f"planned {summary.total_deliveries:,} deliveries "
            f"(as of {as_of.isoformat()}; keep it for `campaign report --as-of`)"
        )
        progress = tqdm_progress(desc=campaign.id) if _progress_enabled(args) else None
        result = CampaignRunner(store, channel, progress=progress).run(campaign.id)
        _out(
            f"sent {result.sent:,}, failed {result.failed:,}, unknown {result.unknown:,}, "
            f"pending {result.pending:,} (this run)"
        )
        for reason, n in sorted(result.failures.items()):
            _out(f"  failed {reason}: {n:,}")
    return EXIT_ERROR if result.failed or result.unknown else EXIT_OK


def _campaign_id(args: argparse.Namespace) -> str:
    if args.file.endswith(".json") or Path(args.file).exists():
        return str(_campaign(args.file).id)
    return str(args.file)


def _cmd_campaign_status(args: argparse.Namespace) -> int:
    cid = _campaign_id(args)
    with _store(args, create=False) as store:
        counts = {k: v for k, v in store.status_counts(cid).items() if v}
    if args.json:
        _out(json.dumps(counts, sort_keys=True))
    elif not counts:
        _out(f"campaign {cid}: nothing in the ledger")
    else:
        _out(f"campaign {cid}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    return EXIT_OK


def _cmd_campaign_report(args: argparse.Namespace) -> int:
    from membermkt.core.campaigns import plan, summarize
    from membermkt.engine.campaigns import CampaignReport, members_of

    campaign = _campaign(args.file)
    as_of = _as_of(args.as_of)
    window = dt.timedelta(days=args.window_days)
    with _store(args, create=False) as store:
        summary = summarize(
            campaign.id,
            plan(campaign, members_of(store, campaign, as_of), None, as_of),
            keep_holdout_ids=True,
            as_of=as_of,
        )
        records = list(store.deliveries(campaign.id))
        conversions = (e for e in store.iter_events() if e.type == "purchase")
        report = CampaignReport.build(
            campaign, records, summary, conversions=conversions, window=window
        )
    if args.html:
        Path(args.html).write_text(report._repr_html_(), encoding="utf-8")
        _err(f"wrote {args.html}")
    _out(f"campaign {campaign.id} (conversion: purchase within {args.window_days} days)")
    for g in report.groups:
        rate = "-" if g.rate is None else f"{g.rate:.1%}"
        lift = "" if g.lift is None else f", lift {g.lift:+.1%}"
        _out(
            f"  {g.group:8} members {g.members:,}, sent {g.sent:,}, "
            f"converted {g.converted:,} ({rate}{lift})"
        )
    return EXIT_OK


# --------------------------------------------------------------------------- red packets


def _cmd_redpacket_reconcile(args: argparse.Namespace) -> int:
    from membermkt.core.redpackets import FixedAmount, RedPacketRule
    from membermkt.engine.redpackets import RedPacketService
    from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
    from membermkt.payouts.wechatpay.v2 import RedPacketConfig

    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        raise UsageError(f"the WeChat Pay v2 API key is read from ${args.api_key_env}")
    cert = MerchantCertificate.load(args.cert, args.key)
    kw: dict[str, Any] = {}
    if args.base_url:
        kw["base_url"] = args.base_url
    if args.ca_file:
        kw["ca_file"] = args.ca_file
    gateway = WeChatPayV2Gateway(
        RedPacketConfig(
            mch_id=args.mch_id,
            wxappid=args.appid,
            api_key=api_key,
            send_name="membermkt",
            act_name="reconcile",
            wishing="-",
            remark="-",
        ),
        cert,
        **kw,
    )
    # reconciliation reads the rule's id (and product) only: the amounts are placeholders
    rule = RedPacketRule(
        id=args.rule, mch_id=args.mch_id, amount=FixedAmount(100), total_budget_fen=100
    )
    with _store(args, create=False) as store:
        from membermkt.engine.runner import SystemClock

        service = RedPacketService(store, gateway, clock=SystemClock())
        report = service.reconcile(rule, resolve=not args.dry_run)
    _out(
        f"rule {report.rule_id}: checked {report.checked:,}, matched {report.matched:,}, "
        f"resolved {len(report.resolved):,}, mismatches {len(report.mismatches):,}"
    )
    _out(
        f"budget used ¥{report.budget_used_fen / 100:,.2f}, "
        f"live intents ¥{report.intents_fen / 100:,.2f}"
    )
    for bill, status in report.resolved:
        _out(f"  resolved {bill}: {status}")
    for mismatch in report.mismatches:
        _out(f"  mismatch {mismatch!r}")
    _out("ok" if report.ok else "NOT OK: investigate the mismatches above")
    return EXIT_OK if report.ok else EXIT_ERROR


# --------------------------------------------------------------------------- servers


def _wait_forever(what: str, url: str) -> None:
    _out(f"{what} on {url} — Ctrl-C to stop")
    while True:
        time.sleep(3600)


def _cmd_emulator_serve(args: argparse.Namespace) -> int:
    if args.platform == "wecom":
        from membermkt.testing.emulator.wecom import WeComEmulator

        wecom = WeComEmulator(seed=args.seed)
        corpid = args.appid if args.appid != _DEFAULT_APPID else "wwemulator0000001"
        corp = wecom.add_corp(corpid, args.secret)
        corp.add_staff(*(f"clerk{i:02d}" for i in range(1, 4)))
        server = wecom.serve(port=args.port)
        try:
            _out(f"corpid {corpid}, secret {args.secret}, staff clerk01..clerk03")
            _out(f"callback token {corp.token}, EncodingAESKey {corp.encoding_aes_key}")
            _out(f"use: WeCom(corpid, secret, base_url={server.url!r})")
            _wait_forever("WeCom customer-contact emulator", server.url)
        finally:
            server.close()
        return EXIT_OK

    from membermkt.testing.emulator.wechat import WeChatEmulator

    emu = WeChatEmulator(seed=args.seed, limits=None if args.limits else ())
    acct = emu.add_account(args.appid, args.secret)
    if args.followers:
        acct.add_followers(f"o{i:08d}" for i in range(args.followers))
    server = emu.serve(port=args.port)
    try:
        _out(f"appid {args.appid}, secret {args.secret}")
        _out(f"callback token {acct.token}, EncodingAESKey {acct.encoding_aes_key}")
        _out(f"use: OfficialAccount(appid, secret, base_url={server.url!r})")
        _wait_forever("WeChat official-account emulator", server.url)
    finally:
        server.close()
    return EXIT_OK


def _cmd_callbacks_serve(args: argparse.Namespace) -> int:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming
    from membermkt.contrib.wsgi import wsgi_app

    def on_message(incoming: Incoming) -> str | None:
        kinds = ",".join(e.type for e in incoming.events) or incoming.message.type
        _out(f"{incoming.appid} {incoming.member_id}: {kinds}")
        if args.welcome and any(e.type == "follow" for e in incoming.events):
            return incoming.reply_text(args.welcome)
        return None

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *a: Any) -> None:
            return

    with _store(args) as store:
        handler = CallbackHandler(
            Endpoint(appid=args.appid, token=args.token, encoding_aes_key=args.aes_key),
            store=store,
            on_message=on_message,
        )
        with make_server("127.0.0.1", args.port, wsgi_app(handler), handler_class=_Quiet) as srv:
            url = f"http://127.0.0.1:{srv.server_port}/"
            _out(f"WeChat callback server on {url} — Ctrl-C to stop")
            try:
                srv.serve_forever()
            finally:
                handler.close()
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help="database URL (default $MEMBERMKT_DB or sqlite)")


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``membermkt`` command."""
    from membermkt.demo import DEFAULT_MEMBERS, DEFAULT_SEED, DEFAULT_WORKDIR

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

    def cmd(
        group: Any, name: str, help: str, fn: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(
            name, help=help, description=help, epilog=_EPILOG, formatter_class=fmt
        )
        p.set_defaults(func=fn)
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
        return p

    def grp(name: str, help: str) -> Any:
        p = sub.add_parser(name, help=help, description=help, epilog=_EPILOG, formatter_class=fmt)
        g = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
        g.required = True
        return g

    # demo
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

    # db
    g = grp("db", "Create the schema or count what a database holds.")
    p = cmd(g, "init", "Create (or upgrade) the membermkt tables.", _cmd_db_init)
    _add_db(p)
    p = cmd(g, "stats", "Rows per table.", _cmd_db_stats)
    _add_db(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    # members
    g = grp("members", "Import or export members (or events) as CSV.")
    p = cmd(g, "import", "Import members (or --events) from a CSV file.", _cmd_members_import)
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--events", action="store_true", help="the file holds events")
    p.add_argument("--show-errors", type=int, default=20, metavar="N", help="refused rows shown")
    _add_db(p)
    p = cmd(
        g, "export", "Export members (or --events) to a CSV file (- = stdout).", _cmd_members_export
    )
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--events", action="store_true", help="export events instead")
    _add_db(p)

    # segments
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

    # campaigns
    g = grp("campaign", "Simulate, run and report campaigns defined in JSON files.")
    p = cmd(g, "simulate", "Who would get what, and who is skipped why.", _cmd_campaign_simulate)
    p.add_argument("file", metavar="CAMPAIGN.json")
    _add_as_of(p)
    _add_db(p)
    p = cmd(g, "run", "Plan into the ledger and send (resumable).", _cmd_campaign_run)
    p.add_argument("file", metavar="CAMPAIGN.json")
    p.add_argument("--appid", help="WeChat appid (wechat.* channels)")
    p.add_argument(
        "--secret-env",
        default="MEMBERMKT_WECHAT_SECRET",
        metavar="VAR",
        help="environment variable holding the app secret (default MEMBERMKT_WECHAT_SECRET)",
    )
    p.add_argument("--base-url", help="API base URL (e.g. a `membermkt emulator serve` URL)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_as_of(p)
    _add_db(p)
    p = cmd(g, "status", "Ledger counts per delivery status.", _cmd_campaign_status)
    p.add_argument("file", metavar="CAMPAIGN.json|ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_db(p)
    p = cmd(
        g, "report", "Deliveries, conversions and lift against the holdout.", _cmd_campaign_report
    )
    p.add_argument("file", metavar="CAMPAIGN.json")
    p.add_argument("--window-days", type=_positive, default=7, help="conversion window (7)")
    p.add_argument("--html", metavar="FILE", help="also write the report as HTML")
    _add_as_of(p)
    _add_db(p)

    # red packets
    g = grp("redpacket", "Red-packet operations.")
    p = cmd(
        g,
        "reconcile",
        "Query every payout of a rule at WeChat Pay (v2) and report mismatches.",
        _cmd_redpacket_reconcile,
    )
    p.add_argument("--rule", required=True, help="the red-packet rule id")
    p.add_argument("--mch-id", required=True, help="merchant id")
    p.add_argument("--appid", required=True, help="appid bound to the merchant")
    p.add_argument("--cert", required=True, help="apiclient_cert.pem")
    p.add_argument("--key", required=True, help="apiclient_key.pem")
    p.add_argument(
        "--api-key-env",
        default="MEMBERMKT_WECHATPAY_API_KEY",
        metavar="VAR",
        help="environment variable holding the v2 API key",
    )
    p.add_argument("--base-url", help="API base URL (an emulator)")
    p.add_argument("--ca-file", help="CA bundle to verify the API server (an emulator's)")
    p.add_argument("--dry-run", action="store_true", help="report only, finish nothing")
    _add_db(p)

    # servers
    g = grp("emulator", "The platform emulator, for your own integration tests.")
    p = cmd(
        g,
        "serve",
        "Serve a platform emulator (WeChat official account or WeCom) on 127.0.0.1.",
        _cmd_emulator_serve,
    )
    p.add_argument(
        "--platform",
        choices=("wechat", "wecom"),
        default="wechat",
        help="which platform (default wechat)",
    )
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    p.add_argument(
        "--appid", default=_DEFAULT_APPID, help="the emulated account's appid (WeCom: corpid)"
    )
    p.add_argument("--secret", default="emulator-secret", help="its app secret")
    p.add_argument("--followers", type=int, default=0, metavar="N", help="pre-made followers")
    p.add_argument("--limits", action="store_true", help="enforce the platform's API limits")
    p.add_argument("--seed", type=int, default=0, help="fault/ids seed")
    g = grp("callbacks", "A reference WeChat callback server for development.")
    p = cmd(
        g,
        "serve",
        "Serve a callback endpoint on 127.0.0.1 into the database.",
        _cmd_callbacks_serve,
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any)")
    p.add_argument("--appid", required=True, help="the official account's appid")
    p.add_argument("--token", required=True, help="the server-settings Token")
    p.add_argument("--aes-key", help="the EncodingAESKey (safe mode)")
    p.add_argument("--welcome", help="passive reply to new followers")
    _add_db(p)
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

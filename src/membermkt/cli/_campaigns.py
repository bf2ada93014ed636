"""``membermkt campaign simulate|run|status|report``: campaigns defined in JSON files."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

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
    _progress_enabled,
    _read_json,
    _store,
)
from membermkt.errors import UsageError


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
        "account_type",
        "caps",
        "quiet_hours",
        "schedule",
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
            account_type=data.get("account_type", "service"),
            caps=tuple(_cap(path, c) for c in _list(path, "caps", data.get("caps", []))),
            quiet_hours=_quiet_hours(path, data.get("quiet_hours")),
            schedule=_schedule(path, data.get("schedule")),
        )
    except TypeError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _list(path: str, name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise UsageError(f"{path}: {name} must be a list")
    return value


def _obj(path: str, name: str, value: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{path}: {name} must be an object")
    unknown = sorted(set(value) - known)
    if unknown:
        raise UsageError(f"{path}: unknown {name} fields {unknown}")
    return value


def _cap(path: str, value: Any) -> Any:
    """``{"limit": 2, "period": "week" | "day" | "month" | <hours as a number>,
    "channels": [...]?, "tz"?, "name"?}``."""
    from membermkt.core.quotas import DEFAULT_TZ, Cap

    c = _obj(path, "caps[]", value, {"limit", "period", "channels", "tz", "name"})
    period: Any = c.get("period")
    if isinstance(period, int | float) and not isinstance(period, bool):
        period = dt.timedelta(hours=period)
    return Cap(
        limit=c.get("limit"),
        period=period,
        channels=c.get("channels"),
        tz=c.get("tz", DEFAULT_TZ),
        name=c.get("name", ""),
    )


def _clock_time(path: str, value: Any) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError as exc:
        raise UsageError(f"{path}: quiet_hours times are HH:MM, got {value!r}") from exc


def _quiet_hours(path: str, value: Any) -> Any:
    """``{"start": "22:00", "end": "08:00", "tz"?, "member_tz_attribute"?}``."""
    from membermkt.core.campaigns import QuietHours
    from membermkt.core.quotas import DEFAULT_TZ

    if value is None:
        return None
    q = _obj(path, "quiet_hours", value, {"start", "end", "tz", "member_tz_attribute"})
    for need in ("start", "end"):
        if need not in q:
            raise UsageError(f"{path}: quiet_hours needs {need!r}")
    return QuietHours(
        start=_clock_time(path, q["start"]),
        end=_clock_time(path, q["end"]),
        tz=q.get("tz", DEFAULT_TZ),
        member_tz_attribute=q.get("member_tz_attribute", "timezone"),
    )


def _instant(path: str, value: Any) -> dt.datetime | None:
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise UsageError(f"{path}: schedule times are ISO 8601, got {value!r}") from exc
    if at.utcoffset() is None:
        raise UsageError(f"{path}: schedule time {value!r} needs a UTC offset")
    return at


def _schedule(path: str, value: Any) -> Any:
    """``{"start": ISO 8601?, "end": ISO 8601?}`` (with UTC offsets)."""
    from membermkt.core.campaigns import Schedule

    if value is None:
        return None
    sc = _obj(path, "schedule", value, {"start", "end"})
    return Schedule(start=_instant(path, sc.get("start")), end=_instant(path, sc.get("end")))


def _default_budget(name: str) -> int | None:
    """The daily call budget of the API a built-in channel calls, from its client's
    ``DEFAULT_BUDGETS`` (``None``: none known)."""
    from membermkt.engine.budget import CHANNEL_APIS

    api = CHANNEL_APIS.get(name)
    if api is None:
        return None
    if name.startswith("wechat."):
        from membermkt.channels.wechat.client import DEFAULT_BUDGETS
    else:
        from membermkt.channels.wecom.client import DEFAULT_BUDGETS
    for b in DEFAULT_BUDGETS:
        if api in (b.apis or (b.api,)):
            return b.per_day
    return None


def _budget_note(problem: Any) -> str:
    return (
        f"warning: {problem}; the runner defers the rest to the next day "
        "(split the campaign, or let it span days)"
    )


def _cmd_campaign_simulate(args: argparse.Namespace) -> int:
    from membermkt.engine.campaigns import members_of, simulate

    campaign = _campaign(args.file)
    as_of = _as_of(args.as_of)
    with _store(args, create=False) as store:
        sim = simulate(
            campaign,
            members_of(store, campaign, as_of),
            None,
            as_of,
            keep=0,
            calls_per_day=_default_budget(campaign.channel),
        )
    s = sim.summary
    _out(f"campaign {campaign.id}: audience {s.audience:,} as of {as_of:%Y-%m-%d %H:%M %Z}")
    for variant, n in sorted(s.deliveries.items()):
        cost = ", ".join(f"{k} {v:,}" for k, v in sorted(sim.quota_cost.get(variant, {}).items()))
        _out(f"  variant {variant}: {n:,} deliveries ({cost})")
    for reason, n in sorted(s.skipped_by_reason().items()):
        _out(f"  skipped {reason}: {n:,}")
    refused = [p for p in sim.problems if p.path != "budget"]
    for p in sim.problems:
        _out(_budget_note(p) if p.path == "budget" else f"  would be refused: {p}")
    return EXIT_ERROR if refused else EXIT_OK


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
    from membermkt.engine.budget import budget_problems
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
        # the day's API budget, before anything is sent (the runner defers past it)
        now = dt.datetime.now(dt.UTC)
        for problem in budget_problems(campaign, summary, channel, now=now):
            _out(_budget_note(problem))
        progress = tqdm_progress(desc=campaign.id) if _progress_enabled(args) else None
        runner = CampaignRunner.for_campaign(store, channel, campaign, progress=progress)
        try:
            result = runner.run(campaign.id)
        finally:
            client = getattr(channel, "client", None)
            if client is not None and hasattr(client, "close"):
                client.close()
        _out(
            f"sent {result.sent:,}, failed {result.failed:,}, unknown {result.unknown:,}, "
            f"pending {result.pending:,}, skipped {result.skipped:,} (this run)"
        )
        for reason, n in sorted(result.failures.items()):
            _out(f"  failed {reason}: {n:,}")
        for reason, n in sorted(result.skips.items()):
            _out(f"  skipped {reason}: {n:,}")
        if result.status == "deferred" and result.deferred_until is not None:
            _out(
                f"deferred: the platform's quota is used up until "
                f"{result.deferred_until.isoformat()}; run again after that"
            )
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
        # mass jobs: the platform's job results (MASSSENDJOBFINISH, recorded by the callback
        # handler) next to the ledger's counts
        jobs = (
            store
            if campaign.channel == "wechat.mass"
            and campaign.address_namespace
            and hasattr(store, "job_results")
            else None
        )
        report = CampaignReport.build(
            campaign, records, summary, conversions=conversions, window=window, job_results=jobs
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
    if report.platform is not None:
        _out(f"  {report.platform}")
    return EXIT_OK


def _register(c: _Commands) -> None:
    """Add the ``campaign`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
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

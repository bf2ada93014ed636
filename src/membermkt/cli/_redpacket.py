"""``membermkt redpacket reconcile``: compare a rule's payouts with WeChat Pay."""

from __future__ import annotations

import argparse
import os
from typing import Any

from membermkt.cli._base import EXIT_ERROR, EXIT_OK, _add_db, _Commands, _out, _store
from membermkt.errors import UsageError


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


def _register(c: _Commands) -> None:
    """Add the ``redpacket`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
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

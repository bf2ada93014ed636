"""``membermkt emulator serve``: a platform emulator (WeChat or WeCom) on loopback."""

from __future__ import annotations

import argparse
import time

from membermkt.cli._base import _DEFAULT_APPID, EXIT_OK, _Commands, _out


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


def _register(c: _Commands) -> None:
    """Add the ``emulator`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
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

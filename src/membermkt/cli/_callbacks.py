"""``membermkt callbacks serve``: a reference WeChat callback server into the database."""

from __future__ import annotations

import argparse
from typing import Any

from membermkt.cli._base import EXIT_OK, _add_db, _Commands, _out, _store


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


def _register(c: _Commands) -> None:
    """Add the ``callbacks`` commands to the ``membermkt`` parser."""
    cmd, grp = c.cmd, c.grp
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

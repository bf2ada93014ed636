"""A threaded WSGI callback server for the server test (run as a subprocess so its memory
can be measured on its own): prints its port, then serves until killed."""

from __future__ import annotations

import logging
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from membermkt.channels.wechat import CallbackHandler, Endpoint
from membermkt.contrib.wsgi import wsgi_app
from membermkt.stores.memory import InMemoryStore

APPID, TOKEN, KEY, NOW = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    logging.disable(logging.WARNING)
    handler = CallbackHandler(
        Endpoint(appid=APPID, token=TOKEN, encoding_aes_key=KEY),
        store=InMemoryStore(),
        clock=lambda: NOW,
    )
    with make_server("127.0.0.1", 0, wsgi_app(handler), _Server, _Quiet) as srv:
        print(srv.server_port, flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()

"""Serving the emulator on loopback, over real mutual TLS by default."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from membermkt.payouts.wechatpay.gateway import CLIENT_CERT_EXTENSION
from membermkt.testing.emulator.wechatpay._base import _Base


class _ServeMixin(_Base):
    if TYPE_CHECKING:

        def handle(self, request: httpx.Request) -> httpx.Response: ...

    @contextlib.contextmanager
    def serve(self, *, tls: bool = True, directory: str | None = None) -> Iterator[str]:
        """Serve the emulator on ``127.0.0.1`` in a background thread; yields the base URL.

        With ``tls=True`` (default) the server uses the test server certificate and asks for
        a client certificate signed by the test CA: the v2 gateway must be built with
        ``ca_file`` = the test CA and the merchant certificate, exactly as in production.
        ``directory`` receives the PEM files (a temporary directory by default).
        """
        import tempfile

        with contextlib.ExitStack() as stack:
            where = directory or stack.enter_context(tempfile.TemporaryDirectory())
            paths = self.credentials.write(where)
            emulator = self

            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def setup(self) -> None:
                    # Small writes are not held back by Nagle + delayed ACK.
                    self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    super().setup()

                def handle(self) -> None:
                    # The TLS handshake runs here, in the connection's own thread (not in
                    # the accept loop); a failed handshake just closes the connection.
                    try:
                        if isinstance(self.request, ssl.SSLSocket):
                            self.request.do_handshake()
                        super().handle()
                    except (ssl.SSLError, ConnectionError, TimeoutError):
                        self.close_connection = True

                def log_message(self, format: str, *args: Any) -> None:
                    return None

                def _serve(self) -> None:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                    extensions: dict[str, Any] = {}
                    if isinstance(self.connection, ssl.SSLSocket):
                        der = self.connection.getpeercert(binary_form=True)
                        if der:
                            extensions[CLIENT_CERT_EXTENSION] = der
                    req = httpx.Request(
                        self.command,
                        f"http://127.0.0.1{self.path}",
                        headers=list(self.headers.items()),
                        content=body,
                        extensions=extensions,
                    )
                    try:
                        resp = emulator.handle(req)
                    except httpx.TimeoutException:
                        self.close_connection = True
                        return  # no answer: the client sees the connection drop
                    except httpx.ConnectError:
                        self.close_connection = True
                        return
                    content = resp.read()
                    self.send_response(resp.status_code)
                    for k, v in resp.headers.items():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)

                do_GET = _serve
                do_POST = _serve

            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            if tls:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(paths["server_cert"], paths["server_key"])
                ctx.load_verify_locations(paths["ca_cert"])
                ctx.verify_mode = ssl.CERT_OPTIONAL
                server.socket = ctx.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                scheme = "https" if tls else "http"
                yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
            finally:
                server.shutdown()
                server.server_close()
                thread.join()

"""``SmsGateway``: an emulator of the Acme SMS gateway, with fault injection and a record of
what each handset received.

Use it in-process as an httpx transport (:meth:`SmsGateway.transport` /
:meth:`SmsGateway.async_transport`) or serve it on loopback (:meth:`SmsGateway.serve`) so
several processes share one gateway and one record.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

__all__ = ["SmsGateway"]

MAX_BATCH = 100


class SmsGateway:
    """The gateway's behaviour and state.

    Args:
        api_key: the accepted API key.
        idempotent: de-duplicate message ids (a repeated id is acknowledged, not re-sent).
        seed: seed of the fault injection.

    Attributes:
        received: message id → times delivered to a handset (> 1 is a duplicate).
        inbox: recipient → texts received.
        invalid / opted_out: recipients refused with codes 1001 / 1002.
        requests: requests handled.
        faults: kind → probability per request, kinds ``busy`` (503, nothing processed),
            ``throttle`` (429), ``lost`` (processed, answer lost: timeout / 504), ``drop``
            (the connection fails before anything is processed); and per message
            ``transient`` (3001) and ``slow`` (2001 with ``retry_after``).
        injected: fault kind → times injected.
    """

    def __init__(
        self, api_key: str = "test-key", *, idempotent: bool = True, seed: int = 0
    ) -> None:
        self.api_key = api_key
        self.idempotent = idempotent
        self.received: Counter[str] = Counter()
        self.inbox: dict[str, list[str]] = {}
        self.invalid: set[str] = set()
        self.opted_out: set[str] = set()
        self.requests = 0
        self.faults: dict[str, float] = {}
        self.injected: Counter[str] = Counter()
        self._scripted: list[str] = []
        self._rng = random.Random(seed)
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SmsGateway received={sum(self.received.values())} requests={self.requests}>"

    @property
    def duplicates(self) -> int:
        """Message ids delivered more than once."""
        return sum(1 for n in self.received.values() if n > 1)

    def fail_next(self, *kinds: str) -> None:
        """Inject these faults into the next requests, in order (request-level kinds, or
        ``transient`` / ``slow`` / ``invalid`` for every message of the request)."""
        with self._lock:
            self._scripted.extend(kinds)

    def _draw(self) -> str | None:
        if self._scripted:
            kind = self._scripted.pop(0)
            self.injected[kind] += 1
            return kind
        for kind in ("drop", "busy", "throttle", "lost"):
            rate = self.faults.get(kind, 0.0)
            if rate and self._rng.random() < rate:
                self.injected[kind] += 1
                return kind
        return None

    # ------------------------------------------------------------------ the API

    def process(self, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes, str | None]:
        """Handle one request: (status, headers, body, fault kind)."""
        with self._lock:
            self.requests += 1
            if headers.get("authorization") != f"Bearer {self.api_key}":
                return 401, {}, b'{"error":"bad api key"}', None
            fault = self._draw()
            if fault == "drop":
                return 0, {}, b"", "drop"
            if fault == "busy":
                return 503, {}, b'{"error":"busy"}', None
            if fault == "throttle":
                return 429, {"Retry-After": "1"}, b'{"error":"throttled"}', None
            try:
                messages = json.loads(body)["messages"]
            except (ValueError, KeyError, TypeError):
                return 400, {}, b'{"error":"bad body"}', None
            if not isinstance(messages, list) or len(messages) > MAX_BATCH:
                return 400, {}, b'{"error":"1..100 messages"}', None
            out = [self._message(m, fault) for m in messages]
            data = json.dumps({"results": out}).encode()
            return 200, {"Content-Type": "application/json"}, data, fault

    def _message(self, m: dict[str, Any], fault: str | None) -> dict[str, Any]:
        mid, to = str(m.get("id")), str(m.get("to"))
        if self.idempotent and mid in self._ids:
            return {"id": mid, "status": "accepted", "code": 0, "message_id": self._ids[mid]}
        if fault == "invalid" or to in self.invalid:
            return {"id": mid, "status": "rejected", "code": 1001}
        if to in self.opted_out:
            return {"id": mid, "status": "rejected", "code": 1002}
        if fault == "transient" or self._rng.random() < self.faults.get("transient", 0.0):
            self.injected["transient"] += fault != "transient"
            return {"id": mid, "status": "retry", "code": 3001}
        if fault == "slow" or self._rng.random() < self.faults.get("slow", 0.0):
            self.injected["slow"] += fault != "slow"
            return {"id": mid, "status": "retry", "code": 2001, "retry_after": 0.5}
        self.received[mid] += 1
        self.inbox.setdefault(to, []).append(str(m.get("text", "")))
        message_id = f"sms-{len(self._ids) + 1}"
        self._ids[mid] = message_id
        return {"id": mid, "status": "accepted", "code": 0, "message_id": message_id}

    # ------------------------------------------------------------------ transports

    def _handle(self, request: httpx.Request) -> httpx.Response:
        status, headers, body, fault = self.process(request.headers, request.read())
        if fault == "drop":
            raise httpx.ConnectError("connection refused (injected)", request=request)
        if fault == "lost":
            raise httpx.ReadTimeout("answer lost (injected)", request=request)
        return httpx.Response(status, headers=headers, content=body)

    def transport(self) -> httpx.MockTransport:
        """An httpx transport running the gateway in-process (sync and async clients)."""
        return httpx.MockTransport(self._handle)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the gateway on ``127.0.0.1`` in a thread; yields the base URL.

        A ``lost`` fault answers 504 after processing; ``drop`` answers 503 before.
        """
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: avoid Nagle + delayed-ACK stalls
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, data, fault = gateway.process(headers, body)
                if fault == "drop":
                    status, extra, data = 503, {}, b'{"error":"busy"}'
                elif fault == "lost":
                    status, extra, data = 504, {}, b'{"error":"gateway timeout"}'
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

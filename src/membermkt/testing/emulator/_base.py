"""Machinery shared by the platform emulators: fault plans, call counters, the httpx
transport adapter and a loopback HTTP server.

An emulator is one function ``handle(request: httpx.Request) -> httpx.Response`` plus its
state. :class:`EmulatorTransport` runs it in-process for sync and async httpx clients;
:func:`serve` runs it on ``127.0.0.1`` in a background thread (HTTP/1.1 keep-alive) so
several processes can share one emulator. A handler signals "the answer is lost" by raising
:class:`LostResponse` (after doing the work: a timeout) or :class:`DroppedConnection`
(before: the request never arrived).
"""

from __future__ import annotations

import collections
import http.server
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import parse_qsl

import attrs
import httpx

from membermkt.errors import UsageError

__all__ = [
    "CallCounter",
    "DroppedConnection",
    "EmulatorTransport",
    "FaultPlan",
    "LoopbackServer",
    "LostResponse",
    "serve",
]

Handler = Callable[[httpx.Request], httpx.Response]
RawHandler = Callable[
    [str, str, Mapping[str, str], bytes], tuple[int, list[tuple[str, str]], bytes]
]
"""``(method, path, query, body) -> (status, headers, body)``: the fast server entry point."""


class LostResponse(Exception):
    """Raised by a handler: the request took effect but the answer never arrives."""


class DroppedConnection(Exception):
    """Raised by a handler: the connection dropped before the request arrived."""


@attrs.define
class _Scripted:
    kind: str
    api: str | None


class FaultPlan:
    """Seeded, switchable fault injection.

    Rates are probabilities per request and per fault kind, drawn in a fixed order from one
    ``random.Random(seed)``, so a run with the same seed and the same request order injects
    the same faults. :meth:`next` queues faults for the next matching requests (scripts).

    Args:
        kinds: the fault kinds this emulator understands.
        seed: the RNG seed.
    """

    def __init__(self, kinds: Iterable[str], *, seed: int = 0) -> None:
        self.kinds: tuple[str, ...] = tuple(kinds)
        self._rng = random.Random(seed)
        self._rates: dict[str, float] = {}
        self._apis: frozenset[str] | None = None
        self._script: collections.deque[_Scripted] = collections.deque()
        self._lock = threading.Lock()
        self.injected: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        active = {k: v for k, v in self._rates.items() if v}
        return f"FaultPlan({active}, scripted={len(self._script)})"

    def set(self, *, apis: Iterable[str] | None = None, **rates: float) -> None:
        """Set fault rates, e.g. ``set(busy=0.1, timeout=0.01)``; unnamed kinds keep theirs.

        Args:
            apis: only requests to these API names get random faults (``None``: all).
            rates: kind → probability in [0, 1].

        Raises:
            UsageError: for an unknown kind or a rate outside [0, 1].
        """
        for kind, rate in rates.items():
            if kind not in self.kinds:
                raise UsageError(f"unknown fault {kind!r}; known: {', '.join(self.kinds)}")
            if not 0.0 <= rate <= 1.0:
                raise UsageError(f"fault rate for {kind!r} must be in [0, 1], got {rate}")
        with self._lock:
            self._rates.update(rates)
            if apis is not None:
                self._apis = frozenset(apis)

    def clear(self) -> None:
        """No random faults, no scripted ones."""
        with self._lock:
            self._rates.clear()
            self._script.clear()
            self._apis = None

    def reseed(self, seed: int) -> None:
        """Restart the random sequence."""
        with self._lock:
            self._rng = random.Random(seed)

    def next(self, *kinds: str, api: str | None = None) -> None:
        """Queue faults for the next requests (to ``api`` only, if given), in order.

        Raises:
            UsageError: for an unknown kind.
        """
        for kind in kinds:
            if kind not in self.kinds:
                raise UsageError(f"unknown fault {kind!r}; known: {', '.join(self.kinds)}")
        with self._lock:
            self._script.extend(_Scripted(k, api) for k in kinds)

    def draw(self, api: str) -> str | None:
        """The fault for one request to ``api`` (``None``: none). Counts what it injects."""
        with self._lock:
            for i, s in enumerate(self._script):
                if s.api is None or s.api == api:
                    del self._script[i]
                    self.injected[s.kind] += 1
                    return s.kind
            if not self._rates or (self._apis is not None and api not in self._apis):
                return None
            for kind in self.kinds:
                rate = self._rates.get(kind, 0.0)
                if rate and self._rng.random() < rate:
                    self.injected[kind] += 1
                    return kind
        return None


class CallCounter:
    """Thread-safe counts of calls per API name."""

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def add(self, api: str) -> None:
        with self._lock:
            self._counts[api] += 1

    def __getitem__(self, api: str) -> int:
        return self._counts[api]

    def total(self) -> int:
        return self._counts.total()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __repr__(self) -> str:
        return f"CallCounter({self.snapshot()})"


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Runs an emulator handler in-process for both ``httpx.Client`` and ``AsyncClient``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def _call(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._handler(request)
        except LostResponse:
            raise httpx.ReadTimeout(
                "emulated timeout: the answer was lost", request=request
            ) from None
        except DroppedConnection:
            raise httpx.ConnectError("emulated dropped connection", request=request) from None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self._call(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self._call(request)


class LoopbackServer:
    """A running loopback server; :attr:`url` is its base URL. Stop with :meth:`close`."""

    def __init__(self, server: http.server.ThreadingHTTPServer, thread: threading.Thread):
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def __repr__(self) -> str:
        return f"LoopbackServer({self.url})"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    handler: Handler, *, port: int = 0, lost_hold: float = 0.5, raw: RawHandler | None = None
) -> LoopbackServer:
    """Serve ``handler`` on ``127.0.0.1:port`` (0: any free port) in a daemon thread.

    Args:
        handler: the emulator's request handler.
        raw: the same handler taking plain values (skips building httpx objects per
            request, which dominates the server's cost).
        port: the port.
        lost_hold: for a :class:`LostResponse`, how long the server holds the connection
            before closing it without an answer.
    """

    class _Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle + delayed ACK
            # add ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                if raw is not None:
                    path, _, query = self.path.partition("?")
                    status, headers, content = raw(self.command, path, dict(parse_qsl(query)), body)
                else:
                    request = httpx.Request(
                        self.command,
                        f"http://127.0.0.1{self.path}",
                        headers=list(self.headers.items()),
                        content=body,
                    )
                    response = handler(request)
                    status, content = response.status_code, response.content
                    headers = list(response.headers.items())
            except LostResponse:
                time.sleep(lost_hold)
                self.close_connection = True
                return
            except DroppedConnection:
                self.close_connection = True
                return
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = _handle
        do_POST = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="membermkt-emulator", daemon=True)
    thread.start()
    return LoopbackServer(server, thread)


@contextmanager
def serving(handler: Handler, **kwargs: float) -> Iterator[str]:
    """``with serving(handler) as url:`` — :func:`serve` as a context manager."""
    server = serve(handler, **kwargs)  # type: ignore[arg-type]
    try:
        yield server.url
    finally:
        server.close()

"""A real server under attack: a genuine push is answered within 1 s while hostile
requests are in flight, and a 200 MiB body never costs the server more than 2× the body
limit (1 MiB) of memory.

The server runs in a subprocess so its peak resident memory (``VmHWM``) is its own.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ._hostile import KEY, MAX_BODY, NOW, TOKEN, Hostile, genuine_xml

APPID = "wxserver00000001"
HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def server():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src"), str(HERE.parent)]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_server.py"), APPID, TOKEN, KEY, str(NOW)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def _post(port: int, req, timeout: float = 10.0) -> int:
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            req.method,
            f"/wechat/{APPID}?{urlencode(req.query, errors='surrogatepass')}",
            body=req.body,
            headers={"Content-Type": "text/xml"},
        )
        return conn.getresponse().status
    except (TimeoutError, ConnectionError, http.client.HTTPException):
        return -1
    finally:
        conn.close()


def test_genuine_push_answered_fast_under_attack(server):
    _, port = server
    stop = threading.Event()
    sent = [0]
    statuses: set[int] = set()

    def attack(seed: int) -> None:
        hostile = Hostile(APPID, wecom=False, seed=seed)
        names = sorted(hostile.classes)
        i = 0
        while not stop.is_set():
            req = hostile.classes[names[i % len(names)]]()
            statuses.add(_post(port, req))
            sent[0] += 1
            i += 1

    attackers = [threading.Thread(target=attack, args=(s,), daemon=True) for s in range(6)]
    for t in attackers:
        t.start()
    try:
        time.sleep(1.0)  # let the attack get going
        genuine = Hostile(APPID, wecom=False, seed=99)
        latencies = []
        for i in range(5):
            req = genuine.sealed("genuine", genuine_xml(openid=f"oREAL{i}").encode())
            t = time.perf_counter()
            assert _post(port, req) == 200
            latencies.append(time.perf_counter() - t)
            time.sleep(0.2)
    finally:
        stop.set()
        for t in attackers:
            t.join(30)
    assert sent[0] > 20, sent
    assert 500 not in statuses, statuses
    assert max(latencies) < 1.0, latencies


def _stream(port: int, total: int, *, declare: bool) -> bytes:
    """Send a ``total``-byte body (declared or not) and return what the server answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST /wechat/{APPID}?timestamp={NOW:.0f}&nonce=1&signature=x HTTP/1.1\r\nHost: x\r\n"
    if declare:
        head += f"Content-Length: {total}\r\n"
    sock.sendall((head + "\r\n").encode())
    chunk = b"A" * (1 << 20)
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server refused and closed: exactly what should happen
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except OSError:
        pass
    sock.close()
    return answer


def test_a_200_mib_body_costs_under_twice_the_limit(server):
    proc, port = server
    _post(port, Hostile(APPID, wecom=False).sealed("warm-up", genuine_xml().encode()))
    before = _hwm_kib(proc.pid)
    answer = _stream(port, 200 << 20, declare=True)
    assert answer == b"" or answer.startswith((b"HTTP/1.0 413", b"HTTP/1.1 413")), answer[:80]
    answer = _stream(port, 200 << 20, declare=False)  # no length: refused (411), not read
    assert answer == b"" or b" 411 " in answer[:20], answer[:80]
    time.sleep(0.2)
    growth = (_hwm_kib(proc.pid) - before) * 1024
    assert growth < 2 * MAX_BODY, f"peak memory grew by {growth / 2**20:.1f} MiB"
    assert proc.poll() is None  # still serving

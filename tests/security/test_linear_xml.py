"""The XML fast path is linear in its input for every input.

The former single-regex fast path backtracked exponentially on an unterminated CDATA
section (24 characters: 11.6 s). Here each adversarial shape is timed at 1 KiB and at
64 KiB: a linear reader takes ~64× longer for 64× the input; a quadratic one ~4096×, an
exponential one never finishes. The bound (< 200×) leaves room for timer noise while
still failing anything super-linear.

Measured so that a loaded machine (2 cores shared by many test runs) cannot fake a
super-linear ratio: CPU time of this thread (time spent descheduled is not counted), the
garbage collector paused (as :mod:`timeit` does), small and large runs interleaved (both see
the same machine state), the best of several runs (noise only ever adds time), and a ratio
over the bound measured again up to twice before failing. A quadratic reader is ~20× over
the bound on every attempt, so it still fails.
"""

from __future__ import annotations

import contextlib
import gc
import time

import pytest

from membermkt.channels.wechat._xml import _fast_fields, parse_fields
from membermkt.errors import DecryptError

SHAPES = {
    "unterminated_cdata": lambda n: b"<xml><ToUserName><![CDATA[" + b"a" * n,
    "cdata_of_brackets": lambda n: b"<xml><A><![CDATA[" + b"]" * n + b"</A></xml>",
    "cdata_a_bracket": lambda n: b"<xml><A><![CDATA[" + b"a]" * (n // 2) + b"</A></xml>",
    "many_cdata_starts": lambda n: b"<xml>" + b"<a><![CDATA[x" * (n // 13) + b"</xml>",
    "many_open_tags": lambda n: b"<xml>" + b"<a>" * (n // 3) + b"</xml>",
    "long_tag_name": lambda n: b"<xml><" + b"a" * n + b"</xml>",
    "many_flat_fields": lambda n: b"<xml>" + b"<a>1</a>" * (n // 8) + b"</xml>",
    "text_with_brackets": lambda n: b"<xml><A>" + b"]" * n + b"</A></xml>",
}


def _cpu_time(fn, data: bytes, loops: int) -> float:
    """CPU seconds of this thread for ``loops`` calls, the garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t = time.thread_time()
        for _ in range(loops):
            fn(data)
        return time.thread_time() - t
    finally:
        if enabled:
            gc.enable()


def _best_pair(fn, small: bytes, large: bytes, repeat: int) -> tuple[float, float]:
    """Seconds per call at each size: the best of ``repeat`` interleaved runs, each run
    reading the same number of bytes (``len(large) // len(small)`` small calls, one large)."""
    loops = len(large) // len(small)
    best_small = best_large = float("inf")
    for _ in range(repeat):
        best_small = min(best_small, _cpu_time(fn, small, loops) / loops)
        best_large = min(best_large, _cpu_time(fn, large, 1))
    return best_small, best_large


def _full(data: bytes) -> None:
    with contextlib.suppress(DecryptError):
        parse_fields(data)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("reader", [_fast_fields, _full], ids=["fast_path", "parse_fields"])
def test_time_grows_linearly(shape, reader):
    make = SHAPES[shape]
    small, large = make(1024), make(64 * 1024)
    ratios = []
    for _ in range(3):  # a ratio over the bound is measured again: noise does not repeat
        t_small, t_large = _best_pair(reader, small, large, 15)
        ratios.append(t_large / t_small)
        if ratios[-1] < 200:
            break
    ratio = min(ratios)
    assert ratio < 200, f"{shape}: 64 KiB took {ratio:.0f}x the time of 1 KiB ({ratios})"

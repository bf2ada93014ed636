"""The XML fast path is linear in its input for every input.

The former single-regex fast path backtracked exponentially on an unterminated CDATA
section (24 characters: 11.6 s). Here each adversarial shape is timed at 1 KiB and at
64 KiB: a linear reader takes ~64× longer for 64× the input; a quadratic one ~4096×, an
exponential one never finishes. The bound (< 200×) leaves room for timer noise while
still failing anything super-linear. Times are the best of several runs (noise only ever
adds time).
"""

from __future__ import annotations

import contextlib
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


def _best(fn, data: bytes, loops: int, repeat: int) -> float:
    """Seconds per call: the best of ``repeat`` runs of ``loops`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(loops):
            fn(data)
        best = min(best, time.perf_counter() - t)
    return best / loops


def _full(data: bytes) -> None:
    with contextlib.suppress(DecryptError):
        parse_fields(data)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("reader", [_fast_fields, _full], ids=["fast_path", "parse_fields"])
def test_time_grows_linearly(shape, reader):
    make = SHAPES[shape]
    small, large = make(1024), make(64 * 1024)
    # the same number of bytes per measurement, so both are well above timer resolution
    t_small = _best(reader, small, 64, 15)
    t_large = _best(reader, large, 1, 15)
    ratio = t_large / t_small
    assert ratio < 200, f"{shape}: 64 KiB took {ratio:.0f}x the time of 1 KiB"

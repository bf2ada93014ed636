"""Data cube (数据统计) fetchers: user, article, upstream-message analytics (pure).

Every data-cube API takes ``{begin_date, end_date}`` (``YYYY-MM-DD``, inclusive) and has a
**maximum span**; data exists from 2014-12-01 and for days up to *yesterday* (query the
previous day after 08:00 Beijing time, when it is computed). :func:`datacube` refuses a
window the platform would refuse; :func:`windows` cuts any range into allowed windows and
:func:`fetch_range` (an operation flow: ``oa.run(fetch_range(...))``) fetches them all.

Spans: ``getusersummary`` and ``getusercumulate`` 7 days (confirmed, official doc). The
others are from the official tables as recalled — **unconfirmed**: ``getarticlesummary`` 1,
``getarticletotal`` 1, ``getuserread`` 3, ``getuserreadhour`` 1, ``getusershare`` 7,
``getusersharehour`` 1, ``getupstreammsg`` 7, ``getupstreammsghour`` 1,
``getupstreammsgweek`` 30, ``getupstreammsgmonth`` 30, ``getupstreammsgdist`` 15,
``getupstreammsgdistweek`` 30, ``getupstreammsgdistmonth`` 30. The platform's refusal of a
too-long span is errcode 61501 (``date range error``; unconfirmed). Daily call quotas for
the data cube are not in the reference (none enforced client-side).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping
from typing import Any, Final

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = ["EARLIEST", "MAX_SPAN_DAYS", "datacube", "fetch_range", "windows"]

EARLIEST: Final = dt.date(2014, 12, 1)
MAX_SPAN_DAYS: Final[Mapping[str, int]] = {
    "getusersummary": 7,
    "getusercumulate": 7,
    "getarticlesummary": 1,
    "getarticletotal": 1,
    "getuserread": 3,
    "getuserreadhour": 1,
    "getusershare": 7,
    "getusersharehour": 1,
    "getupstreammsg": 7,
    "getupstreammsghour": 1,
    "getupstreammsgweek": 30,
    "getupstreammsgmonth": 30,
    "getupstreammsgdist": 15,
    "getupstreammsgdistweek": 30,
    "getupstreammsgdistmonth": 30,
}
"""API → the most days one call may cover (``end - begin + 1``)."""


def _check_api(api: str) -> int:
    span = MAX_SPAN_DAYS.get(api)
    if span is None:
        raise UsageError(f"unknown data-cube API {api!r}; known: {sorted(MAX_SPAN_DAYS)}")
    return span


def datacube(
    api: str, begin: dt.date, end: dt.date, *, today: dt.date
) -> ApiCall[tuple[Mapping[str, Any], ...]]:
    """``POST /datacube/<api>`` for ``begin..end`` (inclusive) → the ``list`` rows.

    Args:
        api: e.g. ``"getusersummary"`` (see :data:`MAX_SPAN_DAYS`).
        begin, end: the window, inclusive.
        today: today's date in Beijing time (the caller's clock; data ends yesterday).

    Raises:
        UsageError: for an unknown API, ``begin > end``, a window longer than the API's
            span, a window before 2014-12-01, or one reaching today or later.
    """
    span = _check_api(api)
    if begin > end:
        raise UsageError(f"{api}: begin_date {begin} is after end_date {end}")
    if (end - begin).days + 1 > span:
        raise UsageError(
            f"{api}: at most {span} day(s) per call, got {(end - begin).days + 1} "
            "(use windows()/fetch_range())"
        )
    if begin < EARLIEST:
        raise UsageError(f"{api}: no data before {EARLIEST}")
    if end >= today:
        raise UsageError(f"{api}: data is available up to yesterday ({today - dt.timedelta(1)})")
    path = f"/datacube/{api}"
    body = {"begin_date": begin.isoformat(), "end_date": end.isoformat()}
    return ApiCall(
        request=HttpRequest.post_json(path, body),
        parse=lambda d: tuple(d.get("list") or ()),
        idempotent=True,
    )


def windows(api: str, begin: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Cut ``begin..end`` into consecutive windows the API accepts.

    Raises:
        UsageError: for an unknown API or ``begin > end``.
    """
    span = _check_api(api)
    if begin > end:
        raise UsageError(f"{api}: begin {begin} is after end {end}")
    out = []
    cur = begin
    while cur <= end:
        last = min(end, cur + dt.timedelta(days=span - 1))
        out.append((cur, last))
        cur = last + dt.timedelta(days=1)
    return out


def fetch_range(
    api: str, begin: dt.date, end: dt.date, *, today: dt.date
) -> Generator[ApiCall[Any], Any, list[Mapping[str, Any]]]:
    """Operation flow: every row of ``begin..end``, window by window.

    Raises:
        UsageError: as :func:`datacube` (checked for the whole range first).
    """
    parts = windows(api, begin, end)
    datacube(api, parts[-1][0], parts[-1][1], today=today)  # refuse a bad range up front
    datacube(api, parts[0][0], parts[0][1], today=today)
    rows: list[Mapping[str, Any]] = []
    for lo, hi in parts:
        got = yield datacube(api, lo, hi, today=today)
        rows.extend(got)
    return rows

"""The data cube: ``/datacube/*`` with the platform's span limits.

Rows are whatever the test seeded with :meth:`_DataCubeMixin.seed_datacube` (by
``ref_date``); ``getusercumulate`` rows are computed from the account's followers when none
were seeded. Refusals: an unknown data-cube API 48001 (emulator choice), a malformed date
61500, ``begin > end``, a span over the API's maximum or an ``end_date`` not before today
(Beijing) 61501 — codes from the global list as recalled (**unconfirmed**).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from membermkt.channels.wechat.api.datacube import MAX_SPAN_DAYS
from membermkt.core.redpackets import BEIJING
from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, _Refuse


class _DataCubeMixin(_Base):
    """``/datacube/*``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cube: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def seed_datacube(self, appid: str, api: str, rows: list[Mapping[str, Any]]) -> None:
        """Add rows (each with ``ref_date``) that ``/datacube/<api>`` will answer."""
        with self.lock:
            self._cube.setdefault((appid, api), []).extend(dict(r) for r in rows)

    def _datacube(self, acct: Account, api: str, body: Mapping[str, Any]) -> dict[str, Any]:
        span = MAX_SPAN_DAYS.get(api)
        if span is None:
            raise _Refuse(48001, f"api unauthorized: /datacube/{api}")
        try:
            begin = dt.date.fromisoformat(str(body.get("begin_date")))
            end = dt.date.fromisoformat(str(body.get("end_date")))
        except ValueError:
            raise _Refuse(61500, "date format error") from None
        today = dt.datetime.fromtimestamp(self.now(), BEIJING).date()
        if begin > end or (end - begin).days + 1 > span or end >= today:
            raise _Refuse(61501, "date range error")
        rows = [
            r
            for r in self._cube.get((acct.appid, api), [])
            if begin.isoformat() <= str(r.get("ref_date", "")) <= end.isoformat()
        ]
        if api == "getusercumulate" and not rows:
            rows = []
            day = begin
            while day <= end:
                cutoff = dt.datetime.combine(day + dt.timedelta(1), dt.time(), BEIJING).timestamp()
                n = sum(
                    1 for f in acct.followers.values() if f.subscribed and f.subscribe_time < cutoff
                )
                rows.append({"ref_date": day.isoformat(), "cumulate_user": n})
                day += dt.timedelta(1)
        return {"list": rows}


def route(api: str) -> Callable[[_DataCubeMixin, Account, Any, Any], dict[str, Any]]:
    def handler(self: _DataCubeMixin, acct: Account, params: Any, body: Any) -> dict[str, Any]:
        return self._datacube(acct, api, body)

    return handler


ROUTES: dict[str, Callable[[_DataCubeMixin, Account, Any, Any], dict[str, Any]]] = {
    f"/datacube/{api}": route(api) for api in MAX_SPAN_DAYS
}

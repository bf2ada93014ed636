"""Progress reporting for campaign runs: a callback, and a ready tqdm adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from membermkt.errors import UsageError

__all__ = ["Progress", "ProgressCallback", "tqdm_progress"]


@attrs.frozen(slots=True, kw_only=True)
class Progress:
    """A snapshot of a run, passed to the progress callback after every batch.

    Attributes:
        campaign_id: the campaign.
        total: deliveries in the ledger for the campaign's channel when the run started.
        done: deliveries in a final state (sent, failed, unknown, pending confirmation),
            including those finished before this run or by other runners.
        sent / failed / unknown / pending: what this run has recorded so far.
        retried: retry attempts made by this run.
        finished: ``True`` on the last call of the run.
    """

    campaign_id: str
    total: int
    done: int
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0
    retried: int = 0
    finished: bool = False


ProgressCallback = Callable[[Progress], None]
"""``callback(progress)``; called from the runner's event loop, keep it quick."""


def tqdm_progress(**tqdm_kwargs: Any) -> ProgressCallback:
    """A progress callback drawing a tqdm bar (``pip install tqdm``).

    Keyword arguments go to ``tqdm.tqdm`` (``desc=``, ``file=``, ``disable=``, ...). The bar is
    created on the first report and closed on the last.

    Raises:
        UsageError: when tqdm is not installed.
    """
    try:
        from tqdm import tqdm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UsageError("tqdm_progress needs tqdm: pip install tqdm") from exc
    state: dict[str, Any] = {}

    def report(p: Progress) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = tqdm(total=p.total, initial=p.done, unit="msg", **tqdm_kwargs)
            state["bar"] = bar
        bar.n = p.done
        bar.set_postfix(sent=p.sent, failed=p.failed, unknown=p.unknown, refresh=False)
        bar.refresh()
        if p.finished:
            bar.close()
            state.pop("bar", None)

    return report

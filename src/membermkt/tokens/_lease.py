"""Keeping a refresh lock's lease alive while its holder fetches a token.

A lease frees the lock of a holder that died; but a live holder whose token endpoint is
slow must not lose it, or a second caller takes the lock and fetches too (single flight
lost). :class:`LeaseRenewer` renews the lease every third of its length until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

__all__ = ["AsyncLeaseRenewer", "LeaseRenewer"]

log = logging.getLogger(__name__)


class LeaseRenewer:
    """A daemon thread calling ``renew()`` every ``lease / 3`` seconds until :meth:`stop`."""

    def __init__(self, renew: Callable[[], object], lease: float) -> None:
        self._renew = renew
        self._every = max(lease / 3, 0.01)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="membermkt-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._renew()
            except Exception:  # a failed renewal only shortens the lease; log it
                log.warning("could not renew a token lock lease", exc_info=True)

    def stop(self) -> None:
        """Stop renewing (the caller then releases the lock)."""
        self._stop.set()
        self._thread.join()


class AsyncLeaseRenewer:
    """The asyncio twin of :class:`LeaseRenewer` (a task)."""

    def __init__(self, renew: Callable[[], Awaitable[object]], lease: float) -> None:
        self._renew = renew
        self._every = max(lease / 3, 0.01)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._renew()
            except Exception:
                log.warning("could not renew a token lock lease", exc_info=True)

    async def stop(self) -> None:
        """Stop renewing."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

"""The whole red-packet use case as sans-I/O flows, shared by the sync and async services."""

from __future__ import annotations

from membermkt.engine.redpackets.claiming import _ClaimFlows
from membermkt.engine.redpackets.reconciliation import _ReconcileFlows


class _RedPacketFlows(_ClaimFlows, _ReconcileFlows):
    """The red-packet use case as sans-I/O flows over the store (shared by both drivers)."""

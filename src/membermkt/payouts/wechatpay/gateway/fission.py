"""The fission (group) red-packet gateways: ``sendgroupredpack`` + ``gethbinfo`` over mutual
TLS, sync (:class:`WeChatPayFissionGateway`) and async (:class:`AsyncWeChatPayFissionGateway`).
Both build and classify through the same sans-I/O functions
(:mod:`membermkt.payouts.wechatpay.fission`, :mod:`membermkt.payouts.wechatpay.v2`), so the
ledger guarantees are the same: one packet per ``mch_billno``, an ambiguous answer queried
before anything is re-sent."""

from __future__ import annotations

from typing import Any

from membermkt.core.redpackets.fission import GROUP_REDPACK, FissionShare
from membermkt.payouts.base import PayoutRequest, PayoutResult
from membermkt.payouts.wechatpay import v2
from membermkt.payouts.wechatpay.fission import FissionConfig, build_sendgroupredpack, parse_hblist
from membermkt.payouts.wechatpay.gateway._credentials import MerchantCertificate
from membermkt.payouts.wechatpay.gateway._redpack import (
    AsyncWeChatPayV2Gateway,
    WeChatPayV2Gateway,
)

__all__ = ["AsyncWeChatPayFissionGateway", "WeChatPayFissionGateway"]


class WeChatPayFissionGateway(WeChatPayV2Gateway):
    """Group red packets through WeChat Pay API v2: one payout per group (the total),
    re-entrant on ``mch_billno`` like ``sendredpack``; :meth:`shares` reads who opened.

    Pair it with a rule whose product is
    :func:`~membermkt.core.redpackets.fission.group_redpack_product` (same ``total_num``).

    Args:
        config: the merchant's :class:`~membermkt.payouts.wechatpay.v2.RedPacketConfig`.
        certificate: the merchant certificate (mutual TLS is required).
        fission: the :class:`~membermkt.payouts.wechatpay.fission.FissionConfig`.
        kwargs: as :class:`~membermkt.payouts.wechatpay.gateway.WeChatPayV2Gateway`.
    """

    product: str = GROUP_REDPACK

    def __init__(
        self,
        config: v2.RedPacketConfig,
        certificate: MerchantCertificate,
        *,
        fission: FissionConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, certificate, **kwargs)
        self.fission = fission

    def pay(self, request: PayoutRequest) -> PayoutResult:
        """Send one group packet under ``request.bill_no`` (``amount_fen`` = the total)."""
        req = build_sendgroupredpack(self.config, self.fission, request, self._nonce())
        resp = self._send(request.bill_no, req)
        if isinstance(resp, PayoutResult):
            return resp
        return v2.parse_sendredpack(request.bill_no, resp, self.config.api_key)

    def shares(self, bill_no: str) -> tuple[FissionShare, ...]:
        """Who opened a share of ``bill_no`` so far (``gethbinfo``'s ``hblist``); ``()`` when
        the query fails or nobody opened one yet.

        Raises:
            DecryptError: for an answer the hardened XML parser refuses.
        """
        resp = self._send(bill_no, v2.build_gethbinfo(self.config, bill_no, self._nonce()))
        if isinstance(resp, PayoutResult):
            return ()
        return parse_hblist(resp)


class AsyncWeChatPayFissionGateway(AsyncWeChatPayV2Gateway):
    """The async twin of :class:`WeChatPayFissionGateway` (same arguments, awaited methods);
    pair it with :class:`~membermkt.engine.redpackets.AsyncRedPacketService` and
    :func:`~membermkt.engine.redpackets.fission.arecord_fission_claims`."""

    product: str = GROUP_REDPACK

    def __init__(
        self,
        config: v2.RedPacketConfig,
        certificate: MerchantCertificate,
        *,
        fission: FissionConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, certificate, **kwargs)
        self.fission = fission

    async def pay(self, request: PayoutRequest) -> PayoutResult:
        """Send one group packet under ``request.bill_no`` (``amount_fen`` = the total)."""
        req = build_sendgroupredpack(self.config, self.fission, request, self._nonce())
        resp = await self._send(request.bill_no, req)
        if isinstance(resp, PayoutResult):
            return resp
        return v2.parse_sendredpack(request.bill_no, resp, self.config.api_key)

    async def shares(self, bill_no: str) -> tuple[FissionShare, ...]:
        """See :meth:`WeChatPayFissionGateway.shares`.

        Raises:
            DecryptError: for an answer the hardened XML parser refuses.
        """
        resp = await self._send(bill_no, v2.build_gethbinfo(self.config, bill_no, self._nonce()))
        if isinstance(resp, PayoutResult):
            return ()
        return parse_hblist(resp)

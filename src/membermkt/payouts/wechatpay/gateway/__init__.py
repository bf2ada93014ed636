"""WeChat Pay gateways: the I/O drivers around the sans-I/O :mod:`.v2` and :mod:`.v3` layers.

* :class:`WeChatPayV2Gateway` / :class:`AsyncWeChatPayV2Gateway` — cash red packets
  (``sendredpack`` / ``gethbinfo``) over mutual TLS with the merchant certificate.
* :class:`WeChatPayV3Gateway` / :class:`AsyncWeChatPayV3Gateway` — merchant transfers,
  RSA-signed requests, verified responses and callbacks.

Credentials are loaded by explicit functions that fail early with a :class:`ConfigError`
saying what to fix (:meth:`MerchantCertificate.load`, :func:`load_merchant_signer`,
:func:`load_platform_keys`); constructors do no I/O, the HTTP client is created on first use.
Every gateway accepts ``transport=`` (e.g. the emulator's) or ``http_client=`` (yours; you
then own its lifecycle and its TLS settings).

Gateways never raise for a platform answer or a transport failure: they return a
:class:`~membermkt.payouts.base.PayoutResult` classified as described in
:mod:`membermkt.payouts.base` (timeouts are ``UNKNOWN``).

Layout: :mod:`._credentials` (credential loaders), :mod:`._shared` (what both families
share), :mod:`._redpack` (v2 gateways) and :mod:`._transfer` (v3 gateways).
"""

from membermkt.payouts.wechatpay.gateway._credentials import (
    MerchantCertificate,
    certificate_serial,
    load_merchant_signer,
    load_platform_keys,
)
from membermkt.payouts.wechatpay.gateway._redpack import (
    AsyncWeChatPayV2Gateway,
    WeChatPayV2Gateway,
)
from membermkt.payouts.wechatpay.gateway._shared import API_BASE, CLIENT_CERT_EXTENSION
from membermkt.payouts.wechatpay.gateway._transfer import (
    AsyncWeChatPayV3Gateway,
    WeChatPayV3Gateway,
)

__all__ = [
    "API_BASE",
    "CLIENT_CERT_EXTENSION",
    "AsyncWeChatPayV2Gateway",
    "AsyncWeChatPayV3Gateway",
    "MerchantCertificate",
    "WeChatPayV2Gateway",
    "WeChatPayV3Gateway",
    "certificate_serial",
    "load_merchant_signer",
    "load_platform_keys",
]

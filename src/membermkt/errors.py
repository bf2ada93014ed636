"""Every error membermkt raises on purpose.

The tree is grouped by *who is at fault and what the caller can do*::

    MembermktError                     base; never raised directly
      UsageError (also ValueError)     you called us wrongly: bad argument, bad config
        SegmentError                   invalid segment / JSON; carries the node path
        IdentityConflict               a link/merge/import the identity rules refuse
        PluginError                    a channel plugin failed to load or does not conform
        ConfigError                    missing/wrong credentials, certificates, URLs
          PhoneKeyRequired             a store asked to keep phone identities has no phone key
      SignatureError                   a peer's message failed signature verification
      DecryptError                     a peer's message could not be decrypted/decoded
        MalformedPushError             an authentic push whose field values can never be used
      PlatformError                    the platform answered with an error (errcode, errmsg, api)
        TokenError                     credential/token problems after the refresh budget
        RateLimitError                 quota or frequency limit; carries a retry hint if known
        PermanentDeliveryError         the platform will never accept this delivery
      TransportError                   no usable answer (timeout, connection); wraps httpx
      QuotaExceeded                    a client-side or domain quota refuses the call
      BudgetExceeded                   a money budget refuses a reservation
      StoreError                       storage failed; wraps the driver error
        StoreUnavailable               the database cannot be reached
        ConflictError                  a concurrent update lost (optimistic check failed)
      LedgerError                      a delivery/payout ledger transition is not allowed

Conventions: every message names the thing that was wrong and, where possible, what to do.
Structured fields are attributes, not only text. Errors are chained with ``raise ... from``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "ConflictError",
    "DecryptError",
    "IdentityConflict",
    "JourneyError",
    "LedgerError",
    "MalformedPushError",
    "MembermktError",
    "PermanentDeliveryError",
    "PhoneKeyRequired",
    "PlatformError",
    "PluginError",
    "QuotaExceeded",
    "RateLimitError",
    "SegmentError",
    "SignatureError",
    "StoreError",
    "StoreUnavailable",
    "TokenError",
    "TransportError",
    "UsageError",
]


class MembermktError(Exception):
    """Base class of every error membermkt raises on purpose. Never raised directly."""


class UsageError(MembermktError, ValueError):
    """The caller passed something invalid: a bad argument, value or configuration.

    Also a :class:`ValueError`, so generic ``except ValueError`` handlers still work.
    """


class SegmentError(UsageError):
    """A segment (or its JSON form) is invalid.

    Attributes:
        path: where in the segment tree / JSON document the bad node is, as a
            JSON-pointer-like string such as ``"$.args[1].value"`` (``"$"`` is the root).
        reason: what was wrong / what was expected there.
    """

    def __init__(self, reason: str, path: str = "$") -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class JourneyError(UsageError):
    """A journey definition (or its JSON form) is invalid: it names the step and the problem."""


class IdentityConflict(UsageError):
    """A link between identities that the rules refuse: evidence that does not support the
    pair, a merge that would give one member two different identities of a kind a person holds
    once (two unionids, two openids of one appid), or an import that would move an identity
    from one member to another.

    Attributes:
        members: the member ids involved (may be empty).
    """

    def __init__(self, message: str, *, members: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.members = members


class PluginError(UsageError):
    """A channel plugin could not be loaded or does not honour the ``Channel`` protocol.

    Attributes:
        name: the plugin (entry point) name.
        distribution: the distribution providing it, if known.
    """

    def __init__(self, message: str, *, name: str = "", distribution: str | None = None) -> None:
        self.name = name
        self.distribution = distribution
        super().__init__(message)


class ConfigError(UsageError):
    """Configuration is missing or wrong (credentials, certificate files, URLs, keys)."""


class PhoneKeyRequired(ConfigError):
    """A persistent store was asked to keep a phone identity it has no key for: the store
    has no phone key ring (``MEMBERMKT_PHONE_KEYS`` or ``phones=``), or the identity is an
    unkeyed digest / a digest under a key id outside the ring. Configure a key (see
    ``docs/security.md``) or, for a throwaway demo only, pass ``insecure_demo=True``.

    Attributes:
        namespace: the refused identity's namespace (its key id; ``""`` when unkeyed).
    """

    def __init__(self, message: str, *, namespace: str = "") -> None:
        super().__init__(message)
        self.namespace = namespace


class SignatureError(MembermktError):
    """A message from a peer (WeChat, WeCom, WeChat Pay) failed signature verification."""


class DecryptError(MembermktError):
    """A message from a peer could not be decrypted or decoded (bad base64, padding, length,
    receive id, XML...)."""


class MalformedPushError(DecryptError):
    """A callback push decoded fine but one of its field values can never be processed
    (an empty or over-long ``FromUserName``, a ``CreateTime`` that is not a plain integer…).

    Callback handlers answer such a push so that the platform stops re-pushing it (it would
    fail the same way every time), and log and count it.

    Attributes:
        field: the XML field that was wrong.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class PlatformError(MembermktError):
    """The platform answered with an error.

    Attributes:
        errcode: the platform's numeric (or string, for WeChat Pay) error code.
        errmsg: the platform's message.
        api: the API name / path that was called.
        request_id: a request id if the platform returned one (``rid`` suffix, headers).
        retryable: whether retrying the same request later can succeed.
    """

    def __init__(
        self,
        errcode: int | str,
        errmsg: str,
        api: str,
        *,
        request_id: str | None = None,
        retryable: bool = False,
        payload: Any = None,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        self.request_id = request_id
        self.retryable = retryable
        self.payload = payload
        super().__init__(f"{api}: errcode {errcode}: {errmsg}")


class TokenError(PlatformError):
    """Credential or access-token problem that survived the refresh budget
    (wrong secret, IP not whitelisted, token invalid after one refresh)."""


class RateLimitError(PlatformError):
    """The platform refused because of a quota or frequency limit.

    Attributes:
        retry_after: seconds to wait before retrying, if known (``None``: next period).
        surface: the wait is longer than any retry inside one call can bridge (45009 daily
            quota, 45066 same ``clientmsgid`` within a minute): the HTTP client raises it at
            once instead of retrying, and the caller (the campaign runner) defers or waits.
    """

    def __init__(
        self,
        errcode: int | str,
        errmsg: str,
        api: str,
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        payload: Any = None,
        surface: bool = False,
    ) -> None:
        super().__init__(
            errcode, errmsg, api, request_id=request_id, retryable=retryable, payload=payload
        )
        self.retry_after = retry_after
        self.surface = surface


class PermanentDeliveryError(PlatformError):
    """The platform will never accept this delivery (receiver unfollowed, blocked messages,
    outside the interaction window, ...). Do not retry."""


class TransportError(MembermktError):
    """No usable answer from the platform: timeout, connection refused/dropped, bad HTTP.

    Attributes:
        api: the API that was being called.
        ambiguous: ``True`` when the request may have reached the platform (so a mutating
            call may have taken effect and must not be blindly re-sent without its key).
    """

    def __init__(self, message: str, *, api: str = "", ambiguous: bool = True) -> None:
        self.api = api
        self.ambiguous = ambiguous
        super().__init__(message)


class QuotaExceeded(MembermktError):
    """A quota refuses the action before the platform would (client-side API budget,
    per-member monthly mass-send quota, ...).

    Attributes:
        quota: the name of the quota.
        limit: the limit that would be exceeded, if numeric.
    """

    def __init__(self, message: str, *, quota: str = "", limit: int | None = None) -> None:
        self.quota = quota
        self.limit = limit
        super().__init__(message)


class BudgetExceeded(MembermktError):
    """A money budget (total, daily, per member) refuses a reservation.

    Attributes:
        budget: the budget's key.
        requested: the amount asked for, in fen.
        remaining: what was left, in fen.
    """

    def __init__(
        self, message: str, *, budget: str = "", requested: int = 0, remaining: int = 0
    ) -> None:
        self.budget = budget
        self.requested = requested
        self.remaining = remaining
        super().__init__(message)


class StoreError(MembermktError):
    """Storage failed. The driver's exception is chained as ``__cause__``."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, wrong host/port/credentials)."""


class ConflictError(StoreError):
    """A concurrent update won; the operation may be retried after re-reading."""


class LedgerError(MembermktError):
    """A ledger transition that is not allowed (e.g. ``sent -> planned``)."""

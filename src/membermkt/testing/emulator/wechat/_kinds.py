"""Account types (service / subscription account): what a subscription account may not call,
and its one successful ``mass/sendall`` a day (:mod:`membermkt.core.accounts`)."""

from __future__ import annotations

import datetime as dt

from membermkt.core.accounts import (
    SERVICE_ONLY_APIS,
    SUBSCRIPTION_SENDALL_PER_DAY,
    AccountType,
)
from membermkt.core.redpackets import BEIJING
from membermkt.testing.emulator.wechat._model import Account, _Refuse

SENDALL = "/cgi-bin/message/mass/sendall"


def _day(t: float) -> dt.date:
    return dt.datetime.fromtimestamp(t, BEIJING).date()


def before(acct: Account, api: str, now: float) -> None:
    """Refuse what the account's type may not do, before the API runs.

    Raises:
        _Refuse: 48001 for a service-only API on a subscription account (reference §1.10:
            "API unauthorized for this account"), 45028 for a second successful
            ``sendall`` on the same Beijing day (reference §1.4, §5).
    """
    if acct.account_type is not AccountType.SUBSCRIPTION:
        return
    # rule: oa.account_type -- subscription: 48001 on mass/send and template/send, 45028
    if api in SERVICE_ONLY_APIS:
        raise _Refuse(48001, "api unauthorized")
    if api == SENDALL:
        today = _day(now)
        if sum(1 for t in acct.sendall_ok if _day(t) == today) >= SUBSCRIPTION_SENDALL_PER_DAY:
            raise _Refuse(45028, "has no masssend quota")


def after(acct: Account, api: str, now: float) -> None:
    """Record a successful ``sendall`` of a subscription account."""
    if acct.account_type is AccountType.SUBSCRIPTION and api == SENDALL:
        acct.sendall_ok.append(now)

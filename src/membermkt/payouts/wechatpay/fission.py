"""Fission (group) red packets over API v2, sans-I/O: ``sendgroupredpack`` and the
``hblist`` of ``gethbinfo`` (reference §4.2).

The request is ``sendredpack``'s plus ``total_num`` (≥ 3) and ``amt_type=ALL_RAND``;
``total_amount`` is the group's total and ``re_openid`` the seed member. The answer has the
same shape as ``sendredpack``'s, so it is classified by
:func:`membermkt.payouts.wechatpay.v2.parse_sendredpack` (same safety-first rules). The
merchant certificate (mutual TLS) is required, as for every v2 red-packet API.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from xml.etree import ElementTree

import attrs

from membermkt.core.redpackets import BEIJING
from membermkt.core.redpackets.fission import GROUP_MAX_NUM, GROUP_MIN_NUM, FissionShare
from membermkt.errors import DecryptError, UsageError
from membermkt.payouts.base import HttpRequest, HttpResponse, PayoutRequest
from membermkt.payouts.wechatpay.signing import from_xml, to_xml, v2_sign
from membermkt.payouts.wechatpay.v2 import RedPacketConfig

__all__ = ["SENDGROUPREDPACK_PATH", "FissionConfig", "build_sendgroupredpack", "parse_hblist"]

SENDGROUPREDPACK_PATH: Final = "/mmpaymkttransfers/sendgroupredpack"


@attrs.frozen(slots=True, kw_only=True)
class FissionConfig:
    """How a group packet splits.

    Attributes:
        total_num: shares per packet, 3..20 (the upper bound is unconfirmed).
        amt_type: ``"ALL_RAND"`` (the only documented value).

    Raises:
        UsageError: for a share count outside 3..20 or another ``amt_type``.
    """

    total_num: int
    amt_type: str = "ALL_RAND"

    def __attrs_post_init__(self) -> None:
        if isinstance(self.total_num, bool) or not GROUP_MIN_NUM <= self.total_num <= GROUP_MAX_NUM:
            raise UsageError(
                f"total_num must be {GROUP_MIN_NUM}..{GROUP_MAX_NUM} for a fission red packet, "
                f"got {self.total_num}"
            )
        if self.amt_type != "ALL_RAND":
            raise UsageError(f"amt_type must be 'ALL_RAND', got {self.amt_type!r}")


def build_sendgroupredpack(
    config: RedPacketConfig, fission: FissionConfig, request: PayoutRequest, nonce: str
) -> HttpRequest:
    """The signed ``sendgroupredpack`` request (``request.amount_fen`` is the total).

    Raises:
        UsageError: when the total cannot give every share at least 1 fen.
    """
    if request.amount_fen < fission.total_num:
        raise UsageError("the group total must cover every share")
    params: dict[str, object] = {
        "nonce_str": nonce,
        "mch_billno": request.bill_no,
        "mch_id": config.mch_id,
        "wxappid": config.wxappid,
        "send_name": config.send_name,
        "re_openid": request.openid,
        "total_amount": request.amount_fen,
        "total_num": fission.total_num,
        "amt_type": fission.amt_type,
        "wishing": (request.remark or config.wishing)[:128],
        "act_name": config.act_name,
        "remark": config.remark,
        "scene_id": config.scene_id,
    }
    params["sign"] = v2_sign(params, config.api_key)
    return HttpRequest(
        method="POST",
        path=SENDGROUPREDPACK_PATH,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        body=to_xml(params),
    )


def _time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    except ValueError:
        return None


def parse_hblist(response: HttpResponse) -> tuple[FissionShare, ...]:
    """The opened shares in a ``gethbinfo`` answer (``hblist/hbinfo{openid, amount,
    rcv_time}``; empty when nobody opened one or the answer is not a success).

    The body goes through the hardened parser first (size, no DTD/entities, ``<xml>`` root).

    Raises:
        DecryptError: for a body the hardened parser refuses.
    """
    fields = from_xml(response.body)
    if fields.get("return_code") != "SUCCESS" or fields.get("result_code") != "SUCCESS":
        return ()
    root = ElementTree.fromstring(response.body)
    hblist = root.find("hblist")
    if hblist is None:
        return ()
    out: list[FissionShare] = []
    for info in hblist.findall("hbinfo"):
        openid = (info.findtext("openid") or "").strip()
        amount = (info.findtext("amount") or "").strip()
        if not openid or not amount.isdigit():
            raise DecryptError("gethbinfo hblist entry without openid/amount")
        out.append(
            FissionShare(
                openid=openid,
                amount_fen=int(amount),
                received_at=_time((info.findtext("rcv_time") or "").strip()),
            )
        )
    return tuple(out)

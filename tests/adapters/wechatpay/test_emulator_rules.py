"""One test per WeChat Pay emulator rule: break it with a raw request and assert the
platform's refusal (codes from reference §4 and the official v2 error table; guesses are
marked in the emulator's code). Each test's docstring names its rule id (``Rule <id>``); the
rule inventory test checks every ``# rule:`` marker has one."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from membermkt.payouts.base import PayoutRequest, PayoutStatus
from membermkt.payouts.wechatpay import v3
from membermkt.payouts.wechatpay.gateway import (
    CLIENT_CERT_EXTENSION,
    WeChatPayV3Gateway,
    load_merchant_signer,
    load_platform_keys,
)
from membermkt.payouts.wechatpay.signing import from_xml, rsa_oaep_encrypt, to_xml, v2_sign
from membermkt.testing.emulator.wechatpay import TestCredentials, WeChatPayEmulator

from .conftest import API_KEY, API_V3_KEY, APPID, MCH_ID, v3_config

BILL = "1900000109202611230000000001"
T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, step: dt.timedelta = dt.timedelta(milliseconds=100)) -> None:
        self.at = T0
        self.step = step

    def now(self) -> dt.datetime:
        self.at += self.step
        return self.at


def make(creds: TestCredentials, **kw: Any) -> tuple[WeChatPayEmulator, Clock]:
    clock = Clock(kw.pop("step", dt.timedelta(milliseconds=100)))
    emulator = WeChatPayEmulator(
        creds, appid=APPID, api_key=API_KEY, api_v3_key=API_V3_KEY, clock=clock.now, **kw
    )
    return emulator, clock


def v2_fields(**override: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "nonce_str": secrets.token_hex(8),
        "mch_billno": BILL,
        "mch_id": MCH_ID,
        "wxappid": APPID,
        "send_name": "榴莲小店",
        "re_openid": "o-buyer-1",
        "total_amount": 500,
        "total_num": 1,
        "wishing": "感谢购买",
        "client_ip": "127.0.0.1",
        "act_name": "包裹红包",
        "remark": "扫码关注领红包",
    }
    fields.update(override)
    return {k: v for k, v in fields.items() if v is not None}


def v2_send(emulator: WeChatPayEmulator, **override: object) -> dict[str, str]:
    fields = v2_fields(**override)
    fields["sign"] = v2_sign(fields, API_KEY)
    request = httpx.Request(
        "POST",
        "https://api.mch.weixin.qq.com/mmpaymkttransfers/sendredpack",
        content=to_xml(fields),
        extensions={CLIENT_CERT_EXTENSION: emulator._merchant_der},
    )
    return from_xml(emulator.handle(request).read())


def refused(answer: dict[str, str], code: str) -> bool:
    return answer.get("result_code") == "FAIL" and answer.get("err_code") == code


# --------------------------------------------------------------------------- v2


@pytest.mark.parametrize(
    "missing", ["re_openid", "send_name", "act_name", "wishing", "remark", "client_ip"]
)
def test_v2_required_fields(creds: TestCredentials, missing: str) -> None:
    """Rule v2.required_fields: a request without a required field is PARAM_ERROR (an
    empty re_openid was paid before)."""
    emulator, _ = make(creds)
    assert refused(v2_send(emulator, **{missing: None}), "PARAM_ERROR")
    assert emulator.payments == []


def test_v2_total_num(creds: TestCredentials) -> None:
    """Rule v2.total_num: a cash red packet has total_num 1."""
    emulator, _ = make(creds)
    assert refused(v2_send(emulator, total_num=2), "PARAM_ERROR")
    assert emulator.payments == []


def test_v2_scene_id(creds: TestCredentials) -> None:
    """Rule v2.scene_id: only PRODUCT_1..PRODUCT_8."""
    emulator, _ = make(creds)
    assert refused(v2_send(emulator, scene_id="PRODUCT_9"), "PARAM_ERROR")
    assert v2_send(emulator, scene_id="PRODUCT_1")["result_code"] == "SUCCESS"


def test_v2_amount_range(creds: TestCredentials) -> None:
    """Rule v2.amount_range: 1-200 CNY without scene_id (MONEY_LIMIT); outside that range
    only with a scene_id."""
    emulator, _ = make(creds)
    assert refused(v2_send(emulator, total_amount=50), "MONEY_LIMIT")
    assert refused(v2_send(emulator, total_amount=20_001), "MONEY_LIMIT")
    ok = v2_send(emulator, total_amount=50, scene_id="PRODUCT_2")
    assert ok["result_code"] == "SUCCESS"
    assert [p.amount_fen for p in emulator.payments] == [50]


def test_v2_fatal_error(creds: TestCredentials) -> None:
    """Rule v2.fatal_error: the same mch_billno with another openid or amount is
    FATAL_ERROR, and the client classifies it as not paid under this request."""
    emulator, _ = make(creds)
    assert v2_send(emulator)["result_code"] == "SUCCESS"
    assert refused(v2_send(emulator, re_openid="o-someone-else"), "FATAL_ERROR")
    assert refused(v2_send(emulator, total_amount=600), "FATAL_ERROR")
    assert len(emulator.payments) == 1


def test_v2_user_daily(creds: TestCredentials) -> None:
    """Rule v2.user_daily: at most 10 packets (SENDNUM_LIMIT) and 1000 CNY
    (RCVDAMOUNT_LIMIT) per user per day — the official table's spellings."""
    emulator, _ = make(creds, per_user_daily_fen=1_000)
    assert v2_send(emulator, mch_billno=BILL[:-1] + "1")["result_code"] == "SUCCESS"
    assert v2_send(emulator, mch_billno=BILL[:-1] + "2")["result_code"] == "SUCCESS"
    assert refused(v2_send(emulator, mch_billno=BILL[:-1] + "3"), "RCVDAMOUNT_LIMIT")
    emulator2, _ = make(creds, per_user_daily_count=1)
    assert v2_send(emulator2, mch_billno=BILL[:-1] + "1")["result_code"] == "SUCCESS"
    assert refused(v2_send(emulator2, mch_billno=BILL[:-1] + "2"), "SENDNUM_LIMIT")


def test_pay_merchant_daily(creds: TestCredentials) -> None:
    """Rule pay.merchant_daily: the merchant's outflow per Beijing day is capped
    (SENDAMOUNT_LIMIT)."""
    emulator, _ = make(creds, merchant_daily_fen=800)
    assert v2_send(emulator, mch_billno=BILL[:-1] + "1")["result_code"] == "SUCCESS"
    answer = v2_send(emulator, mch_billno=BILL[:-1] + "2", re_openid="o-2")
    assert refused(answer, "SENDAMOUNT_LIMIT")


def test_v2_notenough(creds: TestCredentials) -> None:
    """Rule v2.notenough: no balance → NOTENOUGH and no bill; after a top-up the same
    mch_billno pays."""
    emulator, _ = make(creds, balance_fen=499)
    assert refused(v2_send(emulator), "NOTENOUGH")
    assert emulator.bills == {}
    emulator.top_up(1)
    assert v2_send(emulator)["result_code"] == "SUCCESS"
    assert emulator.balance_fen == 0


def test_v2_rate(creds: TestCredentials) -> None:
    """Rule v2.rate: sendredpack allows 30 requests a second (FREQ_LIMIT)."""
    emulator, _ = make(creds, step=dt.timedelta(0))  # every request in the same second
    answers = [
        v2_send(emulator, mch_billno=f"{BILL[:-2]}{i:02d}", re_openid=f"o-{i}") for i in range(31)
    ]
    assert all(a["result_code"] == "SUCCESS" for a in answers[:30])
    assert refused(answers[30], "FREQ_LIMIT")


# --------------------------------------------------------------------------- v3


@pytest.fixture
def signer_files(creds: TestCredentials, tmp_path: Path) -> dict[str, str]:
    return creds.write(tmp_path)


def v3_post(
    emulator: WeChatPayEmulator,
    clock: Clock,
    files: dict[str, str],
    path: str,
    body: dict[str, Any] | None,
    *,
    method: str = "POST",
    platform_serial: str | None = None,
) -> httpx.Response:
    signer = load_merchant_signer(MCH_ID, files["merchant_key"], cert_file=files["merchant_cert"])
    raw = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
    req = v3.sign_request(
        signer,
        method,
        path,
        raw,
        timestamp=int(clock.at.timestamp()),
        nonce=secrets.token_hex(8),
        platform_serial=platform_serial,
    )
    return emulator.handle(
        httpx.Request(
            method,
            f"https://api.mch.weixin.qq.com{path}",
            content=raw,
            headers=dict(req.headers),
        )
    )


def transfer_body(**override: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "appid": APPID,
        "out_bill_no": "T" + BILL,
        "transfer_scene_id": "1000",
        "openid": "o-buyer-1",
        "transfer_amount": 300,
        "transfer_remark": "包裹红包",
        "transfer_scene_report_infos": [
            {"info_type": "活动名称", "info_content": "包裹红包"},
            {"info_type": "奖励说明", "info_content": "签收奖励"},
        ],
    }
    body.update(override)
    return {k: v for k, v in body.items() if v is not None}


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json().get("code", ""))


@pytest.mark.parametrize("missing", ["transfer_scene_id", "transfer_remark"])
def test_v3_required_fields(
    creds: TestCredentials, signer_files: dict[str, str], missing: str
) -> None:
    """Rule v3.required_fields: transfer_scene_id and transfer_remark are required."""
    emulator, clock = make(creds)
    body = transfer_body(**{missing: None})
    assert code(v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, body)) == (
        400,
        "PARAM_ERROR",
    )


def test_v3_remark_length(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.remark_length: transfer_remark is at most 32 characters."""
    emulator, clock = make(creds)
    body = transfer_body(transfer_remark="红" * 33)
    assert code(v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, body))[1] == "PARAM_ERROR"


def test_v3_scene_report(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.scene_report: scene 1000 needs transfer_scene_report_infos (and the client
    refuses such a configuration)."""
    emulator, clock = make(creds)
    body = transfer_body(transfer_scene_report_infos=None)
    assert code(v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, body))[1] == "PARAM_ERROR"
    from membermkt.errors import ConfigError

    with pytest.raises(ConfigError, match="scene_report_infos"):
        v3.TransferConfig(appid=APPID, transfer_scene_id="1000", transfer_remark="x")


def test_v3_notify_url(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.notify_url: https only, no query."""
    emulator, clock = make(creds)
    body = transfer_body(notify_url="http://shop.example.com/notify")
    assert code(v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, body))[1] == "PARAM_ERROR"


def test_v3_user_name(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.user_name: from 2,000 CNY a user_name is required, RSA-OAEP encrypted with a
    platform key named in Wechatpay-Serial; the gateway sends it so."""
    emulator, clock = make(creds, v3_bounds=(1, 50_000_000))
    big = transfer_body(transfer_amount=200_000)
    assert code(v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, big))[1] == "PARAM_ERROR"
    garbage = transfer_body(transfer_amount=200_000, user_name="bm90LWVuY3J5cHRlZA==")
    answer = v3_post(
        emulator,
        clock,
        signer_files,
        v3.TRANSFER_PATH,
        garbage,
        platform_serial=creds.platform_serial,
    )
    assert code(answer)[1] == "PARAM_ERROR"
    sealed = rsa_oaep_encrypt(creds_public(creds), "张三")
    unnamed = v3_post(
        emulator, clock, signer_files, v3.TRANSFER_PATH, transfer_body(user_name=sealed)
    )
    assert code(unnamed)[1] == "PARAM_ERROR"  # encrypted, but no Wechatpay-Serial
    signer = load_merchant_signer(
        MCH_ID, signer_files["merchant_key"], cert_file=signer_files["merchant_cert"]
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    with WeChatPayV3Gateway(
        v3_config(), signer, keys, transport=emulator.transport(), clock=clock
    ) as gw:
        result = gw.pay(
            PayoutRequest(bill_no="T" + BILL, openid="o-1", amount_fen=250_000, user_name="张三")
        )
    assert result.status in (PayoutStatus.PENDING, PayoutStatus.SUCCESS), result
    assert [p.amount_fen for p in emulator.payments] == [250_000]


def creds_public(creds: TestCredentials):  # type: ignore[no-untyped-def]
    from membermkt.payouts.wechatpay.signing import load_public_key

    return load_public_key(creds.platform_public_key)


def test_v3_bill_reuse(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.bill_reuse: the same out_bill_no with another openid or amount is refused."""
    emulator, clock = make(creds)
    assert v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, transfer_body()).is_success
    other = transfer_body(openid="o-other")
    assert code(v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, other))[0] == 400
    assert len(emulator.payments) == 1


def test_v3_not_enough(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.not_enough: no balance → NOT_ENOUGH, no bill; the same out_bill_no pays
    after a top-up."""
    emulator, clock = make(creds, balance_fen=0)
    answer = v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, transfer_body())
    assert code(answer) == (403, "NOT_ENOUGH")
    assert emulator.bills == {}
    emulator.top_up(300)
    assert v3_post(emulator, clock, signer_files, v3.TRANSFER_PATH, transfer_body()).is_success


def test_v3_rate(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.rate: 100 requests a second per merchant (FREQUENCY_LIMITED)."""
    emulator, clock = make(creds, step=dt.timedelta(0))
    path = v3.query_path("T" + BILL)
    answers = [v3_post(emulator, clock, signer_files, path, None, method="GET") for _ in range(101)]
    assert {a.status_code for a in answers[:100]} == {404}
    assert code(answers[100]) == (429, "FREQUENCY_LIMITED")


def test_v3_cancel(creds: TestCredentials, signer_files: dict[str, str]) -> None:
    """Rule v3.cancel: a transfer waiting for the user can be cancelled (CANCELLED →
    FAILED), a finished one cannot; queries by transfer_bill_no find the bill."""
    emulator, clock = make(creds, auto_confirm=False)
    signer = load_merchant_signer(
        MCH_ID, signer_files["merchant_key"], cert_file=signer_files["merchant_cert"]
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    with WeChatPayV3Gateway(
        v3_config(), signer, keys, transport=emulator.transport(), clock=clock
    ) as gw:
        waiting = gw.pay(PayoutRequest(bill_no="T1" + BILL[:20], openid="o-1", amount_fen=300))
        assert waiting.state == "WAIT_USER_CONFIRM"
        assert waiting.platform_id
        by_platform = gw.query_transfer_bill(waiting.platform_id)
        assert (by_platform.bill_no, by_platform.state) == ("T1" + BILL[:20], "WAIT_USER_CONFIRM")
        cancelled = gw.cancel("T1" + BILL[:20])
        assert (cancelled.status, cancelled.state) == (PayoutStatus.FAILED, "CANCELLED")
        assert gw.query("T1" + BILL[:20]).state == "CANCELLED"
        done = gw.pay(PayoutRequest(bill_no="T2" + BILL[:20], openid="o-2", amount_fen=300))
        emulator.confirm("T2" + BILL[:20])
        refused_cancel = gw.cancel("T2" + BILL[:20])
        assert refused_cancel.status is PayoutStatus.UNKNOWN
        assert gw.query("T2" + BILL[:20]).status is PayoutStatus.SUCCESS
        assert done.bill_no == "T2" + BILL[:20]
    assert [p.bill_no for p in emulator.payments] == ["T2" + BILL[:20]]

"""WeChat Pay API v3 merchant transfer (商家转账), sans-I/O: build, sign, verify, classify.

``POST /v3/fund-app/mch-transfer/transfer-bills`` pays, ``GET .../out-bill-no/{out_bill_no}``
queries, ``MCHTRANSFER.BILL.FINISHED`` callbacks report the end (reference §4.3–4.6).

* Requests are signed SHA256withRSA with the merchant API key (:func:`sign_request`).
* Responses and callbacks are verified with the platform certificate or platform public key
  chosen by ``Wechatpay-Serial`` **before** anything in them is believed; a response that
  does not verify is classified ``UNKNOWN`` (it may be a forgery claiming success).
* Non-2xx answers are ``UNKNOWN`` unless the error code is a definite refusal: the reference
  says to query before ever changing ``out_bill_no``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from membermkt.errors import ConfigError, DecryptError, SignatureError
from membermkt.payouts.base import (
    HttpRequest,
    HttpResponse,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
)
from membermkt.payouts.wechatpay.signing import (
    AUTH_SCHEMA,
    PublicKeys,
    aead_decrypt,
    rsa_oaep_encrypt,
    rsa_sign,
    v3_authorization,
    v3_request_message,
    verify_v3_response,
)

__all__ = [
    "NOTIFY_ALGORITHM",
    "NOTIFY_EVENT",
    "NOTIFY_RESOURCE_TYPE",
    "SCENES_NEEDING_REPORT",
    "TRANSFER_PATH",
    "USER_NAME_FROM_FEN",
    "MerchantSigner",
    "TransferConfig",
    "build_query",
    "build_transfer",
    "cancel_path",
    "encryption_key",
    "parse_cancel",
    "parse_notification",
    "parse_query",
    "parse_query_by_transfer_bill",
    "parse_transfer",
    "query_path",
    "sign_request",
    "transfer_bill_path",
]

TRANSFER_PATH: Final = "/v3/fund-app/mch-transfer/transfer-bills"
NOTIFY_EVENT: Final = "MCHTRANSFER.BILL.FINISHED"
NOTIFY_RESOURCE_TYPE: Final = "encrypt-resource"
NOTIFY_ALGORITHM: Final = "AEAD_AES_256_GCM"
NOTIFY_ORIGINAL_TYPE: Final = "mch_payment"
SCENES_NEEDING_REPORT: Final = frozenset({"1000"})
"""Transfer scenes whose requests must carry ``transfer_scene_report_infos``."""
USER_NAME_FROM_FEN: Final = 200_000
"""From 2,000 CNY a transfer must carry the receiver's encrypted ``user_name`` (§4.6)."""

_STATE: Final = {
    "ACCEPTED": PayoutStatus.PENDING,
    "PROCESSING": PayoutStatus.PENDING,
    "WAIT_USER_CONFIRM": PayoutStatus.PENDING,
    "TRANSFERING": PayoutStatus.PENDING,  # sic, the platform's spelling (reference §4.6)
    "CANCELING": PayoutStatus.PENDING,  # name unconfirmed (reference §4.6)
    "SUCCESS": PayoutStatus.SUCCESS,
    "FAIL": PayoutStatus.FAILED,
    "CANCELLED": PayoutStatus.FAILED,
}

DEFINITE_REFUSALS: Final = frozenset({"PARAM_ERROR", "SIGN_ERROR", "NO_AUTH"})
"""v3 error codes taken as "the bill was not created" (request refused before any money
moved); everything else non-2xx is ``UNKNOWN``."""

NO_FUNDS_CODE: Final = "NOT_ENOUGH"
"""Merchant balance insufficient (name from common v3 practice, **unconfirmed** in our
reference): classified :attr:`PayoutStatus.NO_FUNDS` — keep ``out_bill_no``, top up, retry."""


@attrs.frozen(slots=True, kw_only=True)
class MerchantSigner:
    """The merchant's v3 request-signing identity.

    Attributes:
        mchid: merchant id.
        serial_no: serial number (hex) of the merchant API certificate.
        private_key: the merchant API private key (``apiclient_key.pem``).
    """

    mchid: str
    serial_no: str
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.mchid or not self.serial_no:
            raise ConfigError("MerchantSigner needs mchid and the merchant certificate serial_no")


@attrs.frozen(slots=True, kw_only=True)
class TransferConfig:
    """What a merchant sends with every v3 transfer.

    Attributes:
        appid: the appid the receivers' openids belong to (bound to the merchant).
        transfer_scene_id: the scene applied for in the console (e.g. ``"1000"`` cash
            marketing).
        transfer_remark: shown to the user (≤ 32 chars) when a request carries no remark.
        notify_url: https callback URL without query, or ``None``.
        user_recv_perception: the label shown to the user (e.g. ``"现金奖励"``), or ``None``.
        scene_report_infos: ``(info_type, info_content)`` pairs the scene requires.

    Raises:
        ConfigError: on a missing or over-long field.
    """

    appid: str
    transfer_scene_id: str
    transfer_remark: str
    notify_url: str | None = None
    user_recv_perception: str | None = None
    scene_report_infos: tuple[tuple[str, str], ...] = ()

    def __attrs_post_init__(self) -> None:
        if not self.appid or len(self.appid) > 32:
            raise ConfigError(f"TransferConfig.appid must be 1-32 chars, got {self.appid!r}")
        if not self.transfer_scene_id or len(self.transfer_scene_id) > 36:
            raise ConfigError("TransferConfig.transfer_scene_id must be 1-36 chars")
        if not self.transfer_remark or len(self.transfer_remark) > 32:
            raise ConfigError("TransferConfig.transfer_remark must be 1-32 chars")
        if self.notify_url is not None and (
            not self.notify_url.startswith("https://") or "?" in self.notify_url
        ):
            raise ConfigError(
                f"TransferConfig.notify_url must be https and carry no query: {self.notify_url!r}"
            )
        # rule: v3.scene_report -- scene 1000 (cash marketing) must report its activity
        # (reference §4.6 "required per scene"; the info_type names, e.g. 活动名称 /
        # 奖励说明, are unconfirmed)
        if self.transfer_scene_id in SCENES_NEEDING_REPORT and not self.scene_report_infos:
            raise ConfigError(
                f"TransferConfig: transfer_scene_id {self.transfer_scene_id} needs "
                "scene_report_infos, e.g. (('活动名称', '...'), ('奖励说明', '...'))"
            )


def _json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _serial_order(serial: str) -> int:
    try:
        return int(serial, 16)
    except ValueError:
        return -1


def encryption_key(keys: PublicKeys) -> tuple[str, rsa.RSAPublicKey]:
    """The platform key to encrypt sensitive fields with, and its id for the
    ``Wechatpay-Serial`` request header: the WeChat Pay public key (``PUB_KEY_ID_...``) when
    configured, else the platform certificate with the highest serial.

    Raises:
        ConfigError: without any platform key.
    """
    if not keys:
        raise ConfigError("no platform key to encrypt user_name with")
    ids = sorted(keys)
    chosen = next((k for k in ids if k.startswith("PUB_KEY_ID_")), None)
    if chosen is None:
        chosen = max(ids, key=_serial_order)
    return chosen, keys[chosen]


def build_transfer(
    config: TransferConfig,
    request: PayoutRequest,
    *,
    encrypt_with: tuple[str, rsa.RSAPublicKey] | None = None,
) -> tuple[str, bytes]:
    """The path and JSON body of a transfer (unsigned; see :func:`sign_request`).

    With ``request.user_name``, the name is RSA-OAEP encrypted with ``encrypt_with`` (an
    ``(id, key)`` pair from :func:`encryption_key`; the signed request must then carry
    ``Wechatpay-Serial: id``, reference §4.3).

    From :data:`USER_NAME_FROM_FEN` (2,000 CNY) the platform refuses a transfer without a
    ``user_name`` (reference §4.6).

    Raises:
        ConfigError: a ``user_name`` without ``encrypt_with``.
    """
    body: dict[str, Any] = {
        "appid": config.appid,
        "out_bill_no": request.bill_no,
        "transfer_scene_id": config.transfer_scene_id,
        "openid": request.openid,
        "transfer_amount": request.amount_fen,
        "transfer_remark": (request.remark or config.transfer_remark)[:32],
    }
    if config.notify_url:
        body["notify_url"] = config.notify_url
    if config.user_recv_perception:
        body["user_recv_perception"] = config.user_recv_perception
    if config.scene_report_infos:
        body["transfer_scene_report_infos"] = [
            {"info_type": t, "info_content": c} for t, c in config.scene_report_infos
        ]
    if request.user_name:
        if encrypt_with is None:
            raise ConfigError("a user_name must be encrypted: pass encrypt_with=encryption_key()")
        body["user_name"] = rsa_oaep_encrypt(encrypt_with[1], request.user_name)
    return TRANSFER_PATH, _json(body)


def cancel_path(bill_no: str) -> str:
    """``POST`` here cancels a transfer the user has not confirmed yet (reference §4.6)."""
    return f"{TRANSFER_PATH}/out-bill-no/{bill_no}/cancel"


def transfer_bill_path(transfer_bill_no: str) -> str:
    """The query path by the platform's ``transfer_bill_no`` (reference §4.6)."""
    return f"{TRANSFER_PATH}/transfer-bill-no/{transfer_bill_no}"


def query_path(bill_no: str) -> str:
    """The query path by merchant bill number."""
    return f"{TRANSFER_PATH}/out-bill-no/{bill_no}"


def build_query(bill_no: str) -> tuple[str, bytes]:
    """The path and (empty) body of a query by ``out_bill_no``."""
    return query_path(bill_no), b""


def sign_request(
    signer: MerchantSigner,
    method: str,
    path: str,
    body: bytes,
    *,
    timestamp: int,
    nonce: str,
    user_agent: str = "membermkt",
    platform_serial: str | None = None,
) -> HttpRequest:
    """Attach the ``Authorization`` header (and JSON headers) to a v3 request;
    ``platform_serial`` adds ``Wechatpay-Serial`` (a body with encrypted fields)."""
    signature = rsa_sign(
        signer.private_key, v3_request_message(method, path, timestamp, nonce, body)
    )
    headers = {
        "Authorization": v3_authorization(
            mchid=signer.mchid,
            serial_no=signer.serial_no,
            nonce=nonce,
            timestamp=timestamp,
            signature=signature,
        ),
        "Accept": "application/json",
        "User-Agent": user_agent,
    }
    if body:
        headers["Content-Type"] = "application/json"
    if platform_serial:
        headers["Wechatpay-Serial"] = platform_serial
    return HttpRequest(method=method, path=path, headers=headers, body=body)


def _payload(response: HttpResponse) -> dict[str, Any] | None:
    try:
        data = json.loads(response.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _from_state(bill_no: str, data: Mapping[str, Any]) -> PayoutResult:
    state = str(data.get("state", ""))
    amount = data.get("transfer_amount")
    return PayoutResult(
        bill_no=bill_no,
        status=_STATE.get(state, PayoutStatus.UNKNOWN),
        platform_id=str(data["transfer_bill_no"]) if data.get("transfer_bill_no") else None,
        state=state or None,
        reason=str(data["fail_reason"]) if data.get("fail_reason") else None,
        amount_fen=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        package_info=str(data["package_info"]) if data.get("package_info") else None,
    )


def _verified(
    bill_no: str, response: HttpResponse, keys: PublicKeys, now: dt.datetime | None
) -> PayoutResult | None:
    """``None`` when the response verifies, else an UNKNOWN result saying why."""
    try:
        verify_v3_response(response.headers, response.body, keys, now=now)
    except SignatureError as exc:
        return PayoutResult(
            bill_no=bill_no, status=PayoutStatus.UNKNOWN, state="BAD_SIGNATURE", reason=str(exc)
        )
    return None


def _error(bill_no: str, response: HttpResponse, data: Mapping[str, Any] | None) -> PayoutResult:
    code = str((data or {}).get("code", "")) or f"HTTP_{response.status_code}"
    message = str((data or {}).get("message", "")) or f"HTTP {response.status_code}"
    if 400 <= response.status_code < 500 and code == NO_FUNDS_CODE:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.NO_FUNDS,
            state=code,
            reason=message,
            retryable=True,
        )
    if 400 <= response.status_code < 500 and code in DEFINITE_REFUSALS:
        return PayoutResult(bill_no=bill_no, status=PayoutStatus.FAILED, state=code, reason=message)
    return PayoutResult(bill_no=bill_no, status=PayoutStatus.UNKNOWN, state=code, reason=message)


def parse_transfer(
    bill_no: str, response: HttpResponse, keys: PublicKeys, *, now: dt.datetime | None = None
) -> PayoutResult:
    """Classify a transfer answer after verifying its signature (never raises for what the
    platform says; an unverifiable answer is ``UNKNOWN``)."""
    if response.status_code >= 500:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=f"HTTP_{response.status_code}",
            reason="server error: outcome unknown",
        )
    bad = _verified(bill_no, response, keys, now)
    if bad is not None:
        return bad
    data = _payload(response)
    if not 200 <= response.status_code < 300 or data is None:
        return _error(bill_no, response, data)
    if data.get("out_bill_no") not in (None, bill_no):
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state="BILL_MISMATCH",
            reason=f"answer is about bill {data.get('out_bill_no')!r}",
        )
    return _from_state(bill_no, data)


def parse_query(
    bill_no: str, response: HttpResponse, keys: PublicKeys, *, now: dt.datetime | None = None
) -> PayoutResult:
    """Classify a query answer: 404 ``NOT_FOUND`` means the platform has no such bill."""
    if response.status_code >= 500:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=f"HTTP_{response.status_code}",
            reason="server error: outcome unknown",
        )
    bad = _verified(bill_no, response, keys, now)
    if bad is not None:
        return bad
    data = _payload(response)
    if response.status_code == 404 and (data or {}).get("code") == "NOT_FOUND":
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.NOT_FOUND,
            state="NOT_FOUND",
            reason=str((data or {}).get("message", "no such out_bill_no")),
        )
    if not 200 <= response.status_code < 300 or data is None:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=str((data or {}).get("code", f"HTTP_{response.status_code}")),
            reason=str((data or {}).get("message", "query failed")),
        )
    return _from_state(bill_no, data)


def parse_cancel(
    bill_no: str, response: HttpResponse, keys: PublicKeys, *, now: dt.datetime | None = None
) -> PayoutResult:
    """Classify a cancel answer: ``CANCELLED`` → failed (not paid; the reservation may be
    released), ``CANCELING`` → pending; a refusal (e.g. the user already confirmed) is
    ``UNKNOWN``: query the bill for where it stands."""
    if response.status_code >= 500:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=f"HTTP_{response.status_code}",
            reason="server error: outcome unknown",
        )
    bad = _verified(bill_no, response, keys, now)
    if bad is not None:
        return bad
    data = _payload(response)
    if not 200 <= response.status_code < 300 or data is None:
        return PayoutResult(
            bill_no=bill_no,
            status=PayoutStatus.UNKNOWN,
            state=str((data or {}).get("code", f"HTTP_{response.status_code}")),
            reason=str((data or {}).get("message", "cancel refused")),
        )
    return _from_state(bill_no, data)


def parse_query_by_transfer_bill(
    transfer_bill_no: str,
    response: HttpResponse,
    keys: PublicKeys,
    *,
    now: dt.datetime | None = None,
) -> PayoutResult:
    """Classify a query by ``transfer_bill_no``; the result's ``bill_no`` is the
    ``out_bill_no`` the platform names (``transfer_bill_no`` itself when it names none)."""
    data = _payload(response) or {}
    bill_no = str(data.get("out_bill_no") or transfer_bill_no)
    return parse_query(bill_no, response, keys, now=now)


def _expect(envelope: Mapping[str, Any], where: Mapping[str, Any], key: str, want: str) -> None:
    got = where.get(key)
    if got != want:
        raise DecryptError(
            f"WeChat Pay v3 callback {envelope.get('id', '?')}: {key} is {got!r}, "
            f"expected {want!r} (not a transfer notification)"
        )


def parse_notification(
    headers: Mapping[str, str],
    body: bytes,
    keys: PublicKeys,
    api_v3_key: str | bytes,
    *,
    now: dt.datetime | None = None,
) -> PayoutResult:
    """Verify and decrypt a ``MCHTRANSFER.BILL.FINISHED`` callback into a result.

    Callbacks repeat: process the result idempotently (the engine does, by bill number).

    The envelope must be a transfer notification: ``event_type``
    ``MCHTRANSFER.BILL.FINISHED``, ``resource_type`` ``encrypt-resource``, ``algorithm``
    ``AEAD_AES_256_GCM`` (and ``original_type`` ``mch_payment`` when given), signed with
    ``Wechatpay-Signature-Type`` ``WECHATPAY2-SHA256-RSA2048`` when the header is present.

    Raises:
        SignatureError: when the callback does not verify or names another signature type
            (answer the platform non-2xx).
        DecryptError: when the body or its resource cannot be decoded or decrypted, or the
            notification is of another kind.
    """
    kind = next((v for k, v in headers.items() if k.lower() == "wechatpay-signature-type"), None)
    if kind is not None and kind != AUTH_SCHEMA:
        raise SignatureError(
            f"WeChat Pay v3 callback: Wechatpay-Signature-Type {kind!r} is not {AUTH_SCHEMA}"
        )
    verify_v3_response(headers, body, keys, now=now)
    try:
        envelope = json.loads(body)
        resource = envelope["resource"]
        if not isinstance(envelope, dict) or not isinstance(resource, dict):
            raise TypeError("envelope and resource must be objects")
    except (ValueError, KeyError, TypeError) as exc:
        raise DecryptError(f"WeChat Pay v3 callback: unreadable body ({exc})") from exc
    # rule: v3.callback_kind -- a correctly signed notification of another kind (a
    # payment's TRANSACTION.SUCCESS, a refund) never becomes a payout result (§4.5 / §4.6)
    _expect(envelope, envelope, "event_type", NOTIFY_EVENT)
    _expect(envelope, envelope, "resource_type", NOTIFY_RESOURCE_TYPE)
    _expect(envelope, resource, "algorithm", NOTIFY_ALGORITHM)
    if resource.get("original_type") is not None:
        _expect(envelope, resource, "original_type", NOTIFY_ORIGINAL_TYPE)
    try:
        plaintext = aead_decrypt(
            api_v3_key,
            str(resource["nonce"]),
            str(resource["ciphertext"]),
            str(resource.get("associated_data") or ""),
        )
        data = json.loads(plaintext)
        bill = str(data["out_bill_no"])
    except DecryptError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise DecryptError(f"WeChat Pay v3 callback: unreadable body ({exc})") from exc
    if not isinstance(data, dict):
        raise DecryptError("WeChat Pay v3 callback: the resource is not a JSON object")
    return _from_state(bill, data)

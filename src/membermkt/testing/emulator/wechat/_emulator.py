"""The emulator class: account set-up, records, scripted errcodes and HTTP dispatch; the
API groups come from mixins (:mod:`._tokens`, :mod:`._users`, :mod:`._messaging`,
:mod:`._account`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from membermkt.core.accounts import AccountType
from membermkt.core.accounts import account_type as to_account_type
from membermkt.testing.emulator._base import (
    DroppedConnection,
    EmulatorTransport,
    LoopbackServer,
    LostResponse,
    serve,
)
from membermkt.testing.emulator.wechat import (
    _account,
    _datacube,
    _kinds,
    _menus,
    _messaging,
    _oauth,
    _users,
)
from membermkt.testing.emulator.wechat._account import _AccountMixin
from membermkt.testing.emulator.wechat._datacube import _DataCubeMixin
from membermkt.testing.emulator.wechat._menus import _MenusMixin
from membermkt.testing.emulator.wechat._messaging import _MessagingMixin
from membermkt.testing.emulator.wechat._model import Account, Receipt, _Refuse
from membermkt.testing.emulator.wechat._oauth import _OAuthMixin
from membermkt.testing.emulator.wechat._tokens import _TokensMixin
from membermkt.testing.emulator.wechat._users import _UsersMixin

_TOKEN_APIS = frozenset({"/cgi-bin/token", "/cgi-bin/stable_token"})


class WeChatEmulator(
    _TokensMixin,
    _UsersMixin,
    _MessagingMixin,
    _AccountMixin,
    _OAuthMixin,
    _MenusMixin,
    _DataCubeMixin,
):
    """The official-account API emulator (several accounts side by side).

    Args:
        seed: seeds the fault plan and generated ids.
        clock: unix-seconds clock (default :func:`time.time`); inject one to move time.
        token_ttl: lifetime of issued access tokens, in seconds (7200 on the platform).
        token_overlap: how long an old token stays valid after rotation (300 on the
            platform; stable tokens rotate this long before expiry).
        limits: the per-account API limits (default :data:`EMULATOR_LIMITS`; ``()``: none).
    """

    def __repr__(self) -> str:
        return f"WeChatEmulator({len(self.accounts)} accounts, {len(self.receipts)} receipts)"

    # ----------------------------------------------------------- set-up

    def add_account(
        self,
        appid: str,
        secret: str,
        *,
        token: str = "membermkt",
        encoding_aes_key: str | None = None,
        original_id: str | None = None,
        account_type: AccountType | str = AccountType.SERVICE,
    ) -> Account:
        """Create an account; its callback credentials default to deterministic values.

        ``account_type="subscription"`` makes a subscription account: ``mass/send`` and
        template messages answer 48001, ``mass/sendall`` succeeds once a day (45028 after;
        :mod:`membermkt.core.accounts`).

        Raises:
            UsageError: for an unknown account type.
        """
        kind = to_account_type(account_type)
        key = encoding_aes_key or hashlib.sha256(appid.encode()).hexdigest()[:43]
        acct = Account(
            self,
            appid,
            secret,
            token=token,
            encoding_aes_key=key,
            original_id=original_id or f"gh_{appid[-12:]}",
            limits=self._limits,
        )
        acct.account_type = kind
        with self.lock:
            self.accounts[appid] = acct
        return acct

    def fail_next(self, *errcodes: int, api: str | None = None) -> None:
        """Answer the next business calls (to ``api`` only, if given; token endpoints are
        never affected) with these errcodes, in order, without doing anything."""
        with self.lock:
            self._fail_next.extend((code, api) for code in errcodes)

    def _scripted_errcode(self, api: str) -> int | None:
        if not self._fail_next or api in _TOKEN_APIS:
            return None
        for i, (code, target) in enumerate(self._fail_next):
            if target is None or target == api:
                del self._fail_next[i]
                return code
        return None

    def transport(self) -> EmulatorTransport:
        """An httpx transport (sync and async) running this emulator in-process."""
        return EmulatorTransport(self.handle)

    def serve(self, *, port: int = 0, lost_hold: float = 0.5) -> LoopbackServer:
        """Serve on ``127.0.0.1`` in a background thread (close the returned server)."""
        return serve(self.handle, port=port, lost_hold=lost_hold, raw=self.handle_raw)

    # ----------------------------------------------------------- records

    def received(self, appid: str, openid: str) -> list[Receipt]:
        """What one follower received."""
        with self.lock:
            return list(self._by_openid.get((appid, openid), ()))

    def duplicate_receipts(self) -> dict[tuple[str, str, str, str], int]:
        """(appid, openid, kind, content digest) → count, for everything received twice+."""
        with self.lock:
            return {k: n for k, n in self._receipt_counts.items() if n > 1}

    # ----------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one httpx request (the transport's entry point)."""
        status, headers, content = self.handle_raw(
            request.method, request.url.path, dict(request.url.params), request.content
        )
        return httpx.Response(status, headers=headers, content=content)

    def handle_raw(
        self, method: str, api: str, params: Mapping[str, str], content: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request given as plain values (the loopback server's entry point).

        Raises:
            LostResponse: a ``timeout`` fault (the call took effect, the answer is lost).
            DroppedConnection: a ``drop`` fault (the call never arrived).
        """
        self.calls.add(api)
        if api == _oauth.AUTHORIZE_PATH:  # a browser page, not a JSON API
            with self.lock:
                return self._authorize_page(params)
        fault = self.faults.draw(api)
        if fault == "drop":
            raise DroppedConnection(api)
        if fault == "http5xx":
            return 502, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>"
        if fault in ("busy", "throttle"):
            code = -1 if fault == "busy" else 45009
            with self.lock:
                self.errcodes[code] += 1
            msg = "system error" if code == -1 else "reach max api daily quota limit"
            return _json({"errcode": code, "errmsg": msg})
        try:
            body = json.loads(content) if content else {}
        except ValueError:
            return _json({"errcode": 47001, "errmsg": "data format error"})
        with self.lock:
            scripted = self._scripted_errcode(api)
            if scripted is not None:
                self.errcodes[scripted] += 1
                return _json({"errcode": scripted, "errmsg": f"emulated errcode {scripted}"})
            try:
                result = self._dispatch(api, params, body, fault)
            except _Refuse as r:
                result = {"errcode": r.errcode, "errmsg": r.errmsg, **r.extra}
                self.errcodes[r.errcode] += 1
        if fault == "timeout":
            raise LostResponse(api)
        return _json(result)

    def _dispatch(
        self, api: str, params: Mapping[str, str], body: Any, fault: str | None
    ) -> dict[str, Any]:
        if api == "/cgi-bin/stable_token":
            return self._stable_token(api, body)
        if api == "/cgi-bin/token":
            return self._classic_token(api, params)
        sns = self._sns(api, params)
        if sns is not None:
            return sns
        acct = self._authorize(params.get("access_token", ""), fault)
        self._limit(acct, api)
        handler = _ROUTES.get(api)
        if handler is None:
            raise _Refuse(48001, f"api unauthorized: {api}")  # emulator choice for unknown APIs
        if not isinstance(body, dict):
            raise _Refuse(47001, "data format error")
        _kinds.before(acct, api, self.now())
        result = handler(self, acct, params, body)
        _kinds.after(acct, api, self.now())
        return result


_JSON_HEADERS = [("Content-Type", "application/json; encoding=utf-8")]


def _json(data: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, _JSON_HEADERS, json.dumps(data, ensure_ascii=False).encode()


_Route = Callable[[WeChatEmulator, Account, Any, Any], dict[str, Any]]
_ROUTES: dict[str, _Route] = {
    **_users.ROUTES,
    **_messaging.ROUTES,
    **_account.ROUTES,
    **_oauth.ROUTES,
    **_menus.ROUTES,  # after _account: menu/get and menu/delete cover conditional menus
    **_datacube.ROUTES,
}

"""``WeComEmulator``: the mixins composed, with the HTTP surface and the route table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from membermkt.errors import UsageError
from membermkt.testing.emulator._base import (
    DroppedConnection,
    EmulatorTransport,
    LoopbackServer,
    LostResponse,
    serve,
)
from membermkt.testing.emulator.wecom._behavior import _BehaviorMixin
from membermkt.testing.emulator.wecom._chats import _GroupChatsMixin
from membermkt.testing.emulator.wecom._contacts import _ContactsMixin
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._mass import _MassMixin
from membermkt.testing.emulator.wecom._models import EC, _Refuse
from membermkt.testing.emulator.wecom._tags import _TagsMixin
from membermkt.testing.emulator.wecom._tokens import _TokensMixin
from membermkt.testing.emulator.wecom._ways import _WaysMixin
from membermkt.testing.emulator.wecom._webauth import _WebAuthMixin
from membermkt.testing.emulator.wecom._welcome import _WelcomeMixin


class WeComEmulator(
    _TokensMixin,
    _ContactsMixin,
    _TagsMixin,
    _WaysMixin,
    _MassMixin,
    _WelcomeMixin,
    _GroupChatsMixin,
    _WebAuthMixin,
    _BehaviorMixin,
):
    """The WeCom customer-contact emulator (several corps side by side).

    Args:
        seed: seeds the fault plan and generated ids.
        clock: unix-seconds clock (default :func:`time.time`); inject one to move time —
            the 20-second welcome window is measured on it.
        token_ttl: lifetime of corp tokens (7200 on the platform).
        mass_cap: the per-customer receive cap applied when senders confirm (default the
            current doc's days-in-month per month; ``WECOM_MASS_LEGACY_MONTHLY`` (4/month),
            ``WECOM_MASS_DAILY`` (1/day) or ``WECOM_MASS_WEEKLY`` (7/week) from
            :mod:`membermkt.core.quotas` for the other rules — the reference lists a
            conflict).
        welcome_window: seconds a welcome code is usable.
    """

    def __repr__(self) -> str:
        return f"WeComEmulator({len(self.corps)} corps)"

    def fail_next(self, errcode: int, *, api: str | None = None) -> None:
        """Answer the next business call (to ``api`` only, if given; never ``gettoken``
        unless named) with ``errcode``, without doing anything."""
        with self.lock:
            self._fail.append((errcode, api))

    def _scripted(self, api: str) -> int | None:
        for i, (code, target) in enumerate(self._fail):
            if target == api or (target is None and api != "/cgi-bin/gettoken"):
                del self._fail[i]
                return code
        return None

    def add_corp(
        self,
        corpid: str,
        *secrets: str,
        token: str = "membermkt",
        encoding_aes_key: str | None = None,
        agent_id: str = "1000001",
    ) -> Corp:
        """Create a corp with one or more app secrets (each gets its own tokens)."""
        if not secrets:
            raise UsageError("a corp needs at least one secret")
        key = encoding_aes_key or hashlib.sha256(corpid.encode()).hexdigest()[:43]
        corp = Corp(self, corpid, secrets, token=token, encoding_aes_key=key, agent_id=agent_id)
        with self.lock:
            self.corps[corpid] = corp
        return corp

    def transport(self) -> EmulatorTransport:
        """An httpx transport (sync and async) running this emulator in-process."""
        return EmulatorTransport(self.handle)

    def serve(self, *, port: int = 0, lost_hold: float = 0.5) -> LoopbackServer:
        """Serve on ``127.0.0.1`` in a background thread (close the returned server)."""
        return serve(self.handle, port=port, lost_hold=lost_hold)

    # ----------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (the emulator's whole HTTP surface)."""
        api = request.url.path
        self.calls.add(api)
        fault = self.faults.draw(api)
        if fault == "drop":
            raise DroppedConnection(api)
        if fault == "http5xx":
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        if fault in ("busy", "throttle", "concurrency"):
            code = {"busy": -1, "throttle": 45009, "concurrency": 45033}[fault]
            with self.lock:
                self.errcodes[code] += 1
            return _json({"errcode": code, "errmsg": f"emulated {fault}"})
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            return _json({"errcode": 47001, "errmsg": "data format error"})
        with self.lock:
            scripted = self._scripted(api)
            if scripted is not None:
                self.errcodes[scripted] += 1
                return _json({"errcode": scripted, "errmsg": "emulated error"})
            try:
                result = self._dispatch(api, request, body, fault)
                result.setdefault("errcode", 0)
                result.setdefault("errmsg", "ok")
            except _Refuse as r:
                result = {"errcode": r.errcode, "errmsg": r.errmsg, **r.extra}
                self.errcodes[r.errcode] += 1
        if fault == "timeout":
            raise LostResponse(api)
        return _json(result)

    def _dispatch(
        self, api: str, request: httpx.Request, body: Any, fault: str | None
    ) -> dict[str, Any]:
        params = request.url.params
        if api == "/cgi-bin/gettoken":
            return self._gettoken(params)
        corp = self._authorize(params.get("access_token", ""), fault)
        self._rate(corp.corpid, api)
        handler = _ROUTES.get(api)
        if handler is None:
            raise _Refuse(48002, f"api forbidden: {api}")  # emulator choice for unknown APIs
        if not isinstance(body, dict):
            raise _Refuse(47001, "data format error")
        return handler(self, corp, params, body)


def _json(data: Mapping[str, Any]) -> httpx.Response:
    return httpx.Response(
        200,
        content=json.dumps(data, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


_Route = Callable[[WeComEmulator, Corp, Any, Any], dict[str, Any]]
_ROUTES: dict[str, _Route] = {
    f"{EC}/get_follow_user_list": WeComEmulator._follow_users,
    f"{EC}/list": WeComEmulator._list,
    f"{EC}/get": WeComEmulator._get,
    f"{EC}/batch/get_by_user": WeComEmulator._batch_get_by_user,
    f"{EC}/unionid_to_external_userid": WeComEmulator._unionid_to_external,
    f"{EC}/convert_to_openid": WeComEmulator._convert_to_openid,
    f"{EC}/get_corp_tag_list": WeComEmulator._tag_list,
    f"{EC}/add_corp_tag": WeComEmulator._tag_add,
    f"{EC}/edit_corp_tag": WeComEmulator._tag_edit,
    f"{EC}/del_corp_tag": WeComEmulator._tag_del,
    f"{EC}/mark_tag": WeComEmulator._mark_tag,
    f"{EC}/add_contact_way": WeComEmulator._way_add,
    f"{EC}/get_contact_way": WeComEmulator._way_get,
    f"{EC}/update_contact_way": WeComEmulator._way_update,
    f"{EC}/del_contact_way": WeComEmulator._way_del,
    f"{EC}/list_contact_way": WeComEmulator._way_list,
    f"{EC}/add_msg_template": WeComEmulator._msg_template,
    f"{EC}/get_groupmsg_list_v2": WeComEmulator._msg_list,
    f"{EC}/get_groupmsg_task": WeComEmulator._msg_tasks,
    f"{EC}/get_groupmsg_send_result": WeComEmulator._msg_results,
    f"{EC}/remind_groupmsg_send": WeComEmulator._msg_remind,
    f"{EC}/cancel_groupmsg_send": WeComEmulator._msg_cancel,
    f"{EC}/send_welcome_msg": WeComEmulator._welcome,
    f"{EC}/groupchat/list": WeComEmulator._chat_list,
    f"{EC}/groupchat/get": WeComEmulator._chat_get,
    "/cgi-bin/auth/getuserinfo": WeComEmulator._getuserinfo,
    f"{EC}/get_user_behavior_data": WeComEmulator._behavior_data,
}

"""Parametric QR codes (reference §1.7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = ["MAX_EXPIRE_SECONDS", "QrCode", "create_qrcode"]

MAX_EXPIRE_SECONDS = 2_592_000
PERMANENT_INT_MAX = 100_000
SCENE_STR_MAX = 64


@attrs.frozen(slots=True, kw_only=True)
class QrCode:
    """A created QR code; show it with :attr:`image_url`."""

    ticket: str
    url: str
    expire_seconds: int | None = None

    @property
    def image_url(self) -> str:
        return "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + quote(self.ticket, safe="")

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> QrCode:
        return cls(
            ticket=str(need(data, "ticket", "/cgi-bin/qrcode/create")),
            url=str(data.get("url", "")),
            expire_seconds=data.get("expire_seconds"),
        )


def create_qrcode(
    scene: int | str, *, permanent: bool = False, expire_seconds: int = MAX_EXPIRE_SECONDS
) -> ApiCall[QrCode]:
    """``POST /cgi-bin/qrcode/create`` for an int or str scene.

    Temporary codes always send ``expire_seconds`` (the platform default is unconfirmed).
    Follows through the code arrive as ``subscribe`` with ``EventKey`` ``qrscene_<scene>``.

    Raises:
        UsageError: for a scene out of range (temporary int: non-zero 32-bit; permanent int:
            1..100,000; str: 1..64 chars) or ``expire_seconds`` outside 1..2,592,000.
    """
    if isinstance(scene, bool) or not isinstance(scene, int | str):
        raise UsageError(f"QR scene must be an int or a str, got {scene!r}")
    if isinstance(scene, int):
        ok = (
            1 <= scene <= PERMANENT_INT_MAX
            if permanent
            else scene != 0 and -(2**31) <= scene < 2**31
        )
        if not ok:
            raise UsageError(f"QR scene id {scene} out of range")
        action = "QR_LIMIT_SCENE" if permanent else "QR_SCENE"
        info: dict[str, Any] = {"scene": {"scene_id": scene}}
    else:
        if not 1 <= len(scene) <= SCENE_STR_MAX:
            raise UsageError(f"QR scene str must be 1..{SCENE_STR_MAX} characters")
        action = "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE"
        info = {"scene": {"scene_str": scene}}
    body: dict[str, Any] = {"action_name": action, "action_info": info}
    if not permanent:
        if not 1 <= expire_seconds <= MAX_EXPIRE_SECONDS:
            raise UsageError(f"expire_seconds must be 1..{MAX_EXPIRE_SECONDS}")
        body["expire_seconds"] = expire_seconds
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/qrcode/create", body), parse=QrCode.from_api
    )

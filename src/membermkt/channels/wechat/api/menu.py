"""Custom menus (reference §1.8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = ["Button", "create_menu", "delete_menu", "get_menu", "validate_menu"]

BUTTON_TYPES = frozenset(
    {
        "click",
        "view",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
        "media_id",
        "view_limited",
        "miniprogram",
    }
)
NAME_MAX = 16
SUB_NAME_MAX = 40  # the doc says 40 bytes, the community measured 60 (conflict): keep 40
KEY_MAX = 128
URL_MAX = 1024


@attrs.frozen(slots=True, kw_only=True)
class Button:
    """A menu button: a leaf (``type`` with ``key``/``url``/…) or a parent with
    ``sub_buttons``."""

    name: str
    type: str | None = None
    key: str | None = None
    url: str | None = None
    appid: str | None = None
    pagepath: str | None = None
    media_id: str | None = None
    sub_buttons: tuple[Button, ...] = ()

    @classmethod
    def click(cls, name: str, key: str) -> Button:
        return cls(name=name, type="click", key=key)

    @classmethod
    def view(cls, name: str, url: str) -> Button:
        return cls(name=name, type="view", url=url)

    @classmethod
    def parent(cls, name: str, *subs: Button) -> Button:
        return cls(name=name, sub_buttons=subs)

    def to_api(self) -> dict[str, Any]:
        if self.sub_buttons:
            return {"name": self.name, "sub_button": [b.to_api() for b in self.sub_buttons]}
        out: dict[str, Any] = {"type": self.type, "name": self.name}
        for f in ("key", "url", "appid", "pagepath", "media_id"):
            v = getattr(self, f)
            if v is not None:
                out[f] = v
        return out


def _check_leaf(b: Button, where: str, name_max: int) -> None:
    if not b.name or len(b.name.encode("utf-8")) > name_max:
        raise UsageError(f"{where}: name must be 1..{name_max} bytes")
    if b.type not in BUTTON_TYPES:
        raise UsageError(f"{where}: unknown button type {b.type!r}")
    if b.type in {"view", "miniprogram"} and not b.url:
        raise UsageError(f"{where}: a {b.type} button needs a url")
    if b.type not in {"view", "miniprogram", "media_id", "view_limited"} and not b.key:
        raise UsageError(f"{where}: a {b.type} button needs a key")
    if b.key is not None and len(b.key.encode("utf-8")) > KEY_MAX:
        raise UsageError(f"{where}: key over {KEY_MAX} bytes")
    if b.url is not None and len(b.url.encode("utf-8")) > URL_MAX:
        raise UsageError(f"{where}: url over {URL_MAX} bytes")


def validate_menu(buttons: Sequence[Button]) -> None:
    """Check the platform's menu limits before calling.

    Raises:
        UsageError: naming the offending button.
    """
    if not 1 <= len(buttons) <= 3:
        raise UsageError(f"a menu has 1..3 top-level buttons, got {len(buttons)}")
    for i, b in enumerate(buttons):
        where = f"button[{i}]"
        if b.sub_buttons:
            if not 1 <= len(b.sub_buttons) <= 5:
                raise UsageError(f"{where}: 1..5 sub buttons, got {len(b.sub_buttons)}")
            if not b.name or len(b.name.encode("utf-8")) > NAME_MAX:
                raise UsageError(f"{where}: name must be 1..{NAME_MAX} bytes")
            for j, s in enumerate(b.sub_buttons):
                if s.sub_buttons:
                    raise UsageError(f"{where}.sub[{j}]: menus nest only two levels")
                _check_leaf(s, f"{where}.sub[{j}]", SUB_NAME_MAX)
        else:
            _check_leaf(b, where, NAME_MAX)


def create_menu(buttons: Sequence[Button | Mapping[str, Any]]) -> ApiCall[None]:
    """``POST /cgi-bin/menu/create`` (``Button`` values are validated first).

    Raises:
        UsageError: when the menu breaks a platform limit.
    """
    typed = [b for b in buttons if isinstance(b, Button)]
    if len(typed) == len(buttons):
        validate_menu(typed)
    body = {"button": [b.to_api() if isinstance(b, Button) else dict(b) for b in buttons]}
    return ApiCall(
        request=HttpRequest.post_json("/cgi-bin/menu/create", body),
        parse=lambda d: None,
        idempotent=True,
    )


def get_menu() -> ApiCall[Mapping[str, Any]]:
    """``GET /cgi-bin/menu/get`` (the raw menu JSON)."""
    return ApiCall(
        request=HttpRequest.get("/cgi-bin/menu/get"), parse=lambda d: dict(d), idempotent=True
    )


def delete_menu() -> ApiCall[None]:
    """``GET /cgi-bin/menu/delete``."""
    return ApiCall(
        request=HttpRequest.get("/cgi-bin/menu/delete"), parse=lambda d: None, idempotent=True
    )

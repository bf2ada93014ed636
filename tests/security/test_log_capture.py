"""Every log record, from every logger at DEBUG, through the demo (official account,
WeCom, campaigns) and its WeChat Pay red-packet flow: no secret, token or phone number.

The demo drives the emulators through real httpx clients (httpx logs each request URL at
INFO), so this is where a token in a URL, a ``corpsecret`` or a merchant key would leak.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from membermkt.demo import _base as demo_base
from membermkt.demo import run_demo

MEMBERS = 300
# name=value / "name": "value" where the value is anything but the redaction marker
_LEAK = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(access_token|corpsecret|secret|key|sign|paysign|signature)"
    r"""(=|["']\s*:\s*["'])(?!\[REDACTED\])[^&\s"',]{4,}"""
)
_PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.texts.append((record.name, text))


@pytest.fixture
def captured(tmp_path: Path):
    capture = _Capture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        run_demo(members=MEMBERS, workdir=tmp_path / "demo", report=False, echo=lambda *a: None)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    return capture.texts


def test_no_secret_or_phone_in_any_log_record(captured):
    names = {name for name, _ in captured}
    assert any(n.startswith("httpx") for n in names), names  # the clients did log requests
    text = "\n".join(t for _, t in captured)
    assert "[REDACTED]" in text  # ... and their URLs carried credentials, redacted
    assert "mmpaymkttransfers/sendredpack" in text  # the WeChat Pay red-packet flow ran
    assert "/v3/marketing/favor/" in text  # and the v3 coupon flow
    assert "cgi-bin/gettoken?corpid=" in text  # WeCom's secret-in-URL call was made
    for secret in (demo_base.SECRET, demo_base.WECOM_SECRET, demo_base.API_KEY):
        assert secret not in text, secret
    leaks = [m.group(0) for m in _LEAK.finditer(text)]
    assert not leaks, leaks[:10]
    phones = [m.group(0) for m in _PHONE.finditer(text)]
    assert not phones, phones[:10]
    # the demo's synthetic buyers' numbers, in any common formatting
    for idx in range(1, MEMBERS + 1, 7):
        number = f"13{idx % 1_000_000_000:09d}"
        assert number not in text
        assert f"{number[:3]} {number[3:7]} {number[7:]}" not in text

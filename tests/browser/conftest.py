"""A shared headless Chromium for browser tests (Debian's ``chromium`` and
``chromium-driver``; ``.ci/run`` installs them). Tests using ``chrome`` skip with a clear
message where they are missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("MEMBERMKT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MEMBERMKT_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            return (
                f"{path} not found: install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver; .ci/run does it)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def chrome() -> Iterator[Any]:
    """A headless Chromium WebDriver (one per session)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()

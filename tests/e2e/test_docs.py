"""The documentation site builds in strict mode: broken links, missing pages and docstring
references all fail the build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_build_strict(tmp_path: Path) -> None:
    """Rule: `mkdocs build --strict` succeeds, and the site has the guides, the platform
    rules and an API reference generated from the docstrings."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in (
        "getting-started",
        "cli",
        "errors",
        "from-wechatpy",
        "platform-rules/mass-send",
        "platform-rules/wecom-welcome",
        "api/core",
        "api/campaigns",
    ):
        assert (site / page / "index.html").exists(), page
    api = (site / "api" / "campaigns" / "index.html").read_text(encoding="utf-8")
    assert "CampaignRunner" in api  # generated from the docstrings
    assert "Plan the campaign and write its deliveries to the ledger" in api

"""Every example script runs against the emulators and exits 0.

(The plugin package ``examples/sms_channel_plugin`` runs its contract suite in
``tests/contract``; the notebook is executed in ``tests/analytics/test_notebook.py``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py"))
EXPECTED = {
    "acquisition_redpacket.py",
    "campaign_ab_holdout.py",
    "django_view.py",
    "fastapi_callbacks.py",
    "flask_callbacks.py",
    "wecom_welcome.py",
}


def test_the_examples_are_all_here() -> None:
    """Rule: the documented examples exist (a renamed file must be renamed in the docs)."""
    assert {p.name for p in SCRIPTS} >= EXPECTED


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    """Rule: each example is a complete program that runs as written and exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "MEMBERMKT_"))}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"

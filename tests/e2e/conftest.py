"""The demo, run once per session (twice over one working directory) and shared by the
end-to-end tests: the README's first command is the thing under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

DEMO_MEMBERS = 2000


@attrs.frozen
class DemoRuns:
    """Two runs of ``membermkt demo --members 2000`` over one working directory."""

    workdir: Path
    first: dict[str, Any]
    second: dict[str, Any]
    second_stdout: str
    second_stderr: str
    first_stderr: str = ""

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'membermkt.db'}"


def membermkt(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command line (``python -m membermkt``) in a subprocess."""
    env = {**os.environ, "PYTHONWARNINGS": "error", "COLUMNS": "100", **(env or {})}
    env.pop("MEMBERMKT_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "membermkt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _demo(tmp: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    return membermkt(
        "demo", "--members", str(DEMO_MEMBERS), "--workdir", str(workdir), "--json", cwd=tmp
    )


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    tmp = tmp_path_factory.mktemp("demo")
    workdir = tmp / "membermkt-demo"
    first = _demo(tmp, workdir)
    assert first.returncode == 0, first.stderr
    second = _demo(tmp, workdir)
    assert second.returncode == 0, second.stderr
    return DemoRuns(
        workdir=workdir,
        first=json.loads(first.stdout),
        second=json.loads(second.stdout),
        second_stdout=second.stdout,
        second_stderr=second.stderr,
        first_stderr=first.stderr,
    )

"""A plain install works: the built wheel, installed with no extras into a fresh virtual
environment, runs ``membermkt demo`` to the end, report included (inline SVG charts).

Offline: the wheel is built without build isolation, and the fresh environment sees only
the wheel plus the distributions that ``membermkt``'s own requirements (no extras) pull in,
linked from the running environment — so matplotlib, pandas and numpy are not importable
there, exactly as after ``pip install membermkt``.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _closure(name: str) -> set[str]:
    """Distribution names required by ``name`` (no extras), transitively."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = md.distribution(todo.pop())
        for req in dist.requires or ():
            r = Requirement(req)
            if r.marker is not None and not r.marker.evaluate({"extra": ""}):
                continue
            key = r.name.lower().replace("_", "-")
            if key not in seen:
                seen.add(key)
                todo.append(r.name)
    return seen


def _link_dists(names: set[str], target: Path) -> None:
    """Symlink each distribution's top-level files and its metadata into ``target``."""
    target.mkdir()
    for name in names:
        dist = md.distribution(name)
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            src = base / top
            if src.exists() and not (target / top).exists() and top != "__pycache__":
                (target / top).symlink_to(src)


def test_wheel_installs_without_extras_and_the_demo_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--no-index", "-w", str(dist), str(ROOT)),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("membermkt-*.whl")

    deps = _closure("membermkt")
    assert not {"matplotlib", "pandas", "numpy", "duckdb"} & deps  # a plain install
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    _link_dists(deps, tmp_path / "deps")
    (site / "plain_deps.pth").write_text(str(tmp_path / "deps") + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    probe = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(bool(u.find_spec('matplotlib')))"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert probe.stdout.strip() == "False"

    workdir = tmp_path / "demo"
    run = subprocess.run(
        [
            *(str(env_dir / "bin" / "membermkt"), "demo", "--members", "300", "--no-progress"),
            *("--workdir", str(workdir)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "not installed" not in run.stdout + run.stderr
    (page_path,) = workdir.glob("*.html")
    page = page_path.read_text(encoding="utf-8")
    assert "data:image/png" not in page
    assert len(re.findall(r"<svg ", page)) >= 7  # every analytics chart, drawn without matplotlib
    assert 'id="funnel-numbers"' in page

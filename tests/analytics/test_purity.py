"""The analytics core stays pure, and the optional extras stay optional."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import membermkt.core.analytics

CORE = pathlib.Path(membermkt.core.analytics.__file__).parent


def test_core_analytics_imports_only_stdlib_attrs_and_core() -> None:
    allowed_roots = set(sys.stdlib_module_names) | {"attrs", "__future__"}
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                ok = (
                    name.split(".")[0] in allowed_roots
                    or name.startswith("membermkt.core")
                    or name == "membermkt.errors"
                )
                assert ok, f"{path.name} imports {name}"


def test_importing_analytics_and_report_loads_no_extra() -> None:
    code = (
        "import sys, membermkt.analytics, membermkt.report;"
        "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""membermkt.core is pure: stdlib + attrs only, no clock reads, no hidden randomness, no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import membermkt.core

CORE = Path(membermkt.core.__file__).parent
ALLOWED_THIRD_PARTY = {"attrs", "attr"}
FORBIDDEN_MODULES = {
    "os",
    "io",
    "socket",
    "subprocess",
    "threading",
    "asyncio",
    "sqlite3",
    "urllib",
    "http",
    "time",
    "secrets",
    "uuid",
    "shutil",
    "tempfile",
    "pathlib",
    "logging",
}
FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("os", "urandom"),
    ("uuid", "uuid4"),
}
RANDOM_MODULE_FUNCS = {
    "random",
    "randint",
    "choice",
    "choices",
    "shuffle",
    "uniform",
    "randrange",
    "sample",
    "gauss",
    "seed",
    "getrandbits",
}


def _core_files():
    files = sorted(CORE.rglob("*.py"))
    assert files
    return files


def test_core_imports_only_stdlib_attrs_and_itself():
    stdlib = set(sys.stdlib_module_names)
    for path in _core_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "membermkt":
                    assert name.startswith(("membermkt.core", "membermkt.errors")), (path, name)
                    continue
                assert top in stdlib or top in ALLOWED_THIRD_PARTY, f"{path.name} imports {name}"
                assert top not in FORBIDDEN_MODULES, f"{path.name} imports {name} (I/O or clock)"


def test_core_reads_no_clock_and_uses_no_module_level_randomness():
    for path in _core_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                attr = node.func.attr
                owner = node.func.value
                owner_name = (
                    owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
                )
                assert (owner_name, attr) not in FORBIDDEN_CALLS, (
                    f"{path.name}: {owner_name}.{attr}()"
                )
                if owner_name == "random":
                    assert attr not in RANDOM_MODULE_FUNCS, (
                        f"{path.name}: random.{attr}() uses the global generator; "
                        "take a random.Random"
                    )

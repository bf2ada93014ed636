"""The rule inventory (docs/platform-rules/index.md) cannot drift from the code: every
``# rule: <id>`` marker in src has a row, every row has a marker, every file holding a
marker is named in its row, every named file exists, and the named test documents the rule
(``Rule <id>`` in a docstring) — so each rule has a test that breaks it."""

from __future__ import annotations

import collections
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "membermkt"
INDEX = ROOT / "docs" / "platform-rules" / "index.md"
MARKER = re.compile(r"rule: ([a-z0-9_]+\.[a-z0-9_]+) --")
ROW = re.compile(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|(.*)\|\s*$")


def markers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = collections.defaultdict(set)
    for path in SRC.rglob("*.py"):
        for m in MARKER.finditer(path.read_text(encoding="utf-8")):
            found[m.group(1)].add(path.relative_to(SRC).as_posix())
    return found


def rows() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            assert m.group(1) not in table, f"rule {m.group(1)} listed twice"
            table[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return table


def test_every_marker_has_a_row_and_every_row_a_marker() -> None:
    code, table = markers(), rows()
    assert code, "no rule markers found"
    assert sorted(set(code) - set(table)) == [], "rules in code missing from the inventory"
    assert sorted(set(table) - set(code)) == [], "inventory rows without a rule marker"


def test_rows_name_the_files_that_enforce_them_and_a_test_of_the_rule() -> None:
    code, table = markers(), rows()
    for rule, cells in table.items():
        assert len(cells) == 5, f"{rule}: expected 5 columns after the id, got {cells}"
        *where, test = cells
        paths = set(re.findall(r"`([\w/.]+\.py)`", " ".join(where)))
        for p in paths:
            assert (SRC / p).is_file(), f"{rule}: {p} does not exist"
        assert code[rule] <= paths, f"{rule}: markers in {sorted(code[rule] - paths)} not named"
        (test_file,) = re.findall(r"`([\w/.]+\.py)`", test)
        text = (ROOT / test_file).read_text(encoding="utf-8")
        assert f"Rule {rule}" in text, f"{rule}: {test_file} has no test documenting it"

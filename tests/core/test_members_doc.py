"""docs/members.md's worked example runs and prints exactly the output the page shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "members.md"


def test_worked_example_prints_what_the_page_says() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = text.split("## Worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", example, re.S)
    shown = re.search(r"Its output:\n\n```text\n(.*?)```", example, re.S)
    assert code is not None
    assert shown is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), str(DOC), "exec"), {"__name__": "members_doc"})
    assert out.getvalue() == shown.group(1)

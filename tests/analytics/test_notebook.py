"""The example notebook runs top to bottom on synthetic data and draws its charts."""

from __future__ import annotations

import pathlib

import pytest

NOTEBOOK = pathlib.Path(__file__).parents[2] / "examples" / "notebooks" / "member-analytics.ipynb"


@pytest.mark.slow
def test_member_analytics_notebook_executes(tmp_path, monkeypatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",  # ipykernel's own spec: the interpreter running the tests
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 8  # activity, RFM grid, funnel, paths, attribution, lift, cohorts, ...
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert html  # results render as HTML tables

"""The example notebook (examples/matdiff.ipynb) executes headless, without an error, and typesets."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "matdiff.ipynb"


def test_example_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Raises CellExecutionError on any failing cell (the notebook asserts its own results).
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    latex = [o["data"]["text/latex"] for o in outputs if "text/latex" in o.get("data", {})]
    # The derivation, the steps and the plan typeset themselves.
    assert any("\\frac{\\partial \\mathcal{L}}{\\partial W_{2}}" in t for t in latex)
    assert any("\\begin{aligned}" in t for t in latex)
    assert any("\\begin{array}" in t for t in latex)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "max relative difference from finite differences" in text
    assert "`-- 3x4 on the left, 5x6 on the right" in text

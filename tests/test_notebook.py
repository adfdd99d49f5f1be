"""docs/explore_results.ipynb runs top to bottom on a real export, so it never rots."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from core.studio import Studio
from tests.test_page_statistics import send_simulated_mailing

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "explore_results.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def test_the_shipped_notebook_is_clean_and_reads_results_path():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert 'os.environ.get("RESULTS_PATH"' in code[0].source
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
def test_the_notebook_runs_on_a_simulated_mailing_export(tmp_path: Path, monkeypatch):
    with Studio(tmp_path / "nb.duckdb") as studio:
        mailing = send_simulated_mailing(studio, tmp_path)
        export = tmp_path / f"mailing-{mailing}-results.parquet"
        export.write_bytes(studio.export_results(mailing, "parquet"))
        funnel = studio.mailing_funnel(mailing)
    monkeypatch.setenv("RESULTS_PATH", str(export))  # the kernel inherits the environment

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if PLOTLY in o.get("data", {})]
    assert len(figures) >= 2  # the outcome chart and the timeline, at least
    titles = [f["data"][PLOTLY]["layout"]["title"]["text"] for f in figures]
    assert "Every recipient's outcome" in titles
    assert any(t.startswith("Running totals") for t in titles)
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{funnel['recipients']:,} recipients" in printed
    outcome_bars = figures[0]["data"][PLOTLY]["data"]
    delivered = [b for b in outcome_bars if b["name"] == "delivered"]
    assert delivered and _bar_value(delivered[0]) == funnel["delivered"]


def _bar_value(trace: dict) -> int:
    """The length of a horizontal bar (plotly may store numbers as a typed array)."""
    x = trace["x"]
    if isinstance(x, dict):  # {"dtype": ..., "bdata": base64}
        import base64

        import numpy as np

        return int(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])[0])
    return int(x[0])

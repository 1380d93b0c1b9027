"""notebooks/experiments.ipynb runs headless (nbclient, python3 kernel) and makes its figures."""

import os

import pytest
from _synthetic import write_dataset

import normreg
from normreg import experiments

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "notebooks", "experiments.ipynb")


def test_notebook_runs_and_makes_figures(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    write_dataset(data_dir, n_train=600, n_test=200, seed=0)
    # The kernel inherits the environment: a small generated dataset, one thread (the test is
    # about the notebook working, not speed), and normreg importable as in this process.
    monkeypatch.setenv("NORMREG_DATA", str(data_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    package_parent = os.path.dirname(os.path.dirname(normreg.__file__))
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(
            [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError if any cell fails

    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    pngs = [
        o
        for c in code_cells
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})
    ]
    # sample images, 2 + 1 + 1 + 1 + 1 + 2 + 1 experiment plots, the closing plot
    assert len(pngs) >= 11
    tables = [o for c in code_cells for o in c.outputs if "text/markdown" in o.get("data", {})]
    assert len(tables) == 7
    for name in experiments.EXPERIMENTS:
        assert (tmp_path / "runs" / "notebook" / f"{name}.json").exists()

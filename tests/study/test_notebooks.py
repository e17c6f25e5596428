"""Every notebook in notebooks/ runs top to bottom (tiny settings via HGCNET_NOTEBOOK_TINY=1)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernelspec that runs this interpreter, so the notebooks see the package under test."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "hgcnet-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hgcnet test", "language": "python",
    }))
    old = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "HGCNET_NOTEBOOK_TINY", "MPLBACKEND")}
    os.environ["JUPYTER_PATH"] = str(root)
    os.environ["HGCNET_NOTEBOOK_TINY"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    yield "hgcnet-test"
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert "01_quickstart" in names and "02_batch_size_study" in names


def test_first_cell_installs_the_package_when_missing():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert "import hgcnet_jax" in first.source and "%pip install" in first.source, path.name
        assert "REPO_URL" in first.source, path.name
        text = "\n".join(c.source for c in nb.cells)
        assert "/work/" not in text and "/tmp/" not in text, f"{path.name} uses a local path"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=900,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()   # raises CellExecutionError with the failing cell's traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors

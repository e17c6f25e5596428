"""Every notebook in notebooks/ runs top to bottom (tiny settings via HGCNET_NOTEBOOK_TINY=1).

Their first cell installs the package from ``$HGCNET_REPO_URL`` when it is missing, and says
what to do when that is not set (there is no official public URL).
"""

from __future__ import annotations

import json
import os
import subprocess
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
    assert {"01_quickstart", "02_batch_size_study", "03_granger_pruning", "04_your_own_model"} <= set(names)


def test_first_cell_installs_the_package_when_missing():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert "import hgcnet_jax" in first.source and "%pip install" in first.source, path.name
        assert "REPO_URL" in first.source and "HGCNET_REPO_URL" in first.source, path.name
        assert "<org>" not in first.source, f"{path.name}: placeholder URL"
        text = "\n".join(c.source for c in nb.cells)
        assert "/work/" not in text and "/tmp/" not in text, f"{path.name} uses a local path"


_INSTALL_PROBE = r"""
import json, os, sys
from IPython.core.interactiveshell import InteractiveShell

sys.modules["hgcnet_jax"] = None          # 'import hgcnet_jax' raises ImportError: a fresh environment
shell = InteractiveShell.instance()
calls = []
shell.register_magic_function(lambda line: calls.append(line), "line", "pip")   # record, do not install
result = shell.run_cell(sys.stdin.read(), silent=True)
err = result.error_in_exec
print(json.dumps({"error": type(err).__name__ if err else None, "message": str(err) if err else "", "pip": calls}))
"""


def _run_install_cell(source: str, url: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HGCNET_REPO_URL"}
    if url is not None:
        env["HGCNET_REPO_URL"] = url
    out = subprocess.run([sys.executable, "-c", _INSTALL_PROBE], input=source, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_install_cell_uses_hgcnet_repo_url(path):
    """Not installed: without HGCNET_REPO_URL a clear error naming it; with it, pip installs that URL."""
    pytest.importorskip("IPython")
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source
    unset = _run_install_cell(first, None)
    assert unset["error"] == "RuntimeError" and "HGCNET_REPO_URL" in unset["message"], unset
    assert unset["pip"] == []
    url = "git+https://example.invalid/me/hgcnet_jax@v1"
    given = _run_install_cell(first, url)
    assert len(given["pip"]) == 1 and "install" in given["pip"][0] and url in given["pip"][0], given
    assert given["error"] == "ModuleNotFoundError"   # the probe's fake pip installed nothing


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=900,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()   # raises CellExecutionError with the failing cell's traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors

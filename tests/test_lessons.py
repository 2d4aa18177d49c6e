"""The lesson notebooks run top to bottom, and are committed without outputs.

Every ``lessons/*.ipynb`` is found at collection time, so a new lesson is
tested as soon as it is added. Each runs in a fresh ``python3`` kernel (the
interpreter running pytest, through ipykernel) with the lessons folder as its
working directory, the repository on ``PYTHONPATH`` and matplotlib's
non-interactive ``Agg`` backend.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
LESSONS_DIR = ROOT / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
_SKIP_DIRS = {"node_modules", "build", "dist", "__pycache__"}


def _committed_notebooks():
    """Every notebook in the repository, outside hidden folders and build outputs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".ipynb")]
    return sorted(found)


def _kernel_env():
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_runs_top_to_bottom(path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(LESSONS_DIR)}},
    )
    client.execute(env=_kernel_env())
    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"{path.relative_to(ROOT)}: code cells {dirty} have outputs or execution counts; "
                       "clear them before committing (e.g. jupyter nbconvert --clear-output --inplace)")


def test_lessons_found():
    assert LESSONS, f"no lesson notebooks in {LESSONS_DIR}"

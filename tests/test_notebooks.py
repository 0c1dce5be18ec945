"""The notebooks under notebooks/ run as plain scripts (jupytext percent format) on small
settings (ODERNN_FAST=1) and write their figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

EXPECTED = {
    "01_catalogue_and_stability.py": ["01_stability_regions.png", "01_rk4_amplification.png",
                                      "01_antisymmetric_spectrum.png"],
    "02_julia_integrator_cell.py": ["02_hidden_states.png", "02_cell_convergence.png", "02_stability_region.png"],
    "03_cross_validation.py": ["03_cell_convergence.png", "03_order_sweep.png"],
    "04_training_and_stability_monitor.py": ["04_monitor_during_training.png", "04_dt_sweep.png",
                                             "odernn_curves.png", "odernn_stability.png", "lstm_curves.png",
                                             "comparison.png", "04_stiff_training.png"],
    "05_learnable_tableaux.py": ["05_stability_regions_during_training.png", "05_tableau_trajectory.png"],
}


def test_every_notebook_is_covered() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("[0-9]*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("notebook", sorted(EXPECTED))
def test_notebook_runs_and_writes_figures(notebook: str, tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg", "ODERNN_FAST": "1", "ODERNN_NOTEBOOK_OUT": str(tmp_path),
           "OMP_NUM_THREADS": "1", "PYTHON_JULIAPKG_OFFLINE": "yes"}
    proc = subprocess.run([sys.executable, str(NOTEBOOKS / notebook)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{notebook} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in EXPECTED[notebook]:
        png = tmp_path / name
        assert png.is_file(), f"{notebook} did not write {name}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name


def test_notebooks_are_jupytext_percent_files() -> None:
    jupytext = pytest.importorskip("jupytext")
    for path in NOTEBOOKS.glob("[0-9]*.py"):
        nb = jupytext.read(path)
        kinds = {c.cell_type for c in nb.cells}
        assert {"markdown", "code"} <= kinds, path.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), path.name

"""Experiments (a)–(c) and the ``odernn theory`` command."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from odernn_bridge.cli import main
from odernn_bridge.io import open_dataset
from odernn_bridge.theory.experiments import gradient_norm_experiment, param_count_experiment


def test_gradient_norms_euler_explodes_rk4_holds_midpoint_preserves():
    ds = gradient_norm_experiment(steps=1000, hidden=8, dt=0.5)
    g = {str(m): ds.grad_norm.values[i] for i, m in enumerate(ds.method.values)}
    # Euler on a skew field: |R(iy)| = sqrt(1 + y²) > 1 — growth (1 + 0.25)^(k/2) for the top mode
    assert g["Euler"][-1] > 1e40
    # RK4 inside its imaginary interval (dt·ρ = 0.5 < 2√2): |R(iy)| ≤ 1, no growth
    assert g["RK4"].max() <= 1.0 + 1e-12
    # implicit midpoint: |R(iy)| = 1 exactly; the norm stays 1 up to Newton/round-off
    assert np.abs(g["ImplicitMidpoint"] - 1.0).max() < 1e-10
    # RK4 outside its interval (dt·ρ = 3 > 2√2) explodes
    assert g["RK4 (dt·ρ=3)"][-1] > 1e100
    # measured = predicted max|R(dt λ)|^k (A normal), relative 1e-9 over 1000 steps
    fin = np.isfinite(ds.grad_norm.values)
    rel = np.abs(ds.grad_norm.values[fin] / ds.predicted.values[fin] - 1)
    assert rel.max() < 1e-9


def test_param_count_table_measured_equals_formula():
    ds = param_count_experiment(ts=range(1, 65), input_sizes=(1, 4, 64), t_ref=8, m_ref=4)
    meas, form = ds.measured.values, ds.formula.values
    ok = ~np.isnan(meas)
    assert ok.sum() > 200 and np.array_equal(meas[ok], form[ok])
    q = ds.formula.sel(model="QUNN", input_size=4).values
    assert np.array_equal(q, (np.arange(1, 65) + 1) * 15)  # linear in t
    assert len(set(ds.formula.sel(model="QUNN", t=8).values.tolist())) == 1  # flat in the input size


@pytest.mark.slow
def test_cli_experiments_fast_writes_results(tmp_path, capsys):
    rc = main(["theory", "experiments", "--out", str(tmp_path), "--fast"])
    assert rc == 0
    for name in ("gradient_norms", "dt_threshold", "param_counts"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert open_dataset(tmp_path / f"{name}.nc").sizes
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dt_threshold"]["agreement"] == 1
    assert summary["param_counts_match"] is True
    assert summary["qunn_memory"]["recall"]["accuracy"] > summary["qunn_memory"]["recall"]["chance"]


def test_cli_classify_and_counts(capsys):
    assert main(["theory", "classify"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"LSTM \(nn.LSTM\)\s+1\s+2", out)
    assert main(["theory", "counts", "--t", "1", "64"]) == 0
    out = capsys.readouterr().out
    assert "975" in out  # QUNN q=3, t=64: 65·15

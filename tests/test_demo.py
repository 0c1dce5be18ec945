"""The main job, `odernn demo`, end to end on the embedded SciPy backend (small settings)."""

from __future__ import annotations

import json

import xarray as xr

from odernn_bridge.cli import main


def test_demo_writes_every_result(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--method", "RK4", "--epochs", "1", "--hidden", "16", "--backend", "scipy",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "[5/5]" in printed
    for name in ("RK4.json", "stability_region.nc", "stability.png", "validation_method.nc",
                 "validation_cell.nc", "validation.png", "report.json", "train/history.nc",
                 "train/checkpoint.pt"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["method"]["verified_order"] == 4
    # RK4's real stability interval, to the 1e-10 promised by the stability layer
    assert abs(report["stability"]["real_interval"] - 2.785293563405282) < 1e-10
    assert report["validation"]["verdict"] == "pass"
    assert abs(report["validation"]["observed_order"] - 4) < 0.3
    # torch cell and NumPy integrator: same tableau, same field, round-off agreement
    assert report["validation"]["cell_vs_numpy_max_abs_diff"] < 1e-12
    with xr.open_dataset(out / "stability_region.nc", engine="h5netcdf") as ds:
        assert set(ds.dims) >= {"imag", "real"}


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--dt", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--dt" in capsys.readouterr().err
    assert main(["demo", "--method", "Tsit55", "--out", str(tmp_path / "y")]) == 2
    assert "closest names: Tsit5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

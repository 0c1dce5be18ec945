"""``odernn stability``: table, NetCDF and plot output, errors."""

from __future__ import annotations

import numpy as np

from odernn_bridge.cli import main
from odernn_bridge.io import open_dataset


def test_cli_table_netcdf_and_plot(tmp_path, capsys):
    nc, png = tmp_path / "regions.nc", tmp_path / "regions.png"
    rc = main(["stability", "RK4", "Euler", "BDF2", "--plot", str(png), "--out", str(nc),
               "--real", "-4", "1", "--imag", "-3", "3", "--resolution", "61"])
    assert rc == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln and ln.split()[0] in ("RK4", "Euler", "BDF2")}
    assert lines["RK4"][1:5] == ["2.785293563", "2.828427125", "no", "no"]
    assert lines["Euler"][1:3] == ["2", "0"]
    assert lines["BDF2"][1:5] == ["inf", "inf", "yes", "yes"]
    ds = open_dataset(nc)
    assert ds["amplification"].dims == ("method", "imag", "real")
    assert ds["amplification"].shape == (3, 61, 61)
    assert list(ds["method"].values) == ["RK4", "Euler", "BDF2"]
    assert abs(float(ds["real_interval"].sel({"method": "RK4"})) - 2.785293563405282) < 1e-12
    z = ds["real"].values[None, :] + 1j * ds["imag"].values[:, None]
    np.testing.assert_allclose(ds["amplification"].sel({"method": "Euler"}).values, np.abs(1 + z), rtol=1e-15)
    assert png.stat().st_size > 1000


def test_cli_errors_write_nothing(tmp_path, capsys):
    nc = tmp_path / "x.nc"
    assert main(["stability", "RK4", "--real", "1", "-5", "--out", str(nc)]) == 2
    assert "real" in capsys.readouterr().err
    assert main(["stability", "RK4", "--resolution", "1", "--out", str(nc)]) == 2
    assert "resolution" in capsys.readouterr().err
    assert main(["stability", "NoSuchMethod", "--out", str(nc)]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert not nc.exists() and list(tmp_path.iterdir()) == []

"""ob.validate: the Dataset, NetCDF round trip, cells, sweeps, the CLI, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import odernn_bridge as ob
from odernn_bridge import io
from odernn_bridge.cells import RKCell, make_field
from odernn_bridge.validate import observed_order, validate_sweep, verdict


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return ob.validate("RK4", "kepler", dts=[0.1, 0.05, 0.025, 0.0125], backend="scipy")


def test_dataset_layout(ds: xr.Dataset) -> None:
    assert set(ds.dims) == {"dt", "step", "component"}
    np.testing.assert_allclose(ds.dt.values, [0.1, 0.05, 0.025, 0.0125])
    assert ds.sizes["step"] == 161 and ds.sizes["component"] == 4      # 2 / 0.0125 steps + 1
    for v in ("time", "global_error", "local_error", "final_error", "pairwise_order", "observed_order",
              "observed_local_order", "nominal_order", "order_ok", "solution_final", "reference_final"):
        assert v in ds, v
    assert ds.global_error.dims == ("dt", "step") and ds.final_error.dims == ("dt",)
    # padding: the coarsest level has 21 states, the rest is NaN
    assert np.isfinite(ds.global_error.values[0, :21]).all() and np.isnan(ds.global_error.values[0, 21:]).all()
    assert ds.global_error.values[0, 0] == 0.0 and np.isnan(ds.local_error.values[0, 0])
    a = ds.attrs
    assert a["method"] == "RK4" and a["problem"] == "kepler" and a["backend"] == "scipy"
    assert "scipy=" in a["backend_versions"] and a["reference"] == "exact solution"
    assert a["odernn_bridge_version"] == ob.__version__ and a["verdict"] == "pass"


def test_errors_and_orders(ds: xr.Dataset) -> None:
    # RK4: global error ~ dt^4, local error ~ dt^5 (Kepler e=0.5; measured 4.15 / ~5: dt=0.1 is
    # slightly pre-asymptotic, within the 0.3 verdict tolerance)
    assert abs(float(ds.observed_order) - 4) < 0.3
    assert abs(float(ds.observed_local_order) - 5) < 0.3
    fe = ds.final_error.values
    assert np.all(np.diff(fe) < 0) and fe[-1] < 2e-7  # measured 1.15e-7 at dt = 1/80
    # the final global error equals the last finite global error entry of each level
    for i, n in enumerate([20, 40, 80, 160]):
        assert ds.global_error.values[i, n] == fe[i]
    # local error <= global error growth bound: one step from the reference is never worse
    # than the accumulated error at the end
    assert np.nanmax(ds.local_error.values[-1]) < fe[-1]


def test_netcdf_round_trip(ds: xr.Dataset, tmp_path) -> None:
    path = io.to_netcdf(ds, tmp_path / "run.nc")
    back = io.open_dataset(path)
    xr.testing.assert_identical(back.drop_attrs(), ds.drop_attrs())
    for k, v in ds.attrs.items():
        got = back.attrs[k]
        if isinstance(v, (list, tuple)):
            np.testing.assert_array_equal(got, v)
        else:
            assert got == v, k


def test_auto_dts_are_halving_and_in_range() -> None:
    ds = ob.validate("Midpoint", "lotka_volterra", backend="scipy")
    dt = ds.dt.values
    assert 3 <= dt.size <= 6
    np.testing.assert_allclose(dt[:-1] / dt[1:], 2.0)
    assert ds.attrs["dts_chosen"] == "auto"
    fe = ds.final_error.values
    assert np.all(fe > ds.attrs["floor"]) and np.all(fe < 100 * ds.attrs["ceiling"])


def test_verdict_and_observed_order_helpers() -> None:
    assert observed_order([0.1, 0.05], [1e-3, 2.5e-4]) == pytest.approx(2.0)
    assert math.isnan(observed_order([0.1], [1e-3]))
    assert verdict(5.25, 5) == "pass" and verdict(5.4, 5) == "fail: order too high"
    assert verdict(4.0, 4, levels=2) == "inconclusive"


def test_wrong_order_claim_fails() -> None:
    """A method validated against the wrong nominal order gets a failing verdict."""
    heun = ob.get_method("Heun")
    liar = ob.ButcherTableau(heun.A, heun.b, heun.c, name="Heun-claims-3", order=2, verify=False)
    liar._claimed_order = 3  # a claim the order conditions would reject
    ds = ob.validate(liar, "vanderpol", dts=[0.1, 0.05, 0.025], backend="scipy")
    assert ds.attrs["verdict"] == "fail: order too low" and not bool(ds.order_ok)


def test_validate_a_cell_on_a_problem_and_on_its_field() -> None:
    torch.manual_seed(0)
    cell = RKCell(make_field("elman", 2, 3), "RK4", dt=0.5)
    ds = ob.validate(cell, "vanderpol", dts=[0.1, 0.05, 0.025], backend="scipy")
    ref = ob.validate("RK4", "vanderpol", dts=[0.1, 0.05, 0.025], backend="scipy")
    assert ds.attrs["stepper"] == "torch RKCell"
    # torch and NumPy differ only by round-off in the trajectory
    np.testing.assert_allclose(ds.final_error.values, ref.final_error.values, rtol=1e-6)
    own = ob.validate(cell, "field", backend="scipy", field_steps=6)
    assert own.attrs["problem"].startswith("field:") and own.attrs["verdict"] == "pass"
    assert np.all(np.isfinite(own.local_error.values[:, 1:7]))


def test_multistep_method_validation() -> None:
    ab2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="myAB2", order=2)
    ds = ob.validate(ab2, "vanderpol", dts=[0.05, 0.025, 0.0125], backend="scipy")
    assert abs(float(ds.observed_order) - 2) < 0.2
    assert np.isnan(ds.local_error.values[0, :2]).all() and np.isfinite(ds.local_error.values[0, 2:41]).all()


def test_sweep(capsys, tmp_path) -> None:
    sw = validate_sweep(["Euler", "Midpoint", "RK4"], "vanderpol", dts=[0.1, 0.05, 0.025], backend="scipy")
    back = io.open_dataset(io.to_netcdf(sw, tmp_path / "sweep.nc"))
    assert list(back.verdict.values) == list(sw.verdict.values)
    xr.testing.assert_allclose(back.final_error, sw.final_error)
    assert sw.sizes == {"method": 3, "level": 3}
    np.testing.assert_allclose(sw.observed_order.values, [1, 2, 4], atol=0.15)
    assert list(sw.verdict.values) == ["pass"] * 3 and sw.attrs["passed"] == 3
    assert "validate vanderpol" in capsys.readouterr().err  # the tqdm bar


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="dts"):
        ob.validate("RK4", "vanderpol", dts=[0.3], backend="scipy")      # does not divide [0, 2]
    with pytest.raises(ValueError, match="dts"):
        ob.validate("RK4", "vanderpol", dts=[-0.1], backend="scipy")
    with pytest.raises(ValueError, match="dts: expected distinct"):  # was a ZeroDivisionError (review)
        ob.validate("RK4", "vanderpol", dts=[0.1, 0.1, 0.05], backend="scipy")
    with pytest.raises(ValueError, match="backend"):
        ob.validate("RK4", backend="matlab")
    with pytest.raises(ob.UnknownMethodError):
        ob.validate("RK5000", backend="scipy")
    with pytest.raises(TypeError, match="method_or_cell"):
        ob.validate(42, backend="scipy")
    with pytest.raises(ValueError, match="precision"):
        ob.validate("RK4", precision="quad", backend="scipy")
    with pytest.raises(ValueError, match="field"):
        ob.validate("RK4", "field", backend="scipy")
    from odernn_bridge.cells import MultistepCell

    ab2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="cellAB2")
    with pytest.raises(TypeError, match="Runge-Kutta cells"):
        ob.validate(MultistepCell(make_field("elman", 2, 3), ab2, dt=0.1), "vanderpol", backend="scipy")


@pytest.mark.filterwarnings("ignore::odernn_bridge.reference.ReferenceFallbackWarning")
def test_cli(tmp_path, capsys) -> None:
    from odernn_bridge.cli import main

    out, png = tmp_path / "run.nc", tmp_path / "errors.png"
    rc = main(["validate", "--method", "RK4", "--problem", "vanderpol", "--backend", "auto",
               "--dts", "0.1", "0.05", "0.025", "--out", str(out), "--plot", str(png)])
    text = capsys.readouterr().out
    assert rc == 0 and "observed order" in text and "pass" in text
    back = io.open_dataset(out)
    assert back.attrs["method"] == "RK4" and png.stat().st_size > 5000
    rc = main(["validate", "-m", "Euler", "-m", "RK4", "--problem", "linear", "--backend", "scipy", "-q",
               "--dts", "0.1", "0.05", "0.025", "--out", str(tmp_path / "sweep.nc")])
    assert rc == 0 and "2/2 passed" in capsys.readouterr().out
    assert main(["validate", "--method", "NoSuch", "--backend", "scipy"]) == 2

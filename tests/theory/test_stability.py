"""stability_report, StabilityMonitor and the spectrum-controlling parametrisations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import odernn_bridge as ob
from odernn_bridge.cells import CallableField, ODERNN, RKCell, make_field
from odernn_bridge.io import open_dataset, to_netcdf
from odernn_bridge.stability.intervals import max_stable_dt
from odernn_bridge.theory import (
    DampedAntisymmetric,
    SpectralScaling,
    StabilityMonitor,
    as_odernn,
    stability_report,
    trajectory_jacobians,
)

D = torch.float64


def _linear_odernn(A: torch.Tensor, method: str, dt: float) -> ODERNN:
    n = A.shape[0]
    field = CallableField(lambda h, x: h @ A.T + x, input_size=n, hidden_size=n)
    return ODERNN(n, n, method=method, dt=dt, field=field, dtype=D)


def test_linear_field_report_is_exact():
    """f = A h + x: J = A at every step, so the report must reproduce eig(dt A), |R| and
    ‖R(dt A)‖₂ = ‖I + dt A‖₂ (Euler) to round-off."""
    A = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=D)  # eigenvalues −1 ± 2i (normal)
    rnn = _linear_odernn(A, "Euler", 0.3)
    ds = stability_report(rnn, torch.randn(5, 3, 2, dtype=D))
    lam = np.sort_complex(0.3 * np.array([-1 + 2j, -1 - 2j]))
    got = np.sort_complex(ds.eig_real.values[0, 2, 1] + 1j * ds.eig_imag.values[0, 2, 1])
    assert np.allclose(got, lam, atol=1e-15)
    assert np.allclose(ds.abs_R.values, abs(1 + lam[0]), atol=1e-15)
    assert np.allclose(ds.norm_R.values, np.linalg.norm(np.eye(2) + 0.3 * A.numpy(), 2), atol=1e-14)
    # max stable dt of Euler for −1 ± 2i: 2·1/5 = 0.4 (exact ray exit)
    assert abs(float(ds.max_stable_dt_overall) - 0.4) < 1e-12
    assert np.allclose(ds.max_stable_dt.values, 0.4, atol=1e-12)
    assert float(ds.frac_inside) == 1.0 and float(ds.frac_condition) == 1.0


def test_non_normal_case_is_detected():
    """J = [[−1, 8], [0, −1]]: eigenvalues −1 (RK4 region at dt=0.5: |R| ≈ 0.607) but J is far from
    normal and ‖R(dt J)‖₂ > 1: the eigenvalue test passes, the norm test fails, and the
    sufficient condition is (correctly) reported as not established.  The actual one-step
    amplification of a perturbation equals ‖R(dt J)‖₂ for a linear field."""
    A = torch.tensor([[-1.0, 8.0], [0.0, -1.0]], dtype=D)
    rnn = _linear_odernn(A, "RK4", 0.5)
    ds = stability_report(rnn, torch.zeros(3, 1, 2, dtype=D))
    assert ds.eig_condition.values.all() and not ds.norm_condition.values.any()
    assert not ds.condition_holds.values.any()
    assert float(ds.departure_from_normality.max()) > 0.9
    assert float(ds.numerical_abscissa.max()) > 0  # W(J) reaches into the right half-plane: 3
    # measured amplification of the worst perturbation over one step
    cell = rnn.cells[0]
    M = torch.stack([cell(torch.zeros(1, 2, dtype=D), e.unsqueeze(0))[0] for e in torch.eye(2, dtype=D)], 1)
    assert abs(float(torch.linalg.matrix_norm(M, 2)) - float(ds.norm_R.max())) < 1e-13
    # the field-of-values bound (Crouzeix): ‖R(hJ)‖ ≤ (1 + √2) max_{W(hJ)} |R|
    assert float(ds.norm_R.max()) <= (1 + math.sqrt(2)) * float(ds.fov_max_abs_R.max()) + 1e-12


def test_report_dims_and_netcdf_round_trip(tmp_path):
    rnn = ob.ODERNN(3, 4, method="RK4", dt=0.5, num_layers=2, batch_first=True, dtype=D)
    x = torch.randn(5, 7, 3, dtype=D)  # batch first
    ds = stability_report(rnn, x)
    assert dict(ds.sizes) == {"layer": 2, "step": 7, "sample": 5, "eig": 4}
    path = to_netcdf(ds, tmp_path / "report.nc")
    back = open_dataset(path)
    for v in ("eig_real", "eig_imag", "abs_R", "norm_R", "max_stable_dt", "inside"):
        np.testing.assert_array_equal(back[v].values, ds[v].values)
    # complex storage also round-trips with h5netcdf (checked, though the report uses real/imag)
    from odernn_bridge.theory.spectra import complex_eigenvalues

    z = complex_eigenvalues(ds)
    back_z = open_dataset(to_netcdf(z, tmp_path / "complex.nc"))["eigenvalue"]
    np.testing.assert_array_equal(back_z.values, z.values)
    # eigenvalues agree with a direct computation (layer 0, step 3, sample 2)
    tj = trajectory_jacobians(rnn, x)
    ev = np.sort_complex(0.5 * torch.linalg.eigvals(tj.jacobians[0][3, 2]).numpy())
    got = np.sort_complex(back.eig_real.values[0, 3, 2] + 1j * back.eig_imag.values[0, 3, 2])
    assert np.allclose(ev, got, atol=1e-14)


def test_generic_jacobian_matches_finite_differences():
    """LSTM exact form (no analytic Jacobian): the vmap(jacrev) Jacobian of the field equals central
    differences to 1e-8 (step 1e-6: truncation ~1e-12, cancellation ~1e-10)."""
    ode = as_odernn(nn.LSTM(2, 3, dtype=D))
    x = torch.randn(4, 2, 2, dtype=D)
    tj = trajectory_jacobians(ode, x)
    f = ode.cells[0].field
    s = tj.states[0][2, 1:2]
    u = f.project_input(x[2, 1:2])
    eps = 1e-6
    cols = []
    for j in range(6):
        e = torch.zeros_like(s)
        e[0, j] = eps
        cols.append(((f.rhs(s + e, u) - f.rhs(s - e, u)) / (2 * eps))[0])
    fd = torch.stack(cols, 1).detach()
    assert float((fd - tj.jacobians[0][2, 1]).abs().max()) < 1e-8


def test_max_stable_dt_matches_stability_package():
    rnn = ob.ODERNN(2, 5, method="RK4", dt=0.4, field="leaky", dtype=D)
    x = torch.randn(6, 3, 2, dtype=D)
    ds = stability_report(rnn, x)
    lam = torch.linalg.eigvals(trajectory_jacobians(rnn, x).jacobians[0]).numpy()
    assert abs(float(ds.max_stable_dt_overall) - max_stable_dt("RK4", lam.ravel())) < 1e-12


def test_multistep_report_uses_root_condition():
    A = torch.tensor([[-2.0, 0.0], [0.0, -0.5]], dtype=D)
    field = CallableField(lambda h, x: h @ A.T, input_size=2, hidden_size=2)
    rnn = ODERNN(2, 2, method="AB2", dt=0.6, field=field, dtype=D)
    ds = stability_report(rnn, torch.zeros(4, 1, 2, dtype=D))
    # AB2's real interval is [−1, 0]: dt·λ = −1.2 is outside, −0.3 inside
    assert float(ds.frac_inside) == 0.5
    assert abs(float(ds.max_stable_dt_overall) - 0.5) < 1e-9


class _Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(2, 2, dtype=D)
        self.rnn = ob.ODERNN(2, 4, method="Midpoint", dt=0.2, batch_first=True, dtype=D)
        self.head = nn.Linear(4, 1, dtype=D)


def test_monitor_contract():
    mon = StabilityMonitor(method=None, every=50, max_samples=8)
    x = torch.randn(16, 100, 2, dtype=D)
    m = mon(_Wrapper(), x)
    for k in ("frac_inside", "max_abs_R", "max_stable_dt", "dt", "spectral_abscissa"):
        assert isinstance(m[k], float)
    assert m["dt"] == 0.2 and 0.0 <= m["frac_inside"] <= 1.0
    assert mon.due(100) and not mon.due(101)
    # another method changes the verdict: explicit Euler on the same spectrum
    m2 = StabilityMonitor(method="ImplicitMidpoint")(_Wrapper(), x)
    assert m2["max_stable_dt"] >= m["max_stable_dt"]
    with pytest.raises(TypeError, match="model"):
        mon(nn.Linear(2, 2), x)


def test_damped_antisymmetric_parametrisation():
    lin = nn.Linear(6, 6, bias=False, dtype=D)
    parametrize.register_parametrization(lin, "weight", DampedAntisymmetric(0.3))
    ev = torch.linalg.eigvals(lin.weight.detach())
    assert torch.allclose(ev.real, torch.full((6,), -0.3, dtype=D), atol=1e-12)
    # Euler's largest stable dt for −γ ± iy is 2γ/(γ² + y²)
    y = ev.imag.abs().max()
    assert abs(max_stable_dt("Euler", ev.numpy()) - float(0.6 / (0.09 + y ** 2))) < 1e-12


def test_spectral_scaling_puts_spectrum_inside():
    torch.manual_seed(1)
    lin = nn.Linear(5, 5, bias=False, dtype=D)
    with torch.no_grad():
        lin.weight.copy_(-3 * torch.eye(5, dtype=D) + 2 * torch.randn(5, 5, dtype=D))
    ev0 = torch.linalg.eigvals(lin.weight.detach()).numpy()
    if (ev0.real >= 0).any():
        pytest.skip("random matrix with a right-half-plane eigenvalue")
    parametrize.register_parametrization(lin, "weight", SpectralScaling("RK4", dt=1.0, margin=0.9))
    ev = torch.linalg.eigvals(lin.weight.detach()).numpy()
    assert max_stable_dt("RK4", ev) >= 1.0 / 0.9 - 1e-9
    with pytest.raises(ValueError, match="margin"):
        SpectralScaling("RK4", dt=1.0, margin=0.0)


def test_prediction_agrees_with_training_experiment_b():
    """Experiment (b), small: Euler, dt = 0.9·dt* and 1.1·dt* (dt* = 1 for eigenvalues −1 ± i·y, |y| ≤ 1).
    The monitor at initialisation predicts divergence exactly for the run outside; plain SGD
    then diverges (non-finite loss) outside and trains inside."""
    from odernn_bridge.theory.experiments import dt_threshold_experiment

    ds = dt_threshold_experiment(n_iter=12, seq_len=100, monitor_every=4, optimizer="sgd")
    assert abs(ds.attrs["dt_star"] - 1.0) < 1e-12
    assert ds.predicted_divergence.values.tolist() == [0, 1]
    assert ds.diverged.values.tolist() == [0, 1]
    assert int(ds.agreement) == 1
    assert float(ds.monitor_max_abs_R[0, 0]) <= 1.0 < float(ds.monitor_max_abs_R[1, 0])


def test_bad_inputs():
    rnn = ob.ODERNN(2, 3, dtype=D)
    with pytest.raises(ValueError, match="inputs"):
        stability_report(rnn, torch.randn(3, dtype=D))
    with pytest.raises(ValueError, match="NaN"):
        stability_report(rnn, torch.full((3, 1, 2), math.nan, dtype=D))
    with pytest.raises(ValueError, match="every"):
        StabilityMonitor(every=0)
    assert isinstance(make_field("elman", 2, 3), nn.Module) and RKCell is not None


@pytest.mark.parametrize("method", ["RK4", "ImplicitMidpoint", "Kvaerno3"])
def test_step_jacobian_equals_R_of_hJ_for_linear_fields(method):
    """For f = A h + x an RK step is h ↦ R(hA) h + (…): the autograd Jacobian of the whole
    step (explicit stages, or the Newton solve differentiated by the implicit-function
    theorem) equals the matrix R(hA) computed from the stability function."""
    if method not in ob.list_methods():
        pytest.skip(f"{method} not in the catalogue")
    A = torch.tensor([[-1.0, 8.0], [0.0, -1.0]], dtype=D)
    rnn = _linear_odernn(A, method, 0.5)
    ds = stability_report(rnn, torch.randn(3, 2, 2, dtype=D), step_jacobian=True)
    np.testing.assert_allclose(ds.step_norm.values, ds.norm_R.values, rtol=1e-10)


def test_step_jacobian_for_cells_without_a_stability_function():
    from odernn_bridge.cells import CoRNNCell

    cell = CoRNNCell(2, 3).double()
    ds = stability_report(cell, torch.randn(5, 2, 2, dtype=D), step_jacobian=True)
    assert np.isnan(ds.abs_R.values).all()  # symplectic Euler on y'' = …: no R(z) here
    assert np.isfinite(ds.step_norm.values).all() and (ds.step_spectral_radius.values > 0).all()

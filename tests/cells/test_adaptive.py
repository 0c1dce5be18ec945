"""Adaptive cells against SciPy's RK45 / DOP853 (same problem, tolerances, conventions)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate as si
import torch

import odernn_bridge as ob
from odernn_bridge.cells import AdaptiveRKCell, CallableField, ElmanField

from ._tableaux import dop853, dp5

MU = 3.0
Y0 = np.array([[2.0, 0.0], [1.0, 1.0], [0.5, -1.0]])
T = 10.0


def _vdp_np(t: float, y: np.ndarray) -> np.ndarray:
    return np.array([y[1], MU * (1 - y[0] ** 2) * y[1] - y[0]])


def _vdp_torch(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([h[:, 1], MU * (1 - h[:, 0] ** 2) * h[:, 1] - h[:, 0]], 1)


def _cell(method: str, controller: str, rtol: float, atol: float, **kw) -> AdaptiveRKCell:
    field = CallableField(_vdp_torch, 1, 2)
    if method == "RK45":
        return AdaptiveRKCell(field, dp5(), dt=T, rtol=rtol, atol=atol, controller=controller, **kw)
    tab, e3 = dop853()
    return AdaptiveRKCell(field, tab, dt=T, rtol=rtol, atol=atol, controller=controller,
                          error_estimator="dop853", secondary_weights=e3, estimator_order=7, **kw)


def _scipy(method: str, rtol: float, atol: float) -> tuple[list[int], np.ndarray]:
    acc, ys = [], []
    for y0 in Y0:
        sol = si.solve_ivp(_vdp_np, (0, T), y0, method=method, rtol=rtol, atol=atol)
        acc.append(len(sol.t) - 1)
        ys.append(sol.y[:, -1])
    return acc, np.array(ys)


@pytest.mark.parametrize("method", ["RK45", "DOP853"])
@pytest.mark.parametrize("rtol,atol", [(1e-3, 1e-6), (1e-6, 1e-9)])
def test_integral_controller_reproduces_scipy(method: str, rtol: float, atol: float) -> None:
    # controller="I" is SciPy's convention exactly (error norm, starting step, factors,
    # no growth after a rejection): the same steps are taken up to round-off.  The error
    # estimate Σ E_i K_i cancels (Σ E_i = 0), so its last digits differ between torch and
    # NumPy and the step sequences drift apart at the 1e-8 level: accepted counts agree to
    # ±1 (the 10% requirement holds with a wide margin), end states to ≪ the tolerance.
    cell = _cell(method, "I", rtol, atol)
    out = cell(torch.zeros(3, 1, dtype=torch.float64), torch.tensor(Y0))
    acc_ref, y_ref = _scipy(method, rtol, atol)
    acc = cell.last_stats["accepted"].tolist()
    assert all(abs(a - r) <= 0.1 * r for a, r in zip(acc, acc_ref)), (acc, acc_ref)
    assert all(abs(a - r) <= 1 for a, r in zip(acc, acc_ref)), (acc, acc_ref)
    np.testing.assert_allclose(out.detach().numpy(), y_ref, rtol=0, atol=0.01 * rtol)


@pytest.mark.parametrize("method", ["RK45", "DOP853"])
@pytest.mark.parametrize("rtol,atol", [(1e-3, 1e-6), (1e-6, 1e-9)])
def test_pi_controller_within_ten_percent_of_scipy(method: str, rtol: float, atol: float) -> None:
    # the default PI controller (Hairer's DOPRI5 β = (0.17, 0.04) scaled to the order) trades
    # a few accepted steps for fewer rejections; the total stays within 10% of SciPy's
    cell = _cell(method, "PI", rtol, atol)
    out = cell(torch.zeros(3, 1, dtype=torch.float64), torch.tensor(Y0))
    acc_ref, y_ref = _scipy(method, rtol, atol)
    acc = int(cell.last_stats["accepted"].sum())
    assert abs(acc - sum(acc_ref)) <= 0.1 * sum(acc_ref), (acc, acc_ref)
    # the global error is of the order of the tolerance (Van der Pol, μ = 3)
    assert np.abs(out.detach().numpy() - y_ref).max() < 2e3 * max(rtol, atol)


def test_per_sample_timespans_and_statistics() -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = AdaptiveRKCell(field, dp5(), rtol=1e-8, atol=1e-10)
    x = torch.randn(3, 2, dtype=torch.float64)
    h = torch.randn(3, 3, dtype=torch.float64)
    spans = torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64)
    out = cell(x, h, timespans=spans)
    st = cell.last_stats
    assert torch.equal(out[0], h[0])  # zero gap: unchanged
    assert st["accepted"][0] == 0 and st["accepted"][2] > st["accepted"][1] > 0
    assert st["nfev"] > 0 and st["rejected"].shape == (3,)
    # each sample equals a fine fixed-step integration over its own gap
    for i in (1, 2):
        ref = ob.RKCell(field, "RK4", dt=float(spans[i]), substeps=400)(x[i:i + 1], h[i:i + 1])
        assert float((out[i] - ref[0]).detach().abs().max()) < 1e-8


def test_fsal_reuse_counts() -> None:
    # DP5 is FSAL: 1 evaluation for f(h0), 1 for the starting step, then 6 per attempt
    cell = AdaptiveRKCell(ElmanField(2, 3), dp5(), rtol=1e-5, atol=1e-7)
    cell(torch.randn(1, 2), torch.randn(1, 3), timespans=torch.tensor([2.0]))
    st = cell.last_stats
    assert st["nfev"] == 2 + 6 * st["attempts"]


def test_max_steps_returns_flagged_result() -> None:
    cell = AdaptiveRKCell(ElmanField(2, 3, dtype=torch.float64), dp5(), rtol=1e-12, atol=1e-14, max_steps=3)
    h = torch.randn(2, 3, dtype=torch.float64)
    with pytest.warns(ob.MaxStepsWarning, match="3 step attempts were not enough .* 2 of 2 sample"):
        out = cell(torch.randn(2, 2, dtype=torch.float64), h, timespans=5.0)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    assert cell.last_stats["max_steps_reached"] is True
    assert bool(cell.last_stats["unfinished"].all())
    strict = AdaptiveRKCell(ElmanField(2, 3, dtype=torch.float64), dp5(), rtol=1e-12, atol=1e-14, max_steps=3,
                            on_max_steps="raise")
    with pytest.raises(ob.ConvergenceError, match="max_steps"):
        strict(torch.randn(2, 2, dtype=torch.float64), h, timespans=5.0)


def test_sequence_irregular_gaps_and_gradients() -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = AdaptiveRKCell(field, dp5(), rtol=1e-6, atol=1e-8)
    u = field.project_input(torch.randn(4, 2, 2, dtype=torch.float64))
    gaps = torch.tensor([[0.1, 1.0], [0.5, 0.0], [2.0, 0.3], [0.2, 0.2]], dtype=torch.float64)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    states = cell.run_sequence(u, h0, timespans=gaps)
    assert states.shape == (4, 2, 3)
    assert torch.equal(states[1, 1], states[0, 1])  # gap 0 for sample 1 at step 1
    states[-1].sum().backward()
    assert h0.grad is not None and torch.isfinite(h0.grad).all()


def test_gradcheck_adaptive_cell() -> None:
    # step sizes are piecewise constant in the inputs: with a tight perturbation gradcheck
    # sees the derivative of the accepted-step map
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = AdaptiveRKCell(field, dp5(), rtol=1e-4, atol=1e-6, first_step=0.1, controller="I")
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h, timespans=0.7), (x, h), eps=1e-7, atol=1e-5)


def test_needs_embedded_pair() -> None:
    with pytest.raises(ValueError, match="b_embedded"):
        AdaptiveRKCell(ElmanField(2, 3), "RK4")
    with pytest.raises(ValueError, match="rtol"):
        AdaptiveRKCell(ElmanField(2, 3), dp5(), rtol=-1.0)
    with pytest.raises(ValueError, match="timespans"):
        AdaptiveRKCell(ElmanField(2, 3), dp5())(torch.zeros(2, 2), torch.zeros(2, 3),
                                                timespans=torch.tensor([1.0, -1.0]))


def test_blow_up_is_reported_not_looped() -> None:
    # y' = y² from y0 = 1 blows up at t = 1: the controller shrinks the step until max_steps,
    # returning a flagged, finite state (or a NonFiniteError if the state overflows first)
    field = CallableField(lambda h, x: h * h, 1, 1)
    cell = AdaptiveRKCell(field, dp5(), rtol=1e-6, atol=1e-9, max_steps=200, on_max_steps="flag")
    try:
        out = cell(torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), timespans=2.0)
    except ob.NonFiniteError as exc:
        assert "adaptive" in str(exc)
    else:
        assert cell.last_stats["max_steps_reached"] and bool(cell.last_stats["unfinished"].all())
        assert float(out) > 10.0


def test_scalar_and_tensor_time_gaps_agree() -> None:
    # found in review: timespans=0.0 raised ("expected a step size > 0") while a tensor of zeros
    # was accepted; a zero gap leaves the state unchanged either way
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = AdaptiveRKCell(field, dp5())
    x = torch.randn(4, 2, dtype=torch.float64)
    h = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(cell(x, h, timespans=0.0), h, rtol=0, atol=0)
    torch.testing.assert_close(cell(x, h, timespans=torch.zeros(4, dtype=torch.float64)), h, rtol=0, atol=0)
    torch.testing.assert_close(cell(x, h, timespans=0.3), cell(x, h, timespans=torch.full((4,), 0.3,
                                                                                        dtype=torch.float64)))
    with pytest.raises(ValueError, match="timespans"):
        cell(x, h, timespans=float("nan"))
    with pytest.raises(TypeError, match="timespans"):
        cell(x, h, timespans="0.3")

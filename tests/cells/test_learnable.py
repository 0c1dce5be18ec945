"""LearnableRKCell: a trainable explicit tableau kept on its order-p conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import odernn_bridge as ob
from odernn_bridge import MethodValidationError, OrderConditionError
from odernn_bridge.cells import LearnableRKCell, make_field
from odernn_bridge.cells.learnable import _Residual, after_optimizer_step, learnable_penalty, tableau_record


def field(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    return make_field("antisymmetric", 2, 6).to(dtype)


def test_starts_at_the_init_tableau_and_integrates_like_rkcell() -> None:
    cell = LearnableRKCell(field(), stages=4, order=4, init="RK4", dt=0.3, substeps=2)
    rk4 = ob.get_method("RK4")
    A, b, c = cell.coefficients()
    np.testing.assert_array_equal(A, rk4.A)
    np.testing.assert_array_equal(b, rk4.b)
    x, h = torch.randn(7, 3, 2, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    ref = ob.RKCell(cell.field, rk4, dt=0.3, substeps=2)
    u = cell.field.project_input(x)
    # same arithmetic up to the order of the additions
    torch.testing.assert_close(cell.run_sequence(u, h), ref.run_sequence(u, h), rtol=0, atol=1e-13)
    torch.testing.assert_close(cell(x[0], h), ref(x[0], h), rtol=0, atol=1e-14)
    assert cell.kind == "explicit" and cell.evaluations_per_step == 8


def test_fewer_stages_are_padded_and_random_init_is_on_the_manifold() -> None:
    cell = LearnableRKCell(field(), stages=5, order=4, init="RK4")
    assert ob.verify_order(cell.tableau(), tol=1e-12) == 4 and cell.tableau().stages == 5
    torch.manual_seed(1)
    cell = LearnableRKCell(field(), stages=6, order=5, init="random")
    assert cell.order_residual() < 1e-13
    assert ob.verify_order(cell.tableau(), tol=1e-12) == 5
    assert cell.init_name == "random"


def test_projection_after_a_step_lands_on_the_conditions() -> None:
    cell = LearnableRKCell(field(), stages=4, order=4)
    with torch.no_grad():
        cell.theta.add_(1e-3 * torch.randn_like(cell.theta))
    assert cell.order_residual() > 1e-5
    with pytest.raises(OrderConditionError, match="project_"):
        cell.tableau()
    info = cell.project_()
    assert info["converged"] and info["residual"] < 1e-13 and info["residual_before"] > 1e-5
    assert info["distance"] < 1e-2
    tab = cell.tableau()
    assert ob.verify_order(tab, tol=1e-12) == 4
    assert isinstance(tab, ob.ButcherTableau) and tab.kind == "explicit"
    np.testing.assert_allclose(tab.c, tab.A.sum(1), atol=1e-15)
    assert np.isclose(ob.real_stability_interval(tab), ob.real_stability_interval("RK4"), atol=1e-9)
    torch.testing.assert_close(cell.feasible_theta, cell.theta.detach())


def test_failed_projection_returns_to_the_last_feasible_point() -> None:
    cell = LearnableRKCell(field(), stages=4, order=4, maxiter=3)
    before = cell.theta.detach().clone()
    with torch.no_grad():
        cell.theta.fill_(50.0)
    info = cell.project_()
    assert not info["converged"] and int(cell.projection_failures) == 1
    torch.testing.assert_close(cell.theta.detach(), before, rtol=0, atol=0)
    with torch.no_grad():
        cell.theta.fill_(float("nan"))
    assert not cell.project_()["converged"] and int(cell.projection_failures) == 2
    assert cell.order_residual() < 1e-15


def test_gradients_reach_the_tableau() -> None:
    cell = LearnableRKCell(field(), stages=4, order=3, dt=0.5)
    x, h = torch.randn(5, 3, 2, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    u = cell.field.project_input(x)
    cell.run_sequence(u, h).pow(2).sum().backward()
    g = cell.theta.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().min() > 0

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            cell.theta.copy_(theta)
        return cell.run_sequence(u, h).pow(2).sum()

    # the autograd gradient equals central differences of the loss in every coefficient
    theta0 = cell.theta.detach().clone()
    eps = 1e-6
    fd = torch.stack([(loss_of(theta0 + eps * e) - loss_of(theta0 - eps * e)) / (2 * eps)
                      for e in torch.eye(len(theta0), dtype=torch.float64)])
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-7)


def test_float32_field_keeps_float64_coefficients_and_odernn_builds_learnable_cells() -> None:
    rnn = ob.ODERNN(2, 5, method="learnable", stages=4, order=3, dt=0.5, num_layers=2)
    cell = rnn.cells[0]
    assert isinstance(cell, LearnableRKCell) and cell.theta.dtype == torch.float64
    rnn.float()
    assert cell.theta.dtype == torch.float64 and cell.feasible_theta.dtype == torch.float64
    out, h = rnn(torch.randn(6, 3, 2))
    assert out.dtype == torch.float32 and out.shape == (6, 3, 5)
    out.sum().backward()
    assert all(c.theta.grad is not None for c in rnn.cells)
    rec = tableau_record(rnn)
    assert np.shape(rec["tableau_A"]) == (2, 4, 4) and rec["tableau_order_residual"] < 1e-13


def test_penalties_have_the_right_gradients() -> None:
    cell = LearnableRKCell(field(), stages=4, order=3, penalty=2.0)
    theta = (cell.theta.detach() + 0.01).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: _Residual.apply(t, cell.conditions), (theta,))
    with torch.no_grad():
        cell.theta.add_(0.01)
    r = cell.conditions.residual(cell.theta.detach().numpy())
    p = learnable_penalty(cell)
    assert p is not None and float(p.detach()) == pytest.approx(2.0 * float(r @ r), rel=1e-12)
    # RK4's real interval is 2.785: no penalty for a target of 2.5, a positive one for 4
    assert LearnableRKCell(field(), stages=4, order=3, stability=2.5).penalty() == 0
    assert float(LearnableRKCell(field(), stages=4, order=3, stability=4.0).penalty().detach()) > 1e-3


def test_stability_penalty_with_projection_widens_the_real_interval() -> None:
    """Minimising the stability penalty alone, projecting after every Adam step, moves a
    4-stage order-3 tableau from RK4's real interval (2.785) past 3.5 (the optimum for
    s = 4, p = 3 is about 6, at alpha_4 = bᵀA³1 ≈ 0.0185) and keeps order 3."""
    cell = LearnableRKCell(field(), stages=4, order=3, stability=4.0, stability_weight=10.0)
    opt = torch.optim.Adam([cell.theta], lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        learnable_penalty(cell).backward()
        opt.step()
        info = after_optimizer_step(cell)
        assert info["tableau_residual"] < 1e-12
    tab = cell.tableau()
    assert ob.verify_order(tab, tol=1e-12) == 3
    assert ob.real_stability_interval(tab) > 3.5


@pytest.mark.parametrize("kw,err,match", [
    ({"order": 5}, ValueError, "order 5 needs at least 6 stages"),
    ({"stages": 0}, ValueError, "stages: expected a positive integer"),
    ({"init": "Midpoint"}, MethodValidationError, "init: Midpoint has order 2 < order=4"),
    ({"init": "DP5"}, MethodValidationError, "init: DP5 has 7 stages, more than stages=4"),
    ({"init": "GL4"}, MethodValidationError, "init: GL4 is implicit"),
    ({"init": "AB3"}, TypeError, "init: AB3 is a linear multistep method"),
    ({"init": 3}, TypeError, "init: expected a method name, a ButcherTableau or 'random'"),
    ({"init": "NoSuchMethod"}, LookupError, "NoSuchMethod"),
    ({"stability": 3.0}, ValueError, "stability: with stages == order == 4"),
    ({"stages": 5, "stability": -1.0}, ValueError, "stability: expected None or a target"),
    ({"penalty": -1.0}, ValueError, "penalty: expected a finite number >= 0"),
    ({"project_every": 0}, ValueError, "project_every: expected a positive integer"),
    ({"tol": 1e-3}, ValueError, "tol: expected a projection tolerance"),
    ({"dt": 0.0}, ValueError, "dt: expected a step size > 0"),
])
def test_bad_arguments_are_named(kw: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        LearnableRKCell(field(), **{"stages": 4, "order": 4, **kw})


def test_project_every_and_order_penalty_between_projections() -> None:
    cell = LearnableRKCell(field(), stages=4, order=4, project_every=3, penalty=1.0)
    opt = torch.optim.SGD([cell.theta], lr=1e-3)
    for k in range(1, 7):
        opt.zero_grad()
        cell.theta.sum().backward()  # a gradient that pushes off the manifold
        opt.step()
        info = cell.after_optimizer_step()
        assert (info is not None) == (k % 3 == 0)
        assert (cell.order_residual() < 1e-13) == (k % 3 == 0)
    assert int(cell.optimizer_steps) == 6

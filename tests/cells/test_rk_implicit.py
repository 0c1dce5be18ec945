"""Diagonally and fully implicit RK cells: Newton solves, tolerances, IFT gradients."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from torch.func import functional_call

import odernn_bridge as ob
from odernn_bridge.cells import CallableField, ElmanField, RKCell

from ._tableaux import gauss2, implicit_tableaux, radau_iia3, sdirk2

TABLEAUX = implicit_tableaux()
IDS = [t.name for t in TABLEAUX]


def _np(field: ElmanField) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return field.W.weight.detach().numpy(), field.U.weight.detach().numpy(), field.U.bias.detach().numpy()


@pytest.mark.parametrize("tab", TABLEAUX, ids=IDS)
def test_linear_field_matches_exact_linear_solve(tab: ob.ButcherTableau) -> None:
    # f(h) = M h + u: the stage equations are linear, K = (I − dt A⊗M)^{-1} (1⊗(M h + u)).
    # Newton is exact after one iteration; both sides are float64 direct solves (≈1e-14).
    field = ElmanField(2, 4, activation="identity", dtype=torch.float64)
    dt = 0.3
    cell = RKCell(field, tab, dt=dt)
    x = torch.randn(3, 2, dtype=torch.float64)
    h = torch.randn(3, 4, dtype=torch.float64)
    got = cell(x, h).detach().numpy()
    M, U, bias = _np(field)
    s, n = tab.stages, 4
    L = np.eye(s * n) - dt * np.kron(tab.A, M)
    ref = []
    for bi in range(3):
        u = U @ x[bi].numpy() + bias
        rhs = np.tile(M @ h[bi].numpy() + u, s)
        K = np.linalg.solve(L, rhs).reshape(s, n)
        ref.append(h[bi].numpy() + dt * tab.b @ K)
    np.testing.assert_allclose(got, np.array(ref), rtol=0, atol=1e-12)
    assert cell.last_stats["converged"]


@pytest.mark.parametrize("tab", TABLEAUX, ids=IDS)
def test_nonlinear_stages_solved_to_tolerance(tab: ob.ButcherTableau) -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    with torch.no_grad():
        field.W.weight.mul_(3.0)  # a genuinely nonlinear, non-trivial stage system
    dt = 0.5
    cell = RKCell(field, tab, dt=dt, newton_tol=1e-12)
    x = torch.randn(2, 2, dtype=torch.float64)
    h = torch.randn(2, 3, dtype=torch.float64)
    got = cell(x, h).detach().numpy()
    st = cell.last_stats
    assert st["converged"] and st["residual"] <= 1e-12 and st["newton_iterations"] >= 1
    # independent check: SciPy's hybrid solver on the same stage equations
    W, U, bias = _np(field)
    s, n = tab.stages, 3
    for bi in range(2):
        u = U @ x[bi].numpy() + bias
        hb = h[bi].numpy()

        def G(Kf: np.ndarray) -> np.ndarray:
            K = Kf.reshape(s, n)
            Y = hb + dt * tab.A @ K
            return (K - np.tanh(Y @ W.T + u)).ravel()

        K = scipy.optimize.fsolve(G, np.zeros(s * n), xtol=1e-13).reshape(s, n)
        assert np.abs(G(K.ravel())).max() < 1e-12
        np.testing.assert_allclose(got[bi], hb + dt * tab.b @ K, rtol=0, atol=1e-10)


@pytest.mark.parametrize("tab", [gauss2(), radau_iia3(), sdirk2()], ids=lambda t: t.name)
def test_gradcheck_implicit_cell(tab: ob.ButcherTableau) -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = RKCell(field, tab, dt=0.4, substeps=2, newton_tol=1e-13)
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    # IFT gradient vs finite differences of the converged solve: agreement to gradcheck's
    # default atol 1e-5 needs the Newton residual ≪ eps² of the differences (1e-13 ≪ 1e-12)
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h), (x, h))
    W = field.W.weight.detach().clone().requires_grad_(True)
    b = field.U.bias.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda W, b: functional_call(cell, {"field.W.weight": W, "field.U.bias": b}, (x.detach(), h.detach())),
        (W, b))


def test_gradcheck_generic_field_uses_functorch_jacobian() -> None:
    # a user field without an analytic Jacobian goes through torch.func (vmap ∘ jacrev)
    lin = torch.nn.Linear(3, 3, dtype=torch.float64)
    field = CallableField(lambda h, x: torch.sin(lin(h)) - h * x.sum(-1, keepdim=True), 2, 3)
    cell = RKCell(field, gauss2(), dt=0.3, newton_tol=1e-13)
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h), (x, h))
    out = cell(x, h)
    out.sum().backward()
    # the closure's captured parameters get the same gradient as when the module is declared
    class Mod(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = lin

        def forward(self, h, x):
            return torch.sin(self.lin(h)) - h * x.sum(-1, keepdim=True)

    g_closure = lin.weight.grad.clone()
    lin.weight.grad = None
    declared = RKCell(CallableField(Mod(), 2, 3), gauss2(), dt=0.3, newton_tol=1e-13)
    declared(x, h).sum().backward()
    assert float(g_closure.abs().sum()) > 0
    torch.testing.assert_close(g_closure, lin.weight.grad, rtol=0, atol=1e-12)


def test_backward_memory_independent_of_iterations() -> None:
    # the graph has exactly one implicit node per step whatever the number of Newton iterations
    field = ElmanField(2, 3, dtype=torch.float64)
    x = torch.randn(2, 2, dtype=torch.float64)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    nodes = []
    for tol in (1e-4, 1e-13):
        cell = RKCell(field, gauss2(), dt=0.5, newton_tol=tol)
        out = cell(x, h)
        seen, stack, count = set(), [out.grad_fn], 0
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            count += 1
            stack.extend(f for f, _ in fn.next_functions)
        nodes.append((cell.last_stats["newton_iterations"], count))
    assert nodes[0][0] < nodes[1][0]  # tighter tolerance: more iterations ...
    assert nodes[0][1] == nodes[1][1]  # ... same graph


def test_newton_nonconvergence_raises_or_flags() -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    with torch.no_grad():
        field.W.weight.mul_(5.0)
    x = torch.randn(2, 2, dtype=torch.float64)
    h = torch.randn(2, 3, dtype=torch.float64)
    cell = RKCell(field, radau_iia3(), dt=1.0, newton_tol=1e-15, newton_maxiter=1)
    with pytest.raises(ob.ConvergenceError, match="newton_maxiter"):
        cell(x, h)
    flagged = RKCell(field, radau_iia3(), dt=1.0, newton_tol=1e-15, newton_maxiter=1, on_nonconvergence="flag")
    out = flagged(x, h)
    assert out.shape == (2, 3) and flagged.last_stats["converged"] is False
    assert flagged.last_stats["residual"] > 1e-15


def test_gauss_preserves_norm_of_rotation() -> None:
    # Gauss–Legendre is symplectic/unitary: for f = S h with S antisymmetric |R(iy)| = 1, so ‖h‖ is kept
    S = torch.tensor([[0.0, 2.0], [-2.0, 0.0]], dtype=torch.float64)
    field = CallableField(lambda h, x: h @ S.T, 1, 2)
    cell = RKCell(field, gauss2(), dt=0.7, substeps=10)
    h = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    out = cell(torch.zeros(1, 1, dtype=torch.float64), h)
    assert abs(float(out.norm()) - float(h.norm())) < 1e-13


@pytest.mark.parametrize("tab", [radau_iia3(), sdirk2()], ids=lambda t: t.name)
def test_frozen_jacobian_newton_same_solution(tab: ob.ButcherTableau) -> None:
    # simplified Newton converges linearly to the same fixed point (more iterations)
    field = ElmanField(2, 3, dtype=torch.float64)
    x = torch.randn(2, 2, dtype=torch.float64)
    h = torch.randn(2, 3, dtype=torch.float64)
    full = RKCell(field, tab, dt=0.3, newton_tol=1e-13, newton_jacobian="full")
    frozen = RKCell(field, tab, dt=0.3, newton_tol=1e-13, newton_jacobian="frozen", newton_maxiter=60)
    a, b = full(x, h), frozen(x, h)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert frozen.last_stats["converged"]
    assert frozen.last_stats["newton_iterations"] >= full.last_stats["newton_iterations"]
    with pytest.raises(ValueError, match="newton_jacobian"):
        RKCell(field, tab, newton_jacobian="broyden")

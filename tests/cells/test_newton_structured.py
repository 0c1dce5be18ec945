"""Structured Newton for implicit cells (issue 11): the batch-shared, Butcher-transformed
Newton matrix, its reuse over steps, the Jacobian-free Newton–Krylov variant, the backward
pass through the same factorisations, and the clear errors of issue 14 (singular Newton
matrix, empty batch)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from torch.func import functional_call

import odernn_bridge as ob
from odernn_bridge.cells import CallableField, ElmanField, MultistepCell, RKCell, StiffField
from odernn_bridge.cells.implicit import batched_gmres, default_newton_tol
from odernn_bridge.cells.newton_matrix import SharedNewtonMatrix, butcher_transform

from ._tableaux import gauss2, radau_iia3, sdirk2

MODES = ["shared", "full", "frozen", "krylov"]
D64 = torch.float64


def _tab(name: str) -> ob.ButcherTableau:
    return ob.get_method(name)


@pytest.mark.parametrize("name,blocks", [("GL4", [2]), ("RadauIIA5", [1, 2]), ("RadauIIA9", [1, 2, 2]),
                                         ("LobattoIIIC2", [2]), ("GL6", [1, 2])])
def test_butcher_transform_block_diagonalises(name: str, blocks: list[int]) -> None:
    C = 0.37 * _tab(name).A
    T, Tinv, blks = butcher_transform(C)
    assert sorted(len(idx) for idx, _ in blks) == blocks  # complex pairs → 2×2 real blocks
    D = np.zeros_like(C)
    for idx, blk in blks:
        D[np.ix_(idx, idx)] = blk
    np.testing.assert_allclose(T @ D @ Tinv, C, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", ["GL4", "RadauIIA5", "RadauIIA9", "LobattoIIIA4", "SDIRK2", "Kvaerno5"])
def test_shared_newton_matrix_equals_dense_inverse(name: str) -> None:
    # the transformed (or block-substituted) application is (I − C⊗J̄)^{-1} exactly: float64
    # direct solves of well-conditioned systems on both sides agree to ~1e-13
    tab = _tab(name)
    torch.manual_seed(0)
    n, B = 5, 3
    C = 0.8 * tab.A
    J = torch.randn(n, n, dtype=D64)
    M = SharedNewtonMatrix(C, J, lower=tab.kind == "diagonally_implicit")
    P = torch.eye(tab.stages * n, dtype=D64) - torch.kron(torch.tensor(C), J)
    r = torch.randn(B, tab.stages, n, dtype=D64)
    want = torch.linalg.solve(P, r.reshape(B, -1).T).T.reshape(r.shape)
    want_t = torch.linalg.solve(P.T, r.reshape(B, -1).T).T.reshape(r.shape)
    torch.testing.assert_close(M.solve(r), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(M.solve(r, transpose=True), want_t, rtol=0, atol=1e-12)


def _reference_step(tab: ob.ButcherTableau, field: ElmanField, x: torch.Tensor, h: torch.Tensor, dt: float) -> np.ndarray:
    """The exact step: stage equations solved by SciPy's hybrid method to its limit."""
    W, U, bias = (t.detach().numpy() for t in (field.W.weight, field.U.weight, field.U.bias))
    s, n = tab.stages, h.shape[1]
    out = []
    for bi in range(h.shape[0]):
        u = U @ x[bi].numpy() + bias
        hb = h[bi].numpy()

        def G(Kf: np.ndarray) -> np.ndarray:
            K = Kf.reshape(s, n)
            return (K - np.tanh((hb + dt * tab.A @ K) @ W.T + u)).ravel()

        K = scipy.optimize.fsolve(G, np.zeros(s * n), xtol=1e-14)
        assert np.abs(G(K)).max() < 1e-14
        out.append(hb + dt * tab.b @ K.reshape(s, n))
    return np.array(out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["ImplicitMidpoint", "GL4", "RadauIIA5", "SDIRK2", "Kvaerno5", "LobattoIIIA4"])
def test_default_tolerance_step_agrees_with_exact_to_1e12(name: str, mode: str) -> None:
    # issue 10: at the default float64 tolerance (1e-12 on the scaled residual) every Newton
    # variant reproduces the exact step to 1e-12 on a genuinely nonlinear stage system
    assert default_newton_tol(D64) == 1e-12
    torch.manual_seed(1)
    field = ElmanField(2, 6, dtype=D64)
    with torch.no_grad():
        field.W.weight.mul_(3.0)
    tab = _tab(name)
    x, h = torch.randn(4, 2, dtype=D64), torch.randn(4, 6, dtype=D64)
    cell = RKCell(field, tab, dt=0.5, newton_jacobian=mode, newton_maxiter=40)
    got = cell(x, h).detach().numpy()
    st = cell.last_stats
    assert st["converged"] and st["residual"] <= 1e-12 and st["fallbacks"] == 0
    np.testing.assert_allclose(got, _reference_step(tab, field, x, h, 0.5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("tab,mode", [(gauss2(), "shared"), (radau_iia3(), "shared"), (sdirk2(), "shared"),
                                      (gauss2(), "krylov"), (sdirk2(), "krylov")],
                         ids=lambda v: getattr(v, "name", v))
def test_gradcheck_structured_paths(tab: ob.ButcherTableau, mode: str) -> None:
    # the adjoint solve reuses the forward factorisation (shared: iterative refinement with
    # closed-form VJPs; krylov: GMRES on VJPs); it must give the IFT gradient of the solve
    field = ElmanField(2, 3, dtype=D64)
    cell = RKCell(field, tab, dt=0.4, substeps=2, newton_tol=1e-13, newton_jacobian=mode)
    x = torch.randn(2, 2, dtype=D64, requires_grad=True)
    h = torch.randn(2, 3, dtype=D64, requires_grad=True)
    # GMRES stops at a residual tolerance, so two backward runs may differ in the last bits
    # (its least-squares solves are not bitwise reproducible): allow 1e-10 for that
    nondet = 1e-10 if mode == "krylov" else 0.0
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h), (x, h), nondet_tol=nondet)
    W = field.W.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda W: functional_call(cell, {"field.W.weight": W}, (x.detach(), h.detach())), (W,), nondet_tol=nondet)


def test_gradcheck_shared_generic_field() -> None:
    # a field without an affine form: J̄ from torch.func at the batch mean, autograd VJPs
    lin = torch.nn.Linear(3, 3, dtype=D64)
    field = CallableField(lambda h, x: torch.sin(lin(h)) - h * x.sum(-1, keepdim=True), 2, 3)
    cell = RKCell(field, _tab("RadauIIA5"), dt=0.3, newton_tol=1e-13)
    x = torch.randn(3, 2, dtype=D64, requires_grad=True)
    h = torch.randn(3, 3, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h), (x, h))


def test_shared_path_makes_no_dense_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    # forward and backward of the default path use only the shared n×n / 2n×2n inverses
    field = ElmanField(3, 8, dtype=D64)
    rnn_cell = RKCell(field, "RadauIIA5", dt=0.5)
    x = torch.randn(6, 4, 3, dtype=D64)

    def forbidden(*a, **k):
        raise AssertionError("dense per-sample solve on the shared path")

    for fn in ("solve", "lu_factor", "lu_factor_ex", "lu_solve"):
        monkeypatch.setattr(torch.linalg, fn, forbidden)
    h = torch.zeros(4, 8, dtype=D64, requires_grad=True)
    out = rnn_cell.run_sequence(field.project_input(x), h)
    out.sum().backward()
    assert rnn_cell.last_stats["fallbacks"] == 0 and h.grad is not None


def test_matrix_reused_over_steps_and_invalidated_by_updates() -> None:
    torch.manual_seed(0)
    rnn = ob.ODERNN(3, 16, method="GL4", dt=0.5, dtype=D64)
    cell = rnn.cells[0]
    x = torch.randn(12, 5, 3, dtype=D64)
    rnn(x)
    st = cell.last_stats
    assert st["converged"] and 1 <= st["jacobian_updates"] <= 3  # not one per step (12)
    rnn(x)
    assert cell.last_stats["jacobian_updates"] == 0  # same weights: the matrix is kept
    with torch.no_grad():
        cell.field.W.weight.mul_(1.01)  # an optimiser step bumps the version counter
    rnn(x)
    assert cell.last_stats["jacobian_updates"] >= 1


def test_heterogeneous_batch_falls_back_to_full_newton() -> None:
    # samples saturated (act′ ≈ 0) next to samples in the linear range (act′ ≈ 1) with a
    # strong W: one shared Jacobian cannot contract for both, the step falls back to full
    # Newton and still converges to the same solution as the full path
    # (x = 0 with h = 0 is an equilibrium: those samples converge at once)
    torch.manual_seed(0)
    field = ElmanField(1, 4, dtype=D64)
    with torch.no_grad():
        field.W.weight.copy_(10.0 * torch.randn(4, 4, dtype=D64))
        field.U.weight.fill_(1.0)
        field.U.bias.zero_()
    x = torch.tensor([[0.0], [40.0], [-40.0], [0.0]], dtype=D64)
    h = torch.zeros(4, 4, dtype=D64)
    shared = RKCell(field, "GL4", dt=1.0)
    full = RKCell(field, "GL4", dt=1.0, newton_jacobian="full")
    a = shared(x, h)
    assert shared.last_stats["fallbacks"] == 1 and shared.last_stats["converged"]
    torch.testing.assert_close(a, full(x, h), rtol=0, atol=1e-12)


def test_krylov_on_stiff_field_matches_full() -> None:
    torch.manual_seed(0)
    field = StiffField(2, 6, stiffness=1000.0, dtype=D64)
    x, h = torch.randn(3, 2, dtype=D64), torch.randn(3, 6, dtype=D64)
    ref = RKCell(field, "RadauIIA5", dt=0.5, newton_jacobian="full")(x, h)
    for mode in ("krylov", "shared"):
        cell = RKCell(field, "RadauIIA5", dt=0.5, newton_jacobian=mode)
        torch.testing.assert_close(cell(x, h), ref, rtol=0, atol=1e-12)
        assert cell.last_stats["fallbacks"] == 0


def test_batched_gmres_solves_independent_systems() -> None:
    torch.manual_seed(0)
    A = torch.eye(12, dtype=D64) + 0.3 * torch.randn(5, 12, 12, dtype=D64)
    b = torch.randn(5, 12, dtype=D64)
    x, ok, matvecs = batched_gmres(lambda v: (A @ v.unsqueeze(-1)).squeeze(-1), b, 1e-12, restart=12)
    assert ok and matvecs <= 14
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_singular_newton_matrix_is_convergence_error(mode: str) -> None:
    # implicit Euler, dt = 1 on f(h) = h: the Newton matrix I − dt·J = 0 for every sample
    field = ElmanField(2, 3, activation="identity", dtype=D64)
    with torch.no_grad():
        field.W.weight.copy_(torch.eye(3, dtype=D64))
    cell = RKCell(field, "ImplicitEuler", dt=1.0, newton_jacobian=mode, newton_maxiter=3)
    with pytest.raises(ob.ConvergenceError, match="singular|did not converge"):
        cell(torch.randn(2, 2, dtype=D64), torch.randn(2, 3, dtype=D64))


def test_singular_newton_matrix_full_mode_names_it() -> None:
    field = ElmanField(2, 3, activation="identity", dtype=D64)
    with torch.no_grad():
        field.W.weight.copy_(torch.eye(3, dtype=D64))
    cell = RKCell(field, "ImplicitEuler", dt=1.0, newton_jacobian="full")
    with pytest.raises(ob.ConvergenceError, match="singular"):
        cell(torch.randn(2, 2, dtype=D64), torch.randn(2, 3, dtype=D64))


@pytest.mark.parametrize("method", ["GL4", "SDIRK2", "RadauIIA5", "BDF2"])
def test_empty_batch_gives_empty_result(method: str) -> None:
    # decision (issue 14): like nn.RNN and the explicit cells, an empty batch is a valid
    # batch — empty states out, zero gradients for the weights
    rnn = ob.ODERNN(3, 4, method=method, dt=0.5, dtype=D64)
    x = torch.randn(5, 0, 3, dtype=D64)
    out, h_n = rnn(x)
    assert out.shape == (5, 0, 4) and h_n.shape == (1, 0, rnn.state_size)
    out.sum().backward()
    assert float(rnn.cells[0].field.W.weight.grad.abs().sum()) == 0.0
    if method == "BDF2":
        return
    cell = RKCell(ElmanField(3, 4, dtype=D64), method, dt=0.5)
    assert cell(torch.zeros(0, 3, dtype=D64), torch.zeros(0, 4, dtype=D64)).shape == (0, 4)


@pytest.mark.parametrize("method", ["BDF2", "AM3", "AB2"])
def test_empty_batch_multistep(method: str) -> None:
    cell = MultistepCell(ElmanField(3, 4, dtype=D64), method, dt=0.2)
    state = cell(torch.zeros(0, 3, dtype=D64), torch.zeros(0, 4, dtype=D64))
    assert state.shape == (0, cell.state_size)
    state = cell(torch.zeros(0, 3, dtype=D64), state)
    assert state.shape == (0, cell.state_size)


@pytest.mark.parametrize("mode", MODES)
def test_multistep_newton_variants_agree(mode: str) -> None:
    torch.manual_seed(0)
    field = ElmanField(2, 5, dtype=D64)
    xs = torch.randn(6, 3, 2, dtype=D64)
    h0 = torch.randn(3, 5, dtype=D64)
    ref = MultistepCell(field, "BDF3", dt=0.3, newton_jacobian="full").run_sequence(field.project_input(xs), h0)
    cell = MultistepCell(field, "BDF3", dt=0.3, newton_jacobian=mode)
    # each solve agrees to ~1e-12 (the tolerance); BDF3 carries the differences through three
    # past states over 6 steps: 1e-11
    torch.testing.assert_close(cell.run_sequence(field.project_input(xs), h0), ref, rtol=0, atol=1e-11)


def test_singular_multistep_newton_matrix_is_convergence_error() -> None:
    # BDF1 = implicit Euler: y = y_n + dt f(y); f(y) = y, dt = 1 makes I − dt·J singular
    field = ElmanField(2, 3, activation="identity", bias=False, dtype=D64)
    with torch.no_grad():
        field.W.weight.copy_(torch.eye(3, dtype=D64))
    cell = MultistepCell(field, "BDF1", dt=1.0)
    with pytest.raises(ob.ConvergenceError):
        cell(torch.randn(2, 2, dtype=D64), torch.randn(2, 3, dtype=D64))


def test_newton_jacobian_option_is_validated() -> None:
    with pytest.raises(ValueError, match="newton_jacobian.*'shared'.*'krylov'"):
        RKCell(ElmanField(2, 3), "GL4", newton_jacobian="broyden")


@pytest.mark.parametrize("name", ["GL4", "RadauIIA5", "RadauIIA9", "GL6"])
@pytest.mark.parametrize("transpose", [False, True])
def test_complex_pair_blocks_match_dense_inverse(name: str, transpose: bool) -> None:
    """Complex-pair blocks are applied with three real products (Gauss's trick): the solve
    must equal the dense (I − C⊗J̄)⁻¹ (or its transpose) to rounding."""
    torch.manual_seed(1)
    n, s = 6, _tab(name).stages
    C = 0.4 * _tab(name).A
    J = torch.randn(n, n, dtype=D64) / 3
    M = SharedNewtonMatrix(C, J)
    assert any(p is not None for p in M.pairs)
    dense = torch.eye(s * n, dtype=D64) - torch.kron(torch.tensor(C), J)
    r = torch.randn(5, s, n, dtype=D64)
    A = dense.t() if transpose else dense
    want = torch.linalg.solve(A, r.reshape(5, s * n).t()).t().reshape(5, s, n)
    got = M.solve(r, transpose=transpose)
    assert float((got - want).abs().max()) < 1e-12


@pytest.mark.parametrize("method", ["GL4", "RadauIIA5", "ImplicitMidpoint"])
@pytest.mark.parametrize("field", ["elman", "leaky"])
def test_closed_form_input_gradients_equal_autograd(method: str, field: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The backward pass's closed-form wᵀ∂Φ/∂(h, u, W) for affine fields equals autograd
    through Φ (the path every other field takes)."""
    from odernn_bridge.cells import rk

    def grads() -> list[torch.Tensor]:
        torch.manual_seed(0)
        rnn = ob.ODERNN(3, 6, method=method, dt=0.4, field=field, dtype=D64)
        x = torch.randn(5, 4, 3, dtype=D64)
        h0 = torch.randn(1, 4, 6, dtype=D64, requires_grad=True)
        out, _ = rnn(x, h0)
        (out * torch.linspace(-1, 1, 6, dtype=D64)).pow(2).sum().backward()
        return [h0.grad] + [p.grad for p in rnn.parameters()]

    closed = grads()
    monkeypatch.setattr(rk, "_only_weight_in_rhs", lambda field, W: False)
    auto = grads()
    for a, b in zip(closed, auto):
        assert float((a - b).abs().max()) <= 1e-10 * max(1.0, float(b.abs().max()))


def test_predictor_only_where_the_fixed_point_map_contracts() -> None:
    """The fixed-point predictor of the stage values is used on non-stiff fields (fewer Newton
    iterations) and not on stiff ones (where it would cost iterations), judged from the
    cached shared matrix's spectral-radius estimate."""
    torch.manual_seed(0)

    def iterations(field: str) -> tuple[int, int]:
        rnn = ob.ODERNN(8, 32, method="RadauIIA5", dt=0.5, field=field, dtype=D64)
        x = torch.randn(20, 8, 8, dtype=D64)
        cell = rnn.cells[0]
        with torch.no_grad():
            rnn(x)
            first = cell.last_stats["newton_iterations"]  # step 0 builds the matrix: no predictor there
            rate = cell._jacobian_cache.matrix.picard_rate
            cell._jacobian_cache.clear()
        return first, rate

    it_rnn, rate_rnn = iterations("elman")
    it_stiff, rate_stiff = iterations("stiff")
    assert rate_rnn < 0.5 < 100 < rate_stiff  # ρ(dt·A ⊗ J̄): ≈ 0.1 vs ≈ 0.5·1000·ρ(A)
    # the same sequences without the predictor
    from odernn_bridge.cells import rk

    old = rk._PREDICT_BELOW
    rk._PREDICT_BELOW = 0.0
    try:
        torch.manual_seed(0)
        it_rnn_plain, _ = iterations("elman")
        it_stiff_plain, _ = iterations("stiff")
    finally:
        rk._PREDICT_BELOW = old
    assert it_rnn < 0.95 * it_rnn_plain  # float64 to 1e-12: ~1 of ~8 iterations per step saved
    assert it_stiff == it_stiff_plain

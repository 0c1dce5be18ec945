"""QUNN: unitarity, the Cayley step as an implicit-midpoint ODERNN step, parameter counts."""

from __future__ import annotations

import math

import pytest
import torch

from odernn_bridge.cells import CallableField, RKCell
from odernn_bridge.methods import get_method
from odernn_bridge.theory import (
    PolynomialField,
    QUNNCell,
    elman_odernn_param_count,
    lstm_param_count,
    odernn_param_count,
    pauli_matrix,
    qunn_param_count,
)
from odernn_bridge.stability.function import stability_function

D = torch.float64


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("integrator", ["expm", "cayley"])
def test_norm_preserved_over_10000_steps(integrator):
    # Tolerance 1e-10: each step is unitary to ~1e-15 (Padé exp / LU solve); 1e4 steps of
    # independent round-off stay ~1e-12. Measured: 2e-12 (expm), 3e-14 (cayley).
    q = QUNNCell(3, 3, memory=3, dt=0.7, integrator=integrator)
    x = torch.randn(10_000, 3, 3, dtype=D)
    with torch.no_grad():
        out, h = q(x)
    assert out.shape == (10_000, 3, 8)
    assert float((h.pow(2).sum(-1) - 1).abs().max()) <= 1e-10
    assert float((out.sum(-1) - 1).abs().max()) <= 1e-10  # probabilities sum to 1 at every step


def test_hamiltonian_hermitian_and_propagator_unitary():
    q = QUNNCell(4, 2, memory=2, dt=0.3)
    window = torch.randn(2, 5, 4, dtype=D)
    H = q.hamiltonian(window).detach()
    assert float((H - H.conj().transpose(-1, -2)).abs().max()) == 0.0
    for integ in ("expm", "cayley"):
        q.integrator = integ
        U = q.propagator(H)
        eye = torch.eye(4, dtype=U.dtype)
        assert float((U.conj().transpose(-1, -2) @ U - eye).abs().max()) < 1e-14


def test_cayley_step_is_the_implicit_midpoint_odernn_step():
    """In real form the QUNN field is linear and skew; GL2 (implicit midpoint) on it through the
    library's implicit RKCell (Newton) gives the same step as the Cayley propagator."""
    q = QUNNCell(3, 2, memory=1, dt=0.4, integrator="cayley")
    window = torch.randn(1, 4, 3, dtype=D)
    M = (q.real_generator(window) / q.dt).detach()  # (batch, 2d, 2d): dh/dt = M h
    assert float((M + M.transpose(-1, -2)).abs().max()) < 1e-15  # skew-symmetric
    field = CallableField(lambda h, x: torch.einsum("bij,bj->bi", M, h), input_size=1, hidden_size=8)
    cell = RKCell(field, "GL2", dt=q.dt, newton_tol=1e-14)
    h0 = q.initial_state(4) + 0.1 * torch.randn(4, 8, dtype=D)
    h0 = h0 / h0.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        diff = cell(torch.zeros(4, 1, dtype=D), h0) - q.step(window, h0)
    assert float(diff.abs().max()) < 1e-13
    # and GL2's stability function has |R(iy)| = 1
    R = stability_function(get_method("GL2"))
    y = torch.linspace(-50, 50, 101).numpy()
    assert abs(abs(R(1j * y)).max() - 1) < 1e-14 and abs(abs(R(1j * y)).min() - 1) < 1e-14


def test_parameter_count_matches_formula_for_t_1_to_64():
    for t in range(1, 65):
        assert _count(QUNNCell(5, 3, memory=t)) == qunn_param_count(3, t) == (t + 1) * 15
    # independent of the input width
    assert {_count(QUNNCell(m, 2, memory=4)) for m in (1, 7, 100)} == {qunn_param_count(2, 4)}


def test_comparison_counts_are_measured_counts():
    for m, H, L in ((3, 4, 1), (10, 8, 2)):
        assert lstm_param_count(m, H, L) == _count(torch.nn.LSTM(m, H, num_layers=L))
    for n, t, m, H in ((1, 1, 3, 2), (2, 3, 2, 2), (3, 2, 1, 2)):
        assert odernn_param_count(n, t, m, H) == _count(PolynomialField(n, t, m, H))
    # generic count grows polynomially: degree n in t
    assert odernn_param_count(2, 64, 4, 8) / odernn_param_count(2, 32, 4, 8) > 3.5
    assert elman_odernn_param_count(3, 4, 5) == 3 * 25 + 5 * 4 + 5


def test_polynomial_field_is_a_field():
    f = PolynomialField(2, 2, 1, 2, dtype=D)
    s, x = torch.randn(3, 4, dtype=D), torch.randn(3, 1, dtype=D)
    out = f(s, x)
    assert out.shape == (3, 4) and torch.equal(out[:, :2], s[:, 2:])


def test_pauli_algebra():
    X, Y, Z = (pauli_matrix(c) for c in "XYZ")
    assert torch.allclose(X @ Y, 1j * Z)
    assert pauli_matrix("XZ").shape == (4, 4)
    with pytest.raises(ValueError, match="string"):
        pauli_matrix("XA")


def test_bad_inputs():
    with pytest.raises(ValueError, match="memory"):
        QUNNCell(2, 2, memory=0)
    with pytest.raises(ValueError, match="integrator"):
        QUNNCell(2, 2, integrator="euler")
    q = QUNNCell(2, 2)
    with pytest.raises(ValueError, match="input"):
        q(torch.randn(4, 3, 5, dtype=D))
    with pytest.raises(ValueError, match="NaN"):
        q(torch.full((4, 3, 2), math.nan, dtype=D))


def test_qunn_learns_delayed_recall_better_than_chance():
    """Memory task: a symbol (1 of 4) at step 0, 15 blank steps, a query; recall the symbol.
    Chance accuracy is 0.25; the trained QUNN (3 qubits, t=2: 45 parameters + a 36-parameter
    linear read-out) must beat it clearly (measured ≥ 0.95 after 60 Adam steps)."""
    from odernn_bridge.theory.experiments import qunn_memory_experiment

    res = qunn_memory_experiment(task="recall", delay=15, n_iter=60, batch=32, n_test=400, seed=0)
    assert res["chance"] == 0.25
    assert res["accuracy"] >= 0.6


@pytest.mark.parametrize("integrator", ["cayley", "expm"])
def test_stability_report_of_a_qunn(integrator):
    """The QUNN's Jacobian −iH is skew (normal, imaginary spectrum) and both integrators have
    |R(iy)| = 1: every hλ lies on the boundary of S, ‖R(hJ)‖₂ = 1, no step-size limit."""
    from odernn_bridge.theory import stability_report

    q = QUNNCell(3, 2, memory=2, dt=0.8, integrator=integrator)
    ds = stability_report(q, torch.randn(6, 3, 3, dtype=D))
    assert dict(ds.sizes) == {"layer": 1, "step": 6, "sample": 3, "eig": 8}
    assert float(abs(ds.eig_real).max()) == 0.0  # snapped: |Re λ| ≤ 1e-10·|λ| is round-off
    assert float(abs(ds.abs_R - 1).max()) < 1e-14
    assert float(abs(ds.norm_R - 1).max()) < 1e-13
    assert math.isinf(float(ds.max_stable_dt_overall)) and float(ds.frac_condition) == 1.0

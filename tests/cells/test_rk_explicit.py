"""Explicit RK cells against an independent float64 NumPy implementation of the same tableau."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import ElmanField, LeakyField, RKCell

from ._tableaux import dop853, dp5, numpy_rk_step, rk38

CATALOGUE_EXPLICIT = ob.list_methods("explicit")  # collected now; the catalogue grows concurrently
LOCAL = {"DP5test": dp5, "DOP853test": lambda: dop853()[0], "RK38test": rk38}


def _tableau(name: str) -> ob.ButcherTableau:
    return LOCAL[name]() if name in LOCAL else ob.get_method(name)


def _numpy_params(field: ElmanField) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (field.W.weight.detach().numpy(), field.U.weight.detach().numpy(), field.U.bias.detach().numpy())


@pytest.mark.parametrize("name", CATALOGUE_EXPLICIT + sorted(LOCAL))
@pytest.mark.parametrize("leaky", [False, True])
def test_explicit_step_matches_numpy(name: str, leaky: bool) -> None:
    # Both sides are float64 with the same tableau; only the summation order differs,
    # so agreement is at round-off level (≪ 1e-12 for O(1) states).
    tab = _tableau(name)
    cls = LeakyField if leaky else ElmanField
    field = cls(3, 5, dtype=torch.float64)
    cell = RKCell(field, tab, dt=0.37)
    x = torch.randn(4, 3, dtype=torch.float64)
    h = torch.randn(4, 5, dtype=torch.float64)
    got = cell(x, h).detach().numpy()
    ref = numpy_rk_step(tab, *_numpy_params(field), x.numpy(), h.numpy(), 0.37, leak=1.0 if leaky else 0.0)
    # round-off of two float64 implementations (FMA vs mul+add, BLAS summation order) scales
    # with the coefficient sums; κ = 1 for every classical method (|a_ij|, |b_i| ≤ 1, dt < 1)
    kappa = max(1.0, 0.37 * float(np.abs(tab.A).sum(1).max()), 0.37 * float(np.abs(tab.b).sum()))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * kappa)
    assert cell.last_stats["nfev"] == cell.evaluations_per_step


@pytest.mark.parametrize("name", ["RK4", "DP5test"])
def test_substeps_equal_repeated_steps(name: str) -> None:
    tab = _tableau(name)
    field = ElmanField(2, 4, dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    h = torch.randn(3, 4, dtype=torch.float64)
    sub = RKCell(field, tab, dt=0.8, substeps=4)(x, h)
    ref = h.numpy()
    for _ in range(4):
        ref = numpy_rk_step(tab, *_numpy_params(field), x.numpy(), ref, 0.2)
    np.testing.assert_allclose(sub.detach().numpy(), ref, rtol=0, atol=1e-12)


def test_fsal_stage_is_skipped() -> None:
    # DP5's 7th stage has b_7 = 0 and nothing depends on it: a fixed-step cell never evaluates it
    cell = RKCell(ElmanField(2, 3), dp5(), dt=0.1, substeps=3)
    assert dp5().fsal
    cell(torch.zeros(1, 2), torch.zeros(1, 3))
    assert cell.last_stats["nfev"] == 6 * 3


def test_zero_coefficients_are_skipped() -> None:
    # classic RK4: 3 nonzero a_ij; counting calls to the field's rhs
    calls = []
    field = ElmanField(2, 3)
    orig = field.rhs

    def counting(h, u, t=None):
        calls.append(1)
        return orig(h, u, t)

    field.rhs = counting  # type: ignore[method-assign]
    cell = RKCell(field, "RK4", dt=0.1)
    assert [len(r) for r in cell._rows] == [0, 1, 1, 1]
    cell(torch.zeros(1, 2), torch.zeros(1, 3))
    assert len(calls) == 4


def test_linear_input_interpolation_matches_nonautonomous_reference() -> None:
    # with linear interpolation a stage at t_k + c_i dt sees x_k + c_i (x_{k+1} − x_k)
    tab = ob.get_method("RK4")
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = RKCell(field, tab, dt=0.5, input_interpolation="linear")
    x0 = torch.randn(2, 2, dtype=torch.float64)
    x1 = torch.randn(2, 2, dtype=torch.float64)
    h = torch.randn(2, 3, dtype=torch.float64)
    got = cell(x0, h, x_next=x1).detach().numpy()
    W, U, bias = _numpy_params(field)
    A, b, c = tab.A, tab.b, tab.c
    K = []
    for i in range(4):
        y = h.numpy() + sum(0.5 * A[i, j] * K[j] for j in range(i))
        xi = x0.numpy() + c[i] * (x1.numpy() - x0.numpy())
        K.append(np.tanh(y @ W.T + xi @ U.T + bias))
    ref = h.numpy() + sum(0.5 * b[i] * K[i] for i in range(4))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


def test_rk4_converges_with_order_4() -> None:
    # error of N substeps vs a very fine solution drops by ≈ 2^4 per halving
    field = ElmanField(2, 4, dtype=torch.float64)
    x = torch.randn(1, 2, dtype=torch.float64)
    h = torch.randn(1, 4, dtype=torch.float64)
    with torch.no_grad():
        ref = RKCell(field, "RK4", dt=2.0, substeps=512)(x, h)
        errs = [float((RKCell(field, "RK4", dt=2.0, substeps=n)(x, h) - ref).abs().max()) for n in (4, 8, 16)]
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(3.7 < r < 4.4 for r in rates), rates


def test_float32_matches_float64() -> None:
    f64 = ElmanField(3, 6, dtype=torch.float64)
    f32 = ElmanField(3, 6)
    f32.load_state_dict({k: v.float() for k, v in f64.state_dict().items()})
    x = torch.randn(5, 3, dtype=torch.float64)
    h = torch.randn(5, 6, dtype=torch.float64)
    a = RKCell(f64, "RK4", dt=0.3)(x, h)
    b = RKCell(f32, "RK4", dt=0.3)(x.float(), h.float())
    assert b.dtype == torch.float32
    assert float((a - b.double()).detach().abs().max()) < 1e-5  # float32 round-off on O(1) values


def test_gradcheck_explicit_cell() -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = RKCell(field, dp5(), dt=0.4, substeps=2)
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h), (x, h))
    W = field.W.weight.detach().clone().requires_grad_(True)
    from torch.func import functional_call

    assert torch.autograd.gradcheck(
        lambda W: functional_call(cell, {"field.W.weight": W}, (x.detach(), h.detach())), (W,))


def test_compiled_step_path_equals_the_generic_path() -> None:
    # RKCell.compile shares the explicit stage loop with the generic step; the "eager"
    # torch.compile backend checks the plumbing in milliseconds (no code generation).
    # 2 substeps of RK4 in float64: both paths do the same operations, so they agree to round-off
    field = ob.make_field("elman", 3, 4, dtype=torch.float64)
    u = field.project_input(torch.randn(6, 2, 3, dtype=torch.float64))
    h0 = torch.randn(2, 4, dtype=torch.float64)
    generic = ob.RKCell(field, "RK4", dt=0.3, substeps=2, fused=False)
    compiled = ob.RKCell(field, "RK4", dt=0.3, substeps=2).compile(backend="eager")
    torch.testing.assert_close(compiled.run_sequence(u, h0), generic.run_sequence(u, h0), rtol=0, atol=1e-14)
    assert compiled.last_stats["nfev"] == generic.last_stats["nfev"] == 6 * 2 * 4

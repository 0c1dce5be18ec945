"""as_odernn: exact ODERNN forms of torch's RNN/GRU/LSTM and of URNN / residual / antisymmetric cells.

Tolerance 1e-12 (float64): each step of the ODERNN form differs from torch's formula only in
the order of a few additions (h + (y − h) vs y), i.e. a few ulps (~1e-16) per step on
quantities of size ≤ ~10; over 12 steps and 2 layers this stays far below 1e-12.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import ODERNN, RKCell
from odernn_bridge.theory import (
    AntisymmetricRNNCell,
    ResidualRNNCell,
    TorchEquivalentODERNN,
    URNNCell,
    as_odernn,
    classify,
)

TOL = 1e-12
D = torch.float64


def _max_diff(a, b) -> float:
    if isinstance(a, tuple):
        return max(_max_diff(x, y) for x, y in zip(a, b))
    return float((a - b).abs().max().detach())


CASES = list(itertools.product(("RNN", "GRU", "LSTM"), (1, 2), (False, True)))


@pytest.mark.parametrize("kind,layers,batch_first", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_layer_equivalence_random_weights(kind, layers, batch_first, bias):
    cls = getattr(torch.nn, kind)
    m = cls(3, 5, num_layers=layers, batch_first=batch_first, bias=bias, dtype=D)
    with torch.no_grad():  # random weights well beyond the default init scale
        for p in m.parameters():
            p.normal_(0.0, 0.8)
    ode = as_odernn(m)
    assert isinstance(ode, ODERNN) and ode.method.name == "Euler" and ode.dt == 1.0
    assert ode.derivative_order == (2 if kind == "LSTM" else 1) == classify(m).t
    B, T = 4, 12
    x = torch.randn(B, T, 3, dtype=D) if batch_first else torch.randn(T, B, 3, dtype=D)
    if kind == "LSTM":
        h0 = (torch.randn(layers, B, 5, dtype=D), torch.randn(layers, B, 5, dtype=D))
    else:
        h0 = torch.randn(layers, B, 5, dtype=D)
    ref, got = m(x, h0), ode(x, h0)
    assert _max_diff(ref[0], got[0]) <= TOL
    assert _max_diff(ref[1], got[1]) <= TOL
    # without h0 as well
    assert _max_diff(m(x)[0], ode(x)[0]) <= TOL


@pytest.mark.parametrize("fused", [True, False])
def test_rnn_fused_and_stepwise_paths_agree(fused):
    """nn.RNN's field has an affine form, so the library may run it through its fused
    whole-sequence kernel; both paths must match torch."""
    m = torch.nn.RNN(3, 6, num_layers=2, dtype=D)
    ode = as_odernn(m)
    for c in ode.cells:
        c.fused = fused
    x = torch.randn(15, 4, 3, dtype=D)
    assert _max_diff(m(x), ode(x)) <= TOL


def test_relu_rnn_and_unbatched_input():
    m = torch.nn.RNN(2, 4, num_layers=2, nonlinearity="relu", dtype=D)
    ode = as_odernn(m)
    x = torch.randn(9, 2, dtype=D)  # unbatched (seq, feature)
    h0 = torch.randn(2, 4, dtype=D)
    (y1, h1), (y2, h2) = m(x, h0), ode(x, h0)
    assert _max_diff(y1, y2) <= TOL and _max_diff(h1, h2) <= TOL


def test_lstm_unbatched_with_state():
    m = torch.nn.LSTM(2, 3, dtype=D)
    ode = as_odernn(m)
    x = torch.randn(6, 2, dtype=D)
    hc = (torch.randn(1, 3, dtype=D), torch.randn(1, 3, dtype=D))
    assert _max_diff(m(x, hc)[1], ode(x, hc)[1]) <= TOL


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cells_step_by_step(kind):
    cell = getattr(torch.nn, kind)(3, 4, dtype=D)
    ode = as_odernn(cell)
    step = ode.cells[0]
    x = torch.randn(8, 5, 3, dtype=D)
    if kind == "LSTMCell":
        h, c = torch.randn(5, 4, dtype=D), torch.randn(5, 4, dtype=D)
        s = torch.cat([h, c], -1)
        for k in range(8):
            h, c = cell(x[k], (h, c))
            s = step(x[k], s)
        assert _max_diff(s, torch.cat([h, c], -1)) <= TOL
    else:
        h = torch.randn(5, 4, dtype=D)
        s = h.clone()
        for k in range(8):
            h = cell(x[k], h)
            s = step(x[k], s)
        assert _max_diff(s, h) <= TOL


def test_parameters_are_shared_and_gradients_agree():
    m = torch.nn.GRU(3, 4, num_layers=2, dtype=D)
    ode = as_odernn(m)
    assert {id(p) for p in ode.parameters()} == {id(p) for p in m.parameters()}
    x = torch.randn(7, 2, 3, dtype=D)
    g_ref = torch.autograd.grad(m(x)[0].pow(2).sum(), list(m.parameters()))
    g_ode = torch.autograd.grad(ode(x)[0].pow(2).sum(), list(m.parameters()))
    assert max(_max_diff(a, b) for a, b in zip(g_ref, g_ode)) <= 1e-11


@pytest.mark.parametrize("nonlinearity,parametrization", [("modrelu", "expm"), ("tanh", "cayley")])
def test_urnn_cell_and_its_odernn_form(nonlinearity, parametrization):
    cell = URNNCell(3, 6, nonlinearity=nonlinearity, parametrization=parametrization, dtype=D)
    Q = cell.recurrent_matrix().detach()
    assert float((Q @ Q.T - torch.eye(6, dtype=D)).abs().max()) < 1e-13  # orthogonal (real unitary)
    ode = as_odernn(cell)
    x = torch.randn(10, 4, 3, dtype=D)
    h = torch.randn(4, 6, dtype=D)
    ref = h
    for k in range(10):
        ref = cell(x[k], ref)
    out, hn = ode(x, h.unsqueeze(0))
    assert _max_diff(hn[0], ref) <= TOL
    assert classify(cell)[:2] == (1, 1)


def test_residual_and_antisymmetric_cells():
    for cell, dt in ((ResidualRNNCell(2, 5, dt=0.3, dtype=D), 0.3),
                     (AntisymmetricRNNCell(2, 5, eps=0.2, gamma=0.05, dtype=D), 0.2)):
        ode = as_odernn(cell)
        assert ode.dt == dt and ode.method.name == "Euler"
        x = torch.randn(9, 3, 2, dtype=D)
        ref = torch.zeros(3, 5, dtype=D)
        for k in range(9):
            ref = cell(x[k], ref)
        assert _max_diff(ode(x)[1][0], ref) <= TOL
        assert {id(p) for p in ode.parameters()} == {id(p) for p in cell.parameters()}


def test_unsupported_modules_raise_clear_errors():
    with pytest.raises(ValueError, match="bidirectional"):
        as_odernn(torch.nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match="proj_size"):
        as_odernn(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(TypeError, match="module"):
        as_odernn(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hx"):
        as_odernn(torch.nn.LSTM(2, 3))(torch.randn(4, 1, 2), torch.zeros(1, 1, 3))


def test_toplevel_exports():
    for name in ("classify", "as_odernn", "Classification", "stability_report", "StabilityMonitor",
                 "QUNNCell", "URNNCell"):
        assert getattr(ob, name) is not None
    assert isinstance(as_odernn(torch.nn.LSTM(2, 3)), TorchEquivalentODERNN)
    assert isinstance(RKCell, type)

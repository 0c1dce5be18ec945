"""The (n, t) classification of standard cells and of every ODERNN the library builds."""

from __future__ import annotations

import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import CoRNNCell, ElmanField, HigherOrderCell, RKCell, make_field
from odernn_bridge.theory import (
    AntisymmetricRNNCell,
    Classification,
    QUNNCell,
    ResidualRNNCell,
    URNNCell,
    as_odernn,
    classify,
)


@pytest.mark.parametrize("module,nt", [
    (torch.nn.RNN(2, 3), (1, 1)),
    (torch.nn.RNNCell(2, 3), (1, 1)),
    (torch.nn.GRU(2, 3, num_layers=2), (1, 1)),
    (torch.nn.GRUCell(2, 3), (1, 1)),
    (torch.nn.LSTM(2, 3), (1, 2)),
    (torch.nn.LSTMCell(2, 3), (1, 2)),
    (URNNCell(2, 3), (1, 1)),
    (ResidualRNNCell(2, 3), (1, 1)),
    (AntisymmetricRNNCell(2, 3), (1, 1)),
    (CoRNNCell(2, 3), (1, 2)),
    (QUNNCell(2, 2, memory=5), (1, 5)),
])
def test_standard_cells(module, nt):
    c = classify(module)
    assert isinstance(c, Classification)
    assert (c.n, c.t) == nt
    assert len(c.explanation) > 40


@pytest.mark.parametrize("method,n", [("Euler", 1), ("Midpoint", 2), ("RK4", 4), ("GL4", 2), ("RadauIIA5", 3)])
def test_odernn_n_is_stage_count(method, n):
    rnn = ob.ODERNN(2, 3, method=method, num_layers=2)
    c = classify(rnn)
    assert (c.n, c.t) == (n, 1)
    assert method in c.explanation
    assert classify(rnn.cells[0]).n == n


def test_multistep_and_higher_order_memory():
    assert classify(ob.ODERNN(2, 3, method="AB3"))[:2] == (1, 3)
    assert classify(ob.ODERNN(2, 3, method="BDF2"))[:2] == (1, 2)
    cell = HigherOrderCell(ElmanField(2, 3, state_size=9), order=3, method="RK4", dt=0.1)
    assert classify(cell)[:2] == (4, 3)
    cell2 = HigherOrderCell(ElmanField(2, 3, state_size=6), order=2, method="symplectic_euler")
    assert classify(cell2)[:2] == (1, 2)
    assert classify(RKCell(make_field("leaky", 2, 3), "Heun" if "Heun" in ob.list_methods() else "Midpoint")).n == 2


def test_exact_forms_classify_as_their_source():
    for m in (torch.nn.LSTM(2, 3), torch.nn.GRU(2, 3), torch.nn.RNN(2, 3), URNNCell(2, 3)):
        assert classify(as_odernn(m)) == classify(m)
    # the residual RNN's exact form is a plain Euler ODERNN: the stage reading agrees
    assert classify(as_odernn(ResidualRNNCell(2, 3)))[:2] == (1, 1)


def test_model_with_rnn_attribute():
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.LSTM(2, 3)
            self.head = torch.nn.Linear(3, 1)

    assert classify(Model())[:2] == (1, 2)


def test_unknown_module_raises():
    with pytest.raises(TypeError, match="module"):
        classify(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="module"):
        classify("LSTM")

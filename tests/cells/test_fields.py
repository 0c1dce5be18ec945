"""Vector fields: formulas, input projection, Jacobians, user callables."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacrev, vmap

import odernn_bridge as ob
from odernn_bridge.cells import (
    AntisymmetricField,
    CallableField,
    ElmanField,
    GatedField,
    LeakyField,
    RKCell,
    VectorField,
    make_field,
)
from odernn_bridge.cells.higher_order import CoRNNField

D = torch.float64


def test_builtin_formulas() -> None:
    x = torch.randn(3, 2, dtype=D)
    h = torch.randn(3, 4, dtype=D)
    e = ElmanField(2, 4, dtype=D)
    ref = torch.tanh(h @ e.W.weight.T + x @ e.U.weight.T + e.U.bias)
    torch.testing.assert_close(e(h, x), ref, rtol=0, atol=1e-15)
    lf = LeakyField(2, 4, dtype=D)
    torch.testing.assert_close(lf(h, x), torch.tanh(h @ lf.W.weight.T + x @ lf.U.weight.T + lf.U.bias) - h,
                               rtol=0, atol=1e-15)
    a = AntisymmetricField(2, 4, gamma=0.1, dtype=D)
    M = a.W - a.W.T - 0.1 * torch.eye(4, dtype=D)
    torch.testing.assert_close(a(h, x), torch.tanh(h @ M.T + x @ a.V.weight.T + a.V.bias), rtol=0, atol=1e-15)
    g = GatedField(2, 4, dtype=D)
    pre = h @ g.W.weight.T + x @ g.U.weight.T + g.U.bias
    z = torch.sigmoid(pre[:, :4])
    torch.testing.assert_close(g(h, x), z * (torch.tanh(pre[:, 4:]) - h), rtol=0, atol=1e-15)


def test_euler_dt1_on_leaky_field_is_elman_rnn() -> None:
    # THEORY §1: the Elman RNN is explicit Euler with dt = 1 on f = tanh(W h + U x + b) − h
    lf = LeakyField(2, 4, dtype=D)
    rnn = torch.nn.RNNCell(2, 4, dtype=D)
    with torch.no_grad():
        rnn.weight_hh.copy_(lf.W.weight)
        rnn.weight_ih.copy_(lf.U.weight)
        rnn.bias_ih.copy_(lf.U.bias)
        rnn.bias_hh.zero_()
    x, h = torch.randn(3, 2, dtype=D), torch.randn(3, 4, dtype=D)
    torch.testing.assert_close(RKCell(lf, "Euler", dt=1.0)(x, h), rnn(x, h), rtol=0, atol=1e-15)


def test_sequence_projection_equals_per_step() -> None:
    f = ElmanField(2, 4, dtype=D)
    xs = torch.randn(5, 3, 2, dtype=D)
    us = f.project_input(xs)
    for k in range(5):
        torch.testing.assert_close(us[k], f.project_input(xs[k]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("field", [ElmanField(2, 4, dtype=D), LeakyField(2, 4, dtype=D),
                                   AntisymmetricField(2, 4, dtype=D), GatedField(2, 4, dtype=D),
                                   ElmanField(2, 2, state_size=4, dtype=D), CoRNNField(2, 3, dtype=D)],
                         ids=lambda f: f"{type(f).__name__}{f.state_size}")
def test_jacobian_matches_torch_func(field: VectorField) -> None:
    h = torch.randn(3, field.state_size, dtype=D)
    u = field.project_input(torch.randn(3, 2, dtype=D))
    ref = vmap(jacrev(lambda hi, ui: field.rhs(hi[None], ui[None])[0]))(h, u)
    torch.testing.assert_close(field.jacobian(h, u), ref, rtol=0, atol=1e-14)


def test_callable_field_with_time_and_module() -> None:
    f = CallableField(lambda h, x, t=None: -h + x * t, 2, 2)
    assert not f.autonomous
    cell = RKCell(f, "RK4", dt=0.5)
    h = torch.zeros(1, 2, dtype=D)
    x = torch.ones(1, 2, dtype=D)
    # h' = −h + t, h(0) = 0: h(t) = t − 1 + e^{−t}.  RK4 is exact on the linear-in-t part, so
    # its error is exactly (R(z) − e^z) at z = −dt with R the RK4 stability polynomial —
    # which checks that the stage times t_k + c_i dt reach the field
    out = cell(x, h, t=0.0)
    z = -0.5
    R = 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24
    assert abs(float(out[0, 0]) - (0.5 - 1 + R)) < 1e-15
    mod = torch.nn.Linear(2, 2)
    g = CallableField(lambda_module := _Mod(mod), 2, 2)  # noqa: F841
    assert sum(p.numel() for p in g.parameters()) == 6


class _Mod(torch.nn.Module):
    def __init__(self, lin: torch.nn.Module) -> None:
        super().__init__()
        self.lin = lin

    def forward(self, h, x):
        return torch.tanh(self.lin(h)) + x


def test_make_field_errors() -> None:
    with pytest.raises(ValueError, match="field"):
        make_field("nope", 2, 3)
    with pytest.raises(ValueError, match="hidden_size"):
        make_field("elman", 2, 0)
    with pytest.raises(ValueError, match="field"):
        make_field(ElmanField(2, 3), 2, 4)
    with pytest.raises(TypeError, match="fn"):
        CallableField(3, 2, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="activation"):
        ElmanField(2, 3, activation="swish")
    with pytest.raises(ValueError, match="gamma"):
        AntisymmetricField(2, 3, gamma=float("nan"))
    bad = CallableField(lambda h, x: h[:, :1], 2, 3)
    with pytest.raises(ValueError, match="fn"):
        RKCell(bad, "Euler")(torch.zeros(1, 2), torch.zeros(1, 3))


def test_lazy_top_level_exports() -> None:
    for name in ("RKCell", "ODERNN", "AdaptiveRKCell", "MultistepCell", "HigherOrderCell", "CoRNNCell", "make_field"):
        assert getattr(ob, name) is not None


def test_unsized_callable_field_in_a_cell() -> None:
    f = CallableField(lambda h, x: -h)
    cell = RKCell(f, "RK4", dt=0.1)
    h = torch.ones(2, 3, dtype=D)
    out = cell(torch.zeros(2, 1, dtype=D), h)
    z = -0.1
    torch.testing.assert_close(out, h * (1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="input_size"):
        CallableField(lambda h, x: -h, input_size=2)
    from odernn_bridge.cells import MultistepCell

    with pytest.raises(ValueError, match="sized"):
        MultistepCell(f, ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0]))

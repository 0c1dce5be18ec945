"""The ODERNN layer: nn.RNN conventions, the fused kernel against the generic path, errors."""

from __future__ import annotations

import math

import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import ElmanField, RKCell, make_field

from ._tableaux import dp5, gauss2


def _grads(rnn: ob.ODERNN, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    out, h_n = rnn(x, h0)
    loss = (out.sin() * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + (h_n ** 2).sum()
    return out, list(torch.autograd.grad(loss, [x, h0, *rnn.parameters()]))


def _assert_fused_equals_generic(rnn: ob.ODERNN, x: torch.Tensor, h0: torch.Tensor) -> None:
    """Every cell runs the fused kernel; switching it off changes outputs by <= 1e-12 and
    gradients by <= 1e-10 (float64: the same arithmetic in a different order).  Leaves the
    cells unfused."""
    assert all(c.fused_eligible() for c in rnn.cells)
    out_f, g_f = _grads(rnn, x, h0)
    for c in rnn.cells:
        c.fused = False
    out_g, g_g = _grads(rnn, x, h0)
    torch.testing.assert_close(out_f, out_g, rtol=0, atol=1e-12)
    for a, b in zip(g_f, g_g):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("field", ["elman", "leaky", "antisymmetric"])
@pytest.mark.parametrize("method,substeps", [("RK4", 1), ("Midpoint", 2), ("Euler", 1), ("DP5", 1)])
def test_fused_kernel_equals_generic_autograd(field: str, method: str, substeps: int) -> None:
    # same arithmetic in a different order: outputs and every gradient agree to 1e-10 (float64)
    tab = dp5() if method == "DP5" else method
    rnn = ob.ODERNN(3, 5, method=tab, dt=0.4, field=field, num_layers=2, substeps=substeps, dtype=torch.float64)
    x = torch.randn(7, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    _assert_fused_equals_generic(rnn, x, h0)


@pytest.mark.parametrize("substeps", [1, 3])
@pytest.mark.parametrize("field", ["leaky", "elman"])  # with a leak Y is stored; without, rebuilt from S, A
def test_fused_kernel_linear_interpolation(substeps: int, field: str) -> None:
    rnn = ob.ODERNN(3, 5, method=dp5(), dt=0.4, field=field, num_layers=2, substeps=substeps,
                    input_interpolation="linear", dtype=torch.float64)
    x = torch.randn(6, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    _assert_fused_equals_generic(rnn, x, h0)
    # the fused sequence equals stepping the cell with x_next (last input held constant)
    cell = rnn.cells[0]
    cell.fused = True
    states = cell.run_sequence(cell.field.project_input(x), h0[0])
    h = h0[0]
    for k in range(6):
        h = cell(x[k], h, x_next=x[k + 1] if k < 5 else None)
        torch.testing.assert_close(h, states[k], rtol=0, atol=1e-13)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "identity"])
def test_fused_kernel_other_activations(activation: str) -> None:
    f = ElmanField(2, 4, activation=activation, dtype=torch.float64)
    rnn = ob.ODERNN(2, 4, method="RK4", dt=0.3, field=f, dtype=torch.float64)
    x = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    out_f, g_f = _grads(rnn, x, h0)
    rnn.cells[0].fused = False
    out_g, g_g = _grads(rnn, x, h0)
    torch.testing.assert_close(out_f, out_g, rtol=0, atol=1e-12)
    for a, b in zip(g_f, g_g):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_fused_inference_path_equals_training_path() -> None:
    # under no_grad the kernel keeps one step's workspace instead of every stage
    rnn = ob.ODERNN(3, 5, method="RK4", dt=0.4, substeps=2, dtype=torch.float64)
    x = torch.randn(9, 2, 3, dtype=torch.float64)
    out_train, hn_train = rnn(x)
    with torch.no_grad():
        out_eval, hn_eval = rnn(x)
    assert out_train.requires_grad and not out_eval.requires_grad
    torch.testing.assert_close(out_eval, out_train.detach(), rtol=0, atol=0)
    torch.testing.assert_close(hn_eval, hn_train.detach(), rtol=0, atol=0)


def test_gradcheck_fused_sequence() -> None:
    rnn = ob.ODERNN(2, 3, method="RK4", dt=0.5, dtype=torch.float64)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h0: rnn(x, h0)[0], (x, h0))


def test_layer_equals_cell_loop() -> None:
    rnn = ob.ODERNN(3, 4, method="RK4", dt=0.25, num_layers=2, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, h_n = rnn(x)
    h = [torch.zeros(2, 4, dtype=torch.float64) for _ in range(2)]
    for k in range(6):
        inp = x[k]
        for l, cell in enumerate(rnn.cells):
            h[l] = cell.step(inp, h[l])
            inp = h[l]
        torch.testing.assert_close(out[k], inp, rtol=0, atol=1e-13)
    torch.testing.assert_close(h_n, torch.stack(h), rtol=0, atol=1e-13)


def test_nn_rnn_conventions() -> None:
    rnn = ob.ODERNN(3, 4, num_layers=2, batch_first=True)
    x = torch.randn(5, 7, 3)  # (batch, seq, input)
    out, h_n = rnn(x)
    assert out.shape == (5, 7, 4) and h_n.shape == (2, 5, 4)
    out_u, h_u = rnn(x[0])  # unbatched (seq, input)
    assert out_u.shape == (7, 4) and h_u.shape == (2, 4)
    torch.testing.assert_close(out_u, out[0], rtol=1e-6, atol=1e-6)
    assert isinstance(rnn.cells, torch.nn.ModuleList) and len(rnn.cells) == 2
    assert rnn.method.name == "RK4" and rnn.dt == 1.0


def test_implicit_and_multistep_and_adaptive_layers() -> None:
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, h_n = ob.ODERNN(3, 4, method=gauss2(), dt=0.5, dtype=torch.float64)(x)
    assert out.shape == (5, 2, 4) and torch.isfinite(out).all()
    ab2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2layer")
    ms = ob.ODERNN(3, 4, method=ab2, dt=0.5, dtype=torch.float64)
    out, h_n = ms(x)
    assert out.shape == (5, 2, 4) and h_n.shape == (1, 2, ms.state_size)
    torch.testing.assert_close(out[-1], h_n[0, :, :4])
    ad = ob.ODERNN(3, 4, method=dp5(), dt=0.5, adaptive=True, rtol=1e-8, atol=1e-10, dtype=torch.float64)
    ad.cells[0].field.load_state_dict(make_field("elman", 3, 4, dtype=torch.float64).state_dict())
    fixed = ob.ODERNN(3, 4, method="RK4", dt=0.5, substeps=50, dtype=torch.float64)
    fixed.cells[0].field.load_state_dict(ad.cells[0].field.state_dict())
    torch.testing.assert_close(ad(x)[0], fixed(x)[0], rtol=0, atol=1e-8)


def test_adaptive_layer_with_irregular_timespans() -> None:
    rnn = ob.ODERNN(3, 4, method=dp5(), adaptive=True, rtol=1e-9, atol=1e-11, dtype=torch.float64,
                    batch_first=True)
    x = torch.randn(2, 5, 3, dtype=torch.float64)  # (batch, seq, input)
    gaps = torch.rand(2, 5, dtype=torch.float64) * 2
    out, h_n = rnn(x, timespans=gaps)
    # sample 1, step by step with a fine fixed-step cell over its own gaps
    field = rnn.cells[0].field
    h = torch.zeros(1, 4, dtype=torch.float64)
    for k in range(5):
        h = ob.RKCell(field, "RK4", dt=float(gaps[1, k]), substeps=200)(x[1:2, k], h)
        torch.testing.assert_close(out[1, k], h[0], rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="timespans"):
        ob.ODERNN(3, 4, dtype=torch.float64)(x.transpose(0, 1), timespans=gaps.T)
    with pytest.raises(ValueError, match="timespans"):
        rnn(x, timespans=gaps[:, :3])


def test_field_factory_and_instance() -> None:
    rnn = ob.ODERNN(3, 4, field=lambda i, h, b: ElmanField(i, h, b, activation="sigmoid"), num_layers=2)
    assert all(c.field.activation == "sigmoid" for c in rnn.cells)
    assert rnn.cells[1].field.input_size == 4
    f = make_field("gated", 3, 4)
    assert ob.ODERNN(3, 4, field=f).cells[0].field is f
    with pytest.raises(ValueError, match="num_layers"):
        ob.ODERNN(3, 4, field=f, num_layers=2)
    with pytest.raises(TypeError, match="CallableField"):
        ob.ODERNN(3, 4, field=lambda h, x: -h)


def test_gated_field_in_layer_generic_path() -> None:
    rnn = ob.ODERNN(3, 4, field="gated", method="RK4", dt=0.5, dtype=torch.float64)
    assert not rnn.cells[0].fused_eligible()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x)[0], (x,))


def test_float32_and_device_agnostic_state() -> None:
    rnn = ob.ODERNN(3, 4)
    out, h_n = rnn(torch.randn(3, 2, 3))
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    rnn64 = ob.ODERNN(3, 4, dtype=torch.float64)
    assert rnn64(torch.randn(3, 2, 3, dtype=torch.float64))[0].dtype == torch.float64


def test_bad_input_errors_name_the_argument() -> None:
    rnn = ob.ODERNN(3, 4)
    with pytest.raises(ValueError, match="input"):
        rnn(torch.randn(5, 2, 7))
    with pytest.raises(TypeError, match=r"input: expected dtype torch.float32"):
        rnn(torch.randn(5, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="h0"):
        rnn(torch.randn(5, 2, 3), torch.zeros(2, 2, 4))
    with pytest.raises(ob.NonFiniteError, match="input"):
        rnn(torch.full((5, 2, 3), math.nan))
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="dt"):
            ob.ODERNN(3, 4, dt=bad)
        with pytest.raises(ValueError, match="dt"):
            RKCell(make_field("elman", 3, 4), "RK4", dt=bad)
    with pytest.raises(ob.UnknownMethodError):
        ob.ODERNN(3, 4, method="RK44")
    with pytest.raises(ValueError, match="field"):
        ob.ODERNN(3, 4, field="nonsense")
    cell = RKCell(make_field("elman", 3, 4), "RK4")
    with pytest.raises(ValueError, match=r"x: expected last dimension 3"):
        cell(torch.zeros(2, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"h: expected last dimension 4"):
        cell(torch.zeros(2, 3), torch.zeros(2, 6))
    with pytest.raises(ValueError, match="batch size"):
        cell(torch.zeros(3, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match=r"h: expected dtype torch.float32"):
        cell(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="x: expected dtype torch.float64"):
        RKCell(make_field("elman", 3, 4, dtype=torch.float64), "RK4")(torch.zeros(2, 3),
                                                                       torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="device"):
        cell(torch.zeros(2, 3, device="meta"), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="field"):
        RKCell(3, "RK4")  # type: ignore[arg-type]
    assert RKCell(lambda h, x: -h, "Euler", dt=0.5)(torch.zeros(1, 2), torch.ones(1, 3)).sum() == 1.5
    with pytest.raises(TypeError, match="MultistepCell"):
        RKCell(make_field("elman", 3, 4), ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0]))
    with pytest.raises(ValueError, match="input_interpolation"):
        RKCell(make_field("elman", 3, 4), "RK4", input_interpolation="cubic")
    with pytest.raises(ValueError, match="substeps"):
        RKCell(make_field("elman", 3, 4), "RK4", substeps=0)
    with pytest.raises(ob.NonFiniteError, match="h"):
        cell(torch.zeros(2, 3), torch.full((2, 4), math.inf))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fused", "generic", "implicit"])
def test_torch_compile_matches_eager(case: str) -> None:
    # the fused kernel and the Newton solve are opaque to dynamo (torch.compiler.disable) and
    # run eagerly inside the compiled model — outputs and gradients must be those of eager mode
    if case == "implicit":
        rnn = ob.ODERNN(3, 8, method=gauss2(), dt=0.5, dtype=torch.float64)
    else:
        rnn = ob.ODERNN(3, 8, method="RK4", dt=0.5, fused=case == "fused", dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    eager = rnn(x)[0]
    g_eager = torch.autograd.grad(eager.sum(), list(rnn.parameters()))
    compiled = torch.compile(rnn)
    for c in rnn.cells:  # same start as the eager run (a cached Newton matrix changes the predictor)
        if hasattr(c, "_jacobian_cache"):
            c._jacobian_cache.clear()
    out = compiled(x)[0]
    g_comp = torch.autograd.grad(out.sum(), list(rnn.parameters()))
    torch.testing.assert_close(out, eager, rtol=0, atol=1e-12)
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_finite_check_fast_path_has_no_false_alarms() -> None:
    """check_finite proves finiteness by one sum; a sum that overflows (huge finite inputs) is
    re-checked element by element instead of being reported, and NaN/Inf anywhere still raise."""
    from odernn_bridge.cells._validate import check_finite

    big = torch.full((100, 4, 3), 3e38)  # float32: the sum overflows to inf
    check_finite(big, "input")  # no error
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.zeros(100, 4, 3)
        x[57, 2, 1] = bad
        with pytest.raises(ob.NonFiniteError, match="input: contains NaN or Inf"):
            check_finite(x, "input")
    rnn = ob.ODERNN(3, 5, method="RK4")
    with pytest.raises(ob.NonFiniteError):
        rnn(torch.zeros(4, 2, 3).index_fill_(0, torch.tensor([2]), float("nan")))


def test_fused_linear_interpolation_gradient_with_frozen_weights() -> None:
    """∂L/∂u alone (weights frozen) under linear input interpolation equals the generic path's."""
    from odernn_bridge.cells.fields import make_field

    torch.manual_seed(0)
    f = make_field("elman", 3, 5).double()
    for p in f.parameters():
        p.requires_grad_(False)
    grads = []
    for fused in (True, False):
        cell = ob.RKCell(f, "RK4", dt=0.3, input_interpolation="linear", fused=fused)
        u = torch.randn(4, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        (cell.run_sequence(u, torch.zeros(2, 5, dtype=torch.float64)) ** 2).sum().backward()
        grads.append(u.grad)
    assert float((grads[0] - grads[1]).abs().max()) < 1e-12

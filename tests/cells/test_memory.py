"""Memory-t cells: linear multistep cells, higher-order ODE cells, coRNN."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

import odernn_bridge as ob
from odernn_bridge.cells import CallableField, CoRNNCell, ElmanField, HigherOrderCell, MultistepCell

AB2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2test", order=2)
AB3 = ob.LinearMultistep([0, 0, -1, 1], ["5/12", "-16/12", "23/12", 0], name="AB3test", order=3)
AM2 = ob.LinearMultistep([0, -1, 1], ["-1/12", "8/12", "5/12"], name="AM2test", order=3)
BDF2 = ob.LinearMultistep(["1/3", "-4/3", 1], [0, 0, "2/3"], name="BDF2test", order=2)
LOCAL = [AB2, AB3, AM2, BDF2]
CATALOGUE = [ob.get_method(n) for n in ob.list_methods("multistep")]


def _np_field(field: ElmanField):
    W, U, b = (t.detach().numpy() for t in (field.W.weight, field.U.weight, field.U.bias))
    return lambda y, x: np.tanh(W @ y + U @ x + b)


def numpy_multistep(method: ob.LinearMultistep, f, xs: np.ndarray, h0: np.ndarray, dt: float) -> np.ndarray:
    """Independent reference: RK4 start-up for k−1 steps, then the LMM (fsolve if implicit)."""
    k, al, be = method.steps, method.alpha, method.beta
    ys, fs, out = [h0], [], []
    for n, x in enumerate(xs):
        y = ys[-1]
        fs.append(f(y, x))
        if n < k - 1:
            k1 = f(y, x)
            k2 = f(y + dt / 2 * k1, x)
            k3 = f(y + dt / 2 * k2, x)
            k4 = f(y + dt * k3, x)
            y_new = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        else:
            c = sum(-al[j] * ys[n + 1 - k + j] + dt * be[j] * fs[n + 1 - k + j] for j in range(k))
            if be[k] == 0:
                y_new = c
            else:
                y_new = scipy.optimize.fsolve(lambda z: z - c - dt * be[k] * f(z, x), y, xtol=1e-13)
        ys.append(y_new)
        out.append(y_new)
    return np.array(out)


@pytest.mark.parametrize("method", LOCAL + CATALOGUE, ids=lambda m: m.name)
def test_multistep_matches_numpy(method: ob.LinearMultistep) -> None:
    # same convention on both sides; explicit: round-off only, implicit: Newton (1e-12 scaled
    # residual) vs fsolve (xtol 1e-14) — agreement to 1e-10
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = MultistepCell(field, method, dt=0.2, newton_tol=1e-12)
    xs = torch.randn(8, 2, 2, dtype=torch.float64)
    h0 = torch.randn(2, 3, dtype=torch.float64)
    states = cell.run_sequence(field.project_input(xs), h0)
    got = cell.readout(states).detach().numpy()
    f = _np_field(field)
    for b in range(2):
        ref = numpy_multistep(method, f, xs[:, b].numpy(), h0[b].numpy(), 0.2)
        np.testing.assert_allclose(got[:, b], ref, rtol=0, atol=1e-12 if method.explicit else 1e-10)
    assert torch.equal(states[-1, :, -1], torch.full((2,), float(method.steps - 1), dtype=torch.float64))


def test_step_by_step_equals_sequence_and_fresh_start() -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = MultistepCell(field, AB3, dt=0.1)
    xs = torch.randn(5, 2, 2, dtype=torch.float64)
    h = torch.randn(2, 3, dtype=torch.float64)
    seq = cell.run_sequence(field.project_input(xs), h)
    state = h  # a plain (batch, n) state is a fresh start
    for k in range(5):
        state = cell(xs[k], state)
        torch.testing.assert_close(state, seq[k], rtol=0, atol=1e-14)  # per-step vs sequence projection
    assert cell.state_size == 5 * 3 + 1


@pytest.mark.parametrize("method,order", [(AB3, 3), (BDF2, 2), (AM2, 3)], ids=lambda v: getattr(v, "name", v))
def test_multistep_convergence_order(method: ob.LinearMultistep, order: int) -> None:
    # constant input → an autonomous ODE; global error at T = 1 falls like dt^p
    field = ElmanField(1, 2, dtype=torch.float64)
    x = torch.randn(1, 1, dtype=torch.float64)
    h0 = torch.randn(1, 2, dtype=torch.float64)
    with torch.no_grad():
        ref = ob.RKCell(field, "RK4", dt=1.0, substeps=2000)(x, h0)
        errs = []
        for n in (20, 40, 80):
            cell = MultistepCell(field, method, dt=1.0 / n, newton_tol=1e-13)
            u = field.project_input(x).expand(n, 1, 2)
            errs.append(float((cell.readout(cell.run_sequence(u, h0))[-1] - ref).abs().max()))
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(order - 0.3 < r < order + 0.5 for r in rates), rates


@pytest.mark.parametrize("method", [AB2, BDF2], ids=lambda m: m.name)
def test_gradcheck_multistep(method: ob.LinearMultistep) -> None:
    field = ElmanField(2, 3, dtype=torch.float64)
    cell = MultistepCell(field, method, dt=0.3, newton_tol=1e-13)
    xs = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda xs, h0: cell.run_sequence(field.project_input(xs), h0)[..., :-1],
                                    (xs, h0))


def test_multistep_rejects_runge_kutta() -> None:
    with pytest.raises(TypeError, match="method"):
        MultistepCell(ElmanField(2, 3), "RK4")


# -- higher-order cells -------------------------------------------------------------------------

def test_higher_order_rk_equals_numpy_on_augmented_system() -> None:
    # y''' = tanh(W [y, y', y''] + U x + b), RK4 on z = [y, y', y'']
    n, order, dt = 2, 3, 0.25
    inner = ElmanField(2, n, state_size=order * n, dtype=torch.float64)
    cell = HigherOrderCell(inner, order=order, method="RK4", dt=dt)
    x = torch.randn(3, 2, dtype=torch.float64)
    z = torch.randn(3, order * n, dtype=torch.float64)
    got = cell(x, z).detach().numpy()
    W, U, b = (t.detach().numpy() for t in (inner.W.weight, inner.U.weight, inner.U.bias))
    for i in range(3):
        u = U @ x[i].numpy() + b

        def F(zz: np.ndarray) -> np.ndarray:
            return np.concatenate([zz[n:], np.tanh(W @ zz + u)])

        z0 = z[i].numpy()
        k1 = F(z0)
        k2 = F(z0 + dt / 2 * k1)
        k3 = F(z0 + dt / 2 * k2)
        k4 = F(z0 + dt * k3)
        np.testing.assert_allclose(got[i], z0 + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), rtol=0, atol=1e-13)
    assert cell.readout(torch.tensor(got)).shape == (3, n)


def test_higher_order_with_implicit_method_and_gradcheck() -> None:
    inner = ElmanField(2, 2, state_size=4, dtype=torch.float64)
    gl = ob.ButcherTableau([["1/2"]], [1], name="ImplicitMidpointTest")
    cell = HigherOrderCell(inner, order=2, method=gl, dt=0.3, newton_tol=1e-13)
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, z: cell(x, z), (x, z))


def _harmonic(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return -4.0 * h[:, :1]  # y'' = −ω² y with ω = 2 (force independent of y')


@pytest.mark.parametrize("scheme,order", [("symplectic_euler", 1), ("stormer_verlet", 2)])
def test_second_order_schemes_order_and_energy(scheme: str, order: int) -> None:
    field = CallableField(_harmonic, 1, 1, state_size=2, derivative_order=2)
    z0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    x = torch.zeros(1, 1, dtype=torch.float64)
    exact = torch.tensor([[np.cos(4.0), -2 * np.sin(4.0)]], dtype=torch.float64)  # ω = 2, T = 2
    errs = []
    for m in (50, 100, 200):
        cell = HigherOrderCell(field, order=2, method=scheme, dt=1.0, substeps=m)
        errs.append(float((cell(x, cell(x, z0)) - exact).abs().max()))
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(order - 0.2 < r < order + 0.3 for r in rates), rates
    # symplectic: the energy error stays bounded over a long run (no drift)
    cell = HigherOrderCell(field, order=2, method=scheme, dt=0.05)
    z, energies = z0, []
    for _ in range(2000):
        z = cell(x, z)
        energies.append(float(4.0 * z[0, 0] ** 2 + z[0, 1] ** 2))
    assert max(abs(e - 4.0) for e in energies) < 0.25


def test_second_order_scheme_requires_order_two() -> None:
    with pytest.raises(ValueError, match="order"):
        HigherOrderCell(ElmanField(2, 2, state_size=6), order=3, method="stormer_verlet")
    with pytest.raises(ValueError, match="state_size"):
        HigherOrderCell(ElmanField(2, 2), order=2, method="RK4")


# -- coRNN --------------------------------------------------------------------------------------

class PublishedCoRNNCell(torch.nn.Module):
    """Verbatim update of the reference implementation (github.com/tk-rusch/coRNN, coRNN.py)."""

    def __init__(self, n_inp: int, n_hid: int, dt: float, gamma: float, epsilon: float) -> None:
        super().__init__()
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon
        self.i2h = torch.nn.Linear(n_inp + n_hid + n_hid, n_hid)

    def forward(self, x, hy, hz):
        hz = hz + self.dt * (torch.tanh(self.i2h(torch.cat((x, hz, hy), 1)))
                             - self.gamma * hy - self.epsilon * hz)
        hy = hy + self.dt * hz
        return hy, hz


def test_cornn_equals_published_update() -> None:
    # same operations up to the order of the matrix products: agreement to 1e-12 in float64
    n_inp, n_hid = 3, 5
    ref = PublishedCoRNNCell(n_inp, n_hid, dt=0.042, gamma=2.7, epsilon=4.7).double()
    cell = CoRNNCell(n_inp, n_hid, dt=0.042, gamma=2.7, epsilon=4.7, dtype=torch.float64)
    cell.inner_field.load_published(ref.i2h.weight, ref.i2h.bias)
    hy = torch.randn(4, n_hid, dtype=torch.float64)
    hz = torch.randn(4, n_hid, dtype=torch.float64)
    state = torch.cat([hy, hz], 1)
    for _ in range(50):
        x = torch.randn(4, n_inp, dtype=torch.float64)
        hy, hz = ref(x, hy, hz)
        state = cell(x, state)
        torch.testing.assert_close(state, torch.cat([hy, hz], 1), rtol=0, atol=1e-12)
    assert cell.readout(state).shape == (4, n_hid)


def test_cornn_gradcheck_and_layer_use() -> None:
    cell = CoRNNCell(2, 3, dtype=torch.float64)
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, s: cell(x, s), (x, s))
    # the same update as an ODERNN layer (field "cornn", method "symplectic_euler")
    rnn = ob.ODERNN(2, 3, method="symplectic_euler", field="cornn", dt=0.042, dtype=torch.float64)
    rnn.cells[0].inner_field.load_state_dict(cell.inner_field.state_dict())
    xs = torch.randn(6, 2, 2, dtype=torch.float64)
    out, h_n = rnn(xs)
    state = torch.zeros(2, 6, dtype=torch.float64)
    for k in range(6):
        state = cell(xs[k], state)
        torch.testing.assert_close(out[k], state[:, :3], rtol=0, atol=1e-14)
    torch.testing.assert_close(h_n[0], state, rtol=0, atol=1e-14)


def test_memory_cells_bad_input_errors() -> None:
    ms = MultistepCell(ElmanField(2, 3), AB2, dt=0.1)
    with pytest.raises(ValueError, match="h: expected last dimension"):
        ms(torch.zeros(1, 2), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="x: expected last dimension 2"):
        ms(torch.zeros(1, 5), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="h: expected dtype torch.float32"):
        ms(torch.zeros(1, 2), torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="dt"):
        MultistepCell(ElmanField(2, 3), AB2, dt=float("nan"))
    ho = CoRNNCell(2, 3)
    with pytest.raises(ValueError, match=r"h: expected last dimension 6"):
        ho(torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="batch size"):
        ho(torch.zeros(2, 2), torch.zeros(1, 6))
    with pytest.raises(ValueError, match="dt"):
        CoRNNCell(2, 3, dt=0.0)
    with pytest.raises(ValueError, match="gamma"):
        CoRNNCell(2, 3, gamma=float("inf"))
    with pytest.raises(ValueError, match="weight"):
        ho.inner_field.load_published(torch.zeros(3, 7))
    with pytest.raises(ob.NonFiniteError, match="x"):
        ho(torch.full((1, 2), float("nan")), torch.zeros(1, 6))

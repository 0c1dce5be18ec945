"""A small stiff learning task (issue 11): a recurrence whose Jacobian has eigenvalues from
−1 to −1000, sampled at dt = 0.5.  |dt·λ| reaches 500, far outside RK4's real stability
interval (2.79): the RK4 cell overflows at once, while L-stable implicit cells (whose
stability function tends to 0 at −∞) train normally."""

from __future__ import annotations

import math

import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import StiffField


def _filter_task(T: int = 10, B: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x_t ~ N(0, 1) and the target y_t = 0.7 y_{t−1} + 0.3 x_t (a slow mode to learn)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, 1, generator=g)
    ys, acc = [], torch.zeros(B, 1)
    for t in range(T):
        acc = 0.7 * acc + 0.3 * x[t]
        ys.append(acc)
    return x, torch.stack(ys)


def _train(method: str, steps: int) -> list[float]:
    torch.manual_seed(0)
    rnn = ob.ODERNN(1, 6, method=method, dt=0.5,
                    field=lambda i, h, b: StiffField(i, h, b, stiffness=1000.0))
    head = torch.nn.Linear(6, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.1)
    x, y = _filter_task()
    losses: list[float] = []
    for _ in range(steps):
        out, _ = rnn(x)
        loss = ((head(out) - y) ** 2).mean()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_stiff_field_spectrum() -> None:
    f = StiffField(1, 6, stiffness=1000.0, dtype=torch.float64)
    J = f.jacobian(torch.zeros(1, 6, dtype=torch.float64), torch.zeros(1, 6, dtype=torch.float64))[0]
    lam = torch.linalg.eigvals(J).real
    assert -1000.5 < float(lam.min()) < -999.0 and float(lam.max()) < 0.0
    assert 0.5 * 1000.0 > ob.real_stability_interval("RK4")  # dt·|λ| far outside RK4's region
    with pytest.raises(ValueError, match="stiffness"):
        StiffField(1, 6, stiffness=0.5)


def test_rk4_diverges_on_stiff_task() -> None:
    # the amplification |R(−500)| ≈ 2.6e9 per step overflows float32 within a few steps
    losses = _train("RK4", steps=3)
    assert not math.isfinite(losses[0])


@pytest.mark.parametrize("method", ["ImplicitEuler", "RadauIIA5"])
def test_l_stable_cell_trains_on_stiff_task(method: str) -> None:
    assert ob.stability_function(method)(-1e6) == pytest.approx(0.0, abs=1e-5)  # L-stable
    losses = _train(method, steps=12)
    assert all(math.isfinite(v) for v in losses)
    # the slow mode is learnt: 12 Adam steps cut the loss at least in half (measured ≈ 6×)
    assert losses[-1] < 0.5 * losses[0]
